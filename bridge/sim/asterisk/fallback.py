"""The generated fallback dialplan (``b24-bridge dialplan``) as the simulated PBX runs it.

When ``Stasis()`` fails (no application connected) a configured line goes to ``[b24-fallback]``: the steps are
those :func:`bridge.dialplan.fallback.fallback_steps` gives the generator, run the way its dialplan lines do:
``Set(DB(b24fallback/${UNIQUEID}/...))`` for the line, caller and start, the ``h`` extension for the peer,
``ANSWEREDTIME``, ``DIALSTATUS`` and the end (written last), ``MixMonitor`` (``b24fb-<uid>``), each ``Dial`` to all
the devices of a step at once (the first to answer is bridged with the caller, the others are cancelled), and
for a message ``Answer``, ``Playback``, ``Record`` (``b24fb-msg-<uid>``) until the caller hangs up or the limit.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bridge.config import Settings
from bridge.dialplan.fallback import DialNumber, Ring, Step, TakeMessage, fallback_steps
from bridge.dialplan.render import FALLBACK_CONTEXT
from bridge.dialplan.trace import FAMILY, FIELDS
from bridge.dialrules import BadPhoneNumber, DialRules
from bridge.sim.asterisk.causes import NORMAL_CLEARING
from bridge.sim.asterisk.legs import Leg
from bridge.sim.asterisk.model import Bridge, CallerId, Channel, now
from bridge.sim.asterisk.originate import split_endpoint

if TYPE_CHECKING:
    from bridge.sim.asterisk.calls import OriginateReport
    from bridge.sim.asterisk.pbx import Pbx


@dataclass
class FallbackDialplan:
    """What ``[b24-fallback]`` holds: each line's steps, and how devices and numbers are dialled."""

    steps: dict[str, tuple[Step, ...]] = field(default_factory=dict)
    recorded: set[str] = field(default_factory=set)
    agent_endpoint: str = "PJSIP/{ext}"
    trunk_endpoint: str = "PJSIP/{number}@trunk"
    dial_rules: DialRules = field(default_factory=DialRules)
    message_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FallbackDialplan:
        """The fallback ``b24-bridge dialplan`` generates for ``settings`` (monitor-only lines have none)."""
        plan, a = settings.plan, settings.asterisk
        lines = {n: line for n, line in plan.lines.items() if n not in a.monitor_lines}
        return cls(
            steps={n: fallback_steps(plan, line) for n, line in lines.items()},
            recorded={n for n, line in lines.items() if line.record},
            agent_endpoint=a.agent_endpoint,
            trunk_endpoint=a.trunk_endpoint,
            dial_rules=a.dial_rules,
            message_seconds=plan.voicemail_max_seconds,
        )


def run_fallback(pbx: Pbx, dialplan: FallbackDialplan, channel: Channel, did: str) -> bool:
    """``GotoIf(STASISSTATUS = FAILED ? b24-fallback,<did>,1)``: False when the line has no fallback there."""
    steps = dialplan.steps.get(did)
    if steps is None:
        return False
    FallbackCall(pbx, dialplan, channel, did, steps).start()
    return True


