"""Calls a phone makes through the dialplan (no Stasis), and phones entering Stasis by a code.

Recording ``d``: an Originate of ``Local/1001@phones`` into ``from-agents,<number>``; the phone's
``;2`` picks up at once, the ``;1`` runs ``Set(CDR(userfield)=outbound)``, ``MixMonitor`` and
``Dial(Local/<number>@external,60)``. On answer both sit in a ``basic`` bridge; when either side
hangs up the other follows (cause 16). Only AMI sees any of it.

A phone device that is not ``Local/...`` (``PJSIP/1001``) calls in as one channel in state Ring.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.sim.asterisk.calls import CallHandle, OriginateReport
from bridge.sim.asterisk.causes import NORMAL_CLEARING
from bridge.sim.asterisk.legs import Leg
from bridge.sim.asterisk.model import Bridge, CallerId, Channel
from bridge.sim.asterisk.originate import split_endpoint
from bridge.sim.asterisk.parties import Party

if TYPE_CHECKING:
    from bridge.sim.asterisk.pbx import Pbx

DIAL_FAILURE_CAUSE = {"BUSY": 17, "NOANSWER": 19, "CHANUNAVAIL": 20, "CONGESTION": 34, "CANCEL": 16}


@dataclass
class Phone:
    """Where a phone call starts: the device, who it shows as, how it picks up when rung."""

    device: str  # "Local/1001@phones" or "PJSIP/1001"
    caller: CallerId
    context: str  # dialplan context the phone's calls run in ("from-agents")
    party: Party  # used when the phone is originated (rung first), e.g. click-to-call
    originated: bool = True  # Local devices always are; a PJSIP phone may just call in


def start_phone(
    pbx: Pbx,
    phone: Phone,
    exten: str,
    then: Callable[[Channel, CallHandle], None],
    *,
    report: OriginateReport | None = None,
    timeout: float | None = 30.0,
) -> CallHandle:
    """Bring the phone's channel up at ``exten`` and hand it to ``then`` (dial out, Stasis...)."""
    tech, resource = split_endpoint(phone.device)
    loop = asyncio.get_running_loop()
    if not phone.originated and tech.lower() != "local":
        channel = pbx.single_channel(phone.device, state="Ring")
        channel.context, channel.exten = phone.context, exten
        pbx.set_caller(channel, phone.caller)
        handle = CallHandle(pbx, channel, [channel])
        loop.call_soon(then, channel, handle)
        return handle
    inner: Channel | None = None
    if tech.lower() == "local":
        outer, inner = pbx.local_pair(resource)
    else:
        outer = pbx.single_channel(phone.device)
    outer.set_dialplan("AppDial2", "(Outgoing Line)")
    pbx.set_caller(outer, phone.caller)
    pbx.set_connected(outer, phone.caller)
    handle = CallHandle(pbx, outer, [c for c in (outer, inner) if c is not None])
    outcome = report or OriginateReport()
    leg = Leg(pbx, outer=outer, inner=inner, dialstring=resource, party=phone.party, timeout=timeout)

    def answered() -> None:
        outcome(pbx, outer, phone.context, exten, "ANSWER")
        outer.context, outer.exten = phone.context, exten
        then(outer, handle)

    def failed(status: str) -> None:
        outcome(pbx, outer, phone.context, exten, status)

    leg.on_answer, leg.on_fail = answered, failed
    leg.begin()
    return handle


def dial_out(
    pbx: Pbx,
    phone: Channel,
    handle: CallHandle,
    *,
    number: str,
    trunk: str,
    party: Party,
    timeout: float,
) -> None:
    """The phone's dialplan: CDR userfield, MixMonitor, ``Dial(<trunk>,<timeout>)``."""
    endpoint = trunk.format(number=number)
    tech, resource = split_endpoint(endpoint)
    pbx.dialplan_step(phone, "NoOp", f"Outbound call from {phone.caller.number} to {number}", priority=1)
    pbx.dialplan_step(phone, "Set", "CDR(userfield)=outbound", priority=2)
    phone.variables["CDR(userfield)"] = "outbound"
    recording = f"out-{phone.id}"
    pbx.dialplan_step(phone, "MixMonitor", f"{recording}.wav,b", priority=3)
    path = pbx.media.mixmonitor(phone, recording)
    pbx.set_var(phone, "MIXMONITOR_FILENAME", str(path))
    pbx.dialplan_step(phone, "Dial", f"{endpoint},{timeout:g}", priority=4)
    inner: Channel | None = None
    if tech.lower() == "local":
        outer, inner = pbx.local_pair(resource, linkedid=phone.linkedid)
    else:
        outer = pbx.single_channel(endpoint, linkedid=phone.linkedid)
    outer.set_dialplan("AppDial", "(Outgoing Line)")
    pbx.set_caller(outer, CallerId(phone.caller.name, number))
    pbx.set_connected(outer, phone.caller)
    phone.dialed_peer = outer.name
    for channel in (outer, inner):
        if channel is not None:
            handle.add(channel)
    leg = Leg(
        pbx, outer=outer, inner=inner, dialstring=resource, party=party, caller=phone,
        timeout=timeout, report_timeout=True,
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    bridges: list[Bridge] = []

    def finish_bridge() -> None:
        for bridge in bridges:
            pbx.bridging.destroy(bridge)

    def answered() -> None:
        pbx.set_var(phone, "DIALSTATUS", "ANSWER")
        pbx.answer(phone)
        bridge = pbx.bridging.create(basic=True)
        bridges.append(bridge)
        pbx.bridging.add(bridge, outer)
        pbx.bridging.add(bridge, phone)
        outer.hangup_hooks.append(callee_hangs_up)

    def callee_hangs_up() -> None:
        loop.call_soon(callee_gone)

    def callee_gone() -> None:
        """The bridge dissolves, then the phone's dialplan ends (as recorded)."""
        pbx.bridging.remove(phone)
        pbx.hangup(phone, NORMAL_CLEARING, "dialplan")
        finish_bridge()

    def failed(status: str) -> None:
        pbx.set_var(phone, "DIALSTATUS", status)
        cause = DIAL_FAILURE_CAUSE.get(status, NORMAL_CLEARING)
        loop.call_soon(lambda: pbx.hangup(phone, cause, "dialplan"))

    def hang_up_callee() -> None:
        pbx.hangup(outer, NORMAL_CLEARING, "timeout")
        finish_bridge()

    def phone_gone() -> None:
        if not leg.finished:
            loop.call_soon(leg.cancel)
        elif not outer.hanging_up:
            loop.call_soon(hang_up_callee)

    leg.on_answer, leg.on_fail = answered, failed
    phone.hangup_hooks.insert(0, phone_gone)
    leg.begin()


def enter_by_code(pbx: Pbx, phone: Channel, *, app: str, code: str, args: list[str]) -> None:
    """A feature code (``*8``) that puts the phone into Stasis with ``args``."""
    phone.exten = code
    pbx.dialplan_step(phone, "Stasis", ",".join([app, *args]), priority=1)
    if not pbx.enter_stasis(phone, app, args):
        pbx.hangup(phone, NORMAL_CLEARING, "dialplan")
