"""The inbound call as recorded: an Originate of ``Local/<DID>@<context>`` into the caller robot.

The ``;2`` half runs ``NoOp`` then ``Stasis(<app>,inbound,<DID>)``; the ``;1`` half is the
customer. When the app answers the ``;2``, the ``;1`` comes Up, ``DialEnd ANSWER`` and
``OriginateResponse Success`` go out, and the customer's script (DTMF, hangup) runs.

Script times count from entering Stasis (``timing="stasis"``, :meth:`place_inbound_call`) or from
the answer (``timing="answer"``, the recorded robot's ``CALLER_HANGUP_AFTER`` variables on an AMI
Originate); ``hangup_after_answer`` counts from the customer being bridged with an answered agent.

When ``Stasis()`` fails (no application connected) the ``;2`` hangs up, unless the generated fallback dialplan is
loaded (:mod:`bridge.sim.asterisk.fallback`): then it runs the line's fallback, and the script runs from there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from bridge.sim.asterisk.calls import CallHandle, OriginateReport
from bridge.sim.asterisk.causes import NORMAL_CLEARING
from bridge.sim.asterisk.fallback import run_fallback
from bridge.sim.asterisk.legs import Leg
from bridge.sim.asterisk.model import Bridge, CallerId, Channel

if TYPE_CHECKING:
    from bridge.sim.asterisk.pbx import Pbx


@dataclass
class CallerScript:
    hangup_after: float | None = None
    dtmf: Sequence[tuple[float, str]] = ()
    hangup_after_answer: float | None = None
    timing: Literal["stasis", "answer"] = "stasis"
    variables: dict[str, str] = field(default_factory=dict)


class InboundCall(CallHandle):
    """``channel_id`` is the ``;2`` in Stasis; ``caller_channel`` is the customer's ``;1``."""

    def __init__(self, pbx: Pbx, caller_channel: Channel, stasis_channel: Channel) -> None:
        super().__init__(pbx, stasis_channel, [caller_channel, stasis_channel])
        self.caller_channel = caller_channel
        self.stasis_channel = stasis_channel
        self.linkedid = caller_channel.linkedid


def place_inbound(
    pbx: Pbx,
    *,
    app: str,
    context: str,
    did: str,
    caller: CallerId,
    script: CallerScript,
    originate_timeout: float | None = None,
    report: OriginateReport | None = None,
) -> InboundCall:
    report = report or OriginateReport()
    one, two = pbx.local_pair(f"{did}@{context}")
    one.set_dialplan("AppDial2", "(Outgoing Line)")
    for name, value in script.variables.items():
        pbx.set_var(one, name, value)
    pbx.set_caller(one, caller)
    pbx.set_connected(one, caller)
    call = InboundCall(pbx, one, two)
    leg = Leg(pbx, outer=one, inner=two, dialstring=f"{did}@{context}", party=None, timeout=originate_timeout)

    def customer_hangs_up() -> None:
        if one.answered_at is not None:
            pbx.dialplan_step(one, "Hangup", str(NORMAL_CLEARING))
        pbx.hangup(one, NORMAL_CLEARING, "dialplan")

    def arm_script() -> None:
        for delay, digits in script.dtmf:
            pbx.later(two, delay, functools.partial(_send_digits, pbx, two, digits))
        if script.hangup_after is not None:
            pbx.later(one, script.hangup_after, customer_hangs_up)

    def answered() -> None:
        report(pbx, one, "callers", "s", "ANSWER")
        one.context, one.exten = "callers", "s"
        hangup_text = "never" if script.hangup_after is None else f"{script.hangup_after:g}"
        pbx.dialplan_step(one, "NoOp", f"Caller robot: hangup after {hangup_text}", priority=1)
        if script.timing == "answer":
            arm_script()

    def failed(status: str) -> None:
        report(pbx, one, "callers", "s", status)

    def bridged(bridge: Bridge) -> None:
        if two.bridge is not bridge or script.hangup_after_answer is None:
            return
        if any(c is not two and c.state == "Up" for c in bridge.channels):
            pbx.bridge_hooks.remove(bridged)
            pbx.later(one, script.hangup_after_answer, customer_hangs_up)

    leg.on_answer, leg.on_fail = answered, failed
    # before the leg's own hook marks it finished: a customer gone before the answer fails it
    one.hangup_hooks.insert(0, lambda: None if leg.finished else failed("CANCEL"))
    if script.hangup_after_answer is not None:
        pbx.bridge_hooks.append(bridged)
        two.hangup_hooks.append(lambda: _drop_hook(pbx, bridged))
    leg.begin(script.variables)
    pbx.dialplan_step(two, "NoOp", f'Inbound DID {did} from "{caller.name}" <{caller.number}>', priority=1)
    pbx.dialplan_step(two, "Stasis", f"{app},inbound,{did}", priority=2)
    if not pbx.enter_stasis(two, app, ["inbound", did]):
        if pbx.fallback_dialplan is not None and run_fallback(pbx, pbx.fallback_dialplan, two, did):
            if script.timing == "stasis":
                arm_script()
            return call
        pbx.later(two, 0, lambda: pbx.hangup(two, NORMAL_CLEARING, "dialplan"))
    elif script.timing == "stasis":
        arm_script()
    return call


def _send_digits(pbx: Pbx, channel: Channel, digits: str) -> None:
    for digit in digits:
        pbx.media.dtmf_received(channel, digit)


def _drop_hook(pbx: Pbx, hook: Callable[[Bridge], None]) -> None:
    if hook in pbx.bridge_hooks:
        pbx.bridge_hooks.remove(hook)