class FallbackCall:
    def __init__(self, pbx: Pbx, dialplan: FallbackDialplan, channel: Channel, did: str, steps: tuple[Step, ...]):
        self.pbx, self.dialplan, self.channel, self.did, self.steps = pbx, dialplan, channel, did, steps
        self.legs: list[Leg] = []
        self.answered_at: float | None = None
        self.bridge: Bridge | None = None
        self.priority = 3

    def db(self, name: str, value: str) -> None:
        self.step("Set", f"DB({FAMILY}/{self.channel.id}/{name})={value}")
        self.pbx.astdb[f"/{FAMILY}/{self.channel.id}/{name}"] = value

    def step(self, app: str, data: str) -> None:
        self.priority += 1
        self.pbx.dialplan_step(self.channel, app, data, priority=self.priority)

    def start(self) -> None:
        c = self.channel
        self.step("GotoIf", f'$["FAILED" = "FAILED"]?{FALLBACK_CONTEXT},{self.did},1')
        c.context, c.exten, self.priority = FALLBACK_CONTEXT, self.did, 0
        self.step("NoOp", f"b24-bridge is away: line {self.did} rings by the dialplan alone")
        self.db("line", self.did)
        self.db("caller", c.caller.number)
        self.db("start", str(int(now())))
        c.hangup_hooks.insert(0, self._h_extension)
        if self.did in self.dialplan.recorded:
            name = f"b24fb-{c.id}"
            self.step("MixMonitor", f"${{ASTSPOOLDIR}}/recording/{name}.wav,b")
            self.pbx.media.mixmonitor(c, name)
            self.db("recording", name)
        self._next(0)

    # --- the steps ---------------------------------------------------------------------------------

    def _next(self, index: int) -> None:
        if self.channel.hanging_up or self.channel.destroyed:
            return
        if index >= len(self.steps):
            self.step("Hangup", "")
            self.pbx.hangup(self.channel, NORMAL_CLEARING, "dialplan")
            return
        step = self.steps[index]
        if isinstance(step, TakeMessage):
            self._take_message(step)
            return
        endpoints = self._endpoints(step)
        if not endpoints:
            self._next(index + 1)
            return
        seconds = step.seconds
        options = "r" if isinstance(step, DialNumber) or not step.music else "m"
        self.step("Dial", f"{'&'.join(endpoints)},{seconds},{options}")
        self._dial(endpoints, seconds, lambda: self._next(index + 1))

    def _endpoints(self, step: Ring | DialNumber) -> list[str]:
        if isinstance(step, Ring):
            return [self.dialplan.agent_endpoint.replace("{ext}", ext) for ext in step.exts]
        try:
            digits = self.dialplan.dial_rules.dialled(step.number)
        except BadPhoneNumber:
            return []
        return [self.dialplan.trunk_endpoint.replace("{number}", digits)]

    def _dial(self, endpoints: list[str], seconds: float, unanswered: Callable[[], None]) -> None:
        pbx, caller = self.pbx, self.channel
        legs: list[Leg] = []
        failures: list[str] = []

        def answered(leg: Leg) -> None:
            for other in legs:
                if other is not leg:
                    other.cancel()
            pbx.set_var(caller, "DIALSTATUS", "ANSWER")
            caller.dialed_peer = leg.outer.name
            pbx.answer(caller)
            self.answered_at = now()
            bridge = pbx.bridging.create(basic=True)
            self.bridge = bridge
            pbx.bridging.add(bridge, leg.outer)
            pbx.bridging.add(bridge, caller)
            leg.outer.hangup_hooks.append(self._callee_hangs_up)

        def failed(status: str) -> None:
            failures.append(status)
            if len(failures) == len(legs) and not caller.hanging_up:
                pbx.set_var(caller, "DIALSTATUS", "NOANSWER" if "NOANSWER" in failures else failures[-1])
                asyncio.get_running_loop().call_soon(unanswered)

        for endpoint in endpoints:
            tech, resource = split_endpoint(endpoint)
            inner: Channel | None = None
            if tech.lower() == "local":
                outer, inner = pbx.local_pair(resource, linkedid=caller.linkedid)
            else:
                outer = pbx.single_channel(endpoint, linkedid=caller.linkedid)
            outer.set_dialplan("AppDial", "(Outgoing Line)")
            pbx.set_caller(outer, caller.caller)
            pbx.set_connected(outer, CallerId("", self.did))
            leg = Leg(
                pbx, outer=outer, inner=inner, dialstring=resource, party=pbx.parties.for_endpoint(endpoint),
                caller=caller, timeout=seconds, report_timeout=True,
            )  # fmt: skip
            leg.on_answer = lambda leg=leg: answered(leg)  # type: ignore[misc]
            leg.on_fail = failed
            legs.append(leg)
        self.legs += legs
        for leg in legs:
            leg.begin()

    def _callee_hangs_up(self) -> None:
        asyncio.get_running_loop().call_soon(self._callee_gone)

    def _callee_gone(self) -> None:
        if self.bridge is not None:
            self.pbx.bridging.remove(self.channel)
            self.pbx.bridging.destroy(self.bridge)
            self.bridge = None
        if not self.channel.hanging_up:
            self.step("Hangup", "")
            self.pbx.hangup(self.channel, NORMAL_CLEARING, "dialplan")

    def _take_message(self, step: TakeMessage) -> None:
        c = self.channel
        self.db("voicemail", step.ext)
        self.step("Answer", "")
        self.pbx.answer(c)
        self.step("Playback", "vm-intro")
        name = f"b24fb-msg-{c.id}"
        self.db("message", name)
        self.step("Record", f"${{ASTSPOOLDIR}}/recording/{name}.wav,5,{self.dialplan.message_seconds:g},k")
        self.pbx.media.mixmonitor(c, name)  # the file is complete when the caller hangs up (option k)
        self.pbx.later(c, self.dialplan.message_seconds, lambda: self.pbx.hangup(c, NORMAL_CLEARING, "dialplan"))

    # --- exten => h (runs as the channel hangs up) ---------------------------------------------

    def _h_extension(self) -> None:
        for leg in self.legs:
            if not leg.finished:
                leg.cancel()
        if self.bridge is not None:
            callee = [x for x in self.bridge.channels if x is not self.channel]
            for other in callee:
                if not other.hanging_up:
                    asyncio.get_running_loop().call_soon(
                        lambda o=other: self.pbx.hangup(o, NORMAL_CLEARING, "dialplan")  # type: ignore[misc]
                    )
        talk = int(now() - self.answered_at) if self.answered_at is not None else 0
        self.pbx.astdb[f"/{FAMILY}/{self.channel.id}/peer"] = self.channel.dialed_peer
        self.pbx.astdb[f"/{FAMILY}/{self.channel.id}/talk"] = str(talk) if self.answered_at is not None else ""
        self.pbx.astdb[f"/{FAMILY}/{self.channel.id}/status"] = self.channel.variables.get("DIALSTATUS", "")
        self.pbx.astdb[f"/{FAMILY}/{self.channel.id}/end"] = str(int(now()))


FORGET_PATTERN = re.compile(r"[0-9].+")
"""``exten => _X.`` of ``[b24-fallback-forget]``."""


def run_forget(pbx: Pbx, resource: str, report: OriginateReport) -> None:
    """Originate ``Local/<uid>@b24-fallback-forget``: the ``;2`` ``DB_DELETE``s each field of the trace, answers
    and hangs up; an extension the context does not match fails the originate (the Local channel is refused)."""
    exten = resource.partition("@")[0]
    one, two = pbx.local_pair(resource)

    def run() -> None:
        if not FORGET_PATTERN.fullmatch(exten):
            pbx.hangup(two, NORMAL_CLEARING, "dialplan")
            report(pbx, one, "", "", "CHANUNAVAIL")
            return
        for priority, name in enumerate(FIELDS, 1):
            pbx.dialplan_step(two, "Set", f"B24_GONE=${{DB_DELETE({FAMILY}/{exten}/{name})}}", priority=priority)
            pbx.astdb.pop(f"/{FAMILY}/{exten}/{name}", None)
        pbx.dialplan_step(two, "Answer", "", priority=len(FIELDS) + 1)
        pbx.answer(two)
        pbx.answer(one)
        report(pbx, one, "", "", "ANSWER")
        pbx.dialplan_step(one, "NoOp", "b24-bridge", priority=1)
        pbx.dialplan_step(two, "Hangup", "", priority=len(FIELDS) + 2)
        pbx.hangup(two, NORMAL_CLEARING, "dialplan")
        pbx.later(one, 0, lambda: None if one.hanging_up else pbx.hangup(one, NORMAL_CLEARING, "dialplan"))

    asyncio.get_running_loop().call_soon(run)
