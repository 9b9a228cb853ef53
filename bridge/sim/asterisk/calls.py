"""Handles on scripted calls, and the AMI ``OriginateResponse`` they report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.sim.asterisk.model import Channel, Headers

if TYPE_CHECKING:
    from bridge.sim.asterisk.pbx import Pbx

# OriginateResponse "Reason": the last control frame Asterisk saw (AST_CONTROL_*).
REASON_ANSWERED = 4
REASON_BY_STATUS = {"BUSY": 5, "CONGESTION": 8, "NOANSWER": 3, "CHANUNAVAIL": 0, "CANCEL": 1}


class CallHandle:
    """A call the simulator placed: ``channel_id`` is the channel the app sees in Stasis.

    ``await handle.ended()`` returns once every channel of the call is destroyed.
    """

    def __init__(self, pbx: Pbx, channel: Channel, members: list[Channel]) -> None:
        self._pbx = pbx
        self.channel = channel
        self.channel_id = channel.id
        self.linkedid = channel.linkedid
        self.members = list(members)
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pbx.destroy_hooks.append(self._on_destroyed)

    def add(self, channel: Channel) -> None:
        self.members.append(channel)

    @property
    def done(self) -> bool:
        return self._done.done()

    async def ended(self) -> None:
        await asyncio.shield(self._done)

    def _on_destroyed(self, channel: Channel) -> None:
        if channel in self.members and all(m.destroyed for m in self.members) and not self._done.done():
            self._done.set_result(None)
            self._pbx.destroy_hooks.remove(self._on_destroyed)


@dataclass
class OriginateReport:
    """Where an originate's outcome goes: the ``OriginateResponse`` event (async Originate and
    scripted calls) and/or a future the synchronous AMI ``Originate`` waits on."""

    action_id: str | None = None
    emit_event: bool = True
    outcome: asyncio.Future[str] | None = None

    def __call__(self, pbx: Pbx, channel: Channel, context: str, exten: str, status: str) -> None:
        if self.emit_event:
            originate_response(
                pbx, action_id=self.action_id, channel=channel, context=context, exten=exten, status=status
            )
        if self.outcome is not None and not self.outcome.done():
            self.outcome.set_result(status)

    def not_created(self, pbx: Pbx, fields: Headers) -> None:
        """The channel could not even be created: ``OriginateResponse`` Failure with ``Reason: 0`` and no
        Uniqueid (``fields``: Channel, then Application/Data or Context/Exten, as the action named them). The
        event follows the action's own ``Response: Success``, as Asterisk's originate thread sends it."""
        if self.emit_event:
            head: Headers = [("ActionID", self.action_id)] if self.action_id else []
            unknown: Headers = [("Uniqueid", "<unknown>"), ("CallerIDNum", "<unknown>"), ("CallerIDName", "<unknown>")]
            report = [*head, ("Response", "Failure"), *fields, ("Reason", "0"), *unknown]
            asyncio.get_running_loop().call_soon(pbx.ami, "OriginateResponse", report)
        if self.outcome is not None and not self.outcome.done():
            self.outcome.set_result("CHANUNAVAIL")


def originate_response(
    pbx: Pbx,
    *,
    action_id: str | None,
    channel: Channel,
    context: str,
    exten: str,
    status: str,
) -> None:
    """Broadcast ``OriginateResponse`` (Success on ANSWER, Failure with a Reason otherwise)."""
    success = status == "ANSWER"
    fields: Headers = [("ActionID", action_id)] if action_id else []
    fields += [
        ("Response", "Success" if success else "Failure"),
        ("Channel", channel.name),
        ("Context", context),
        ("Exten", exten),
        ("Reason", str(REASON_ANSWERED if success else REASON_BY_STATUS.get(status, 0))),
        ("Uniqueid", channel.id),
        ("CallerIDNum", channel.caller.number or "<unknown>"),
        ("CallerIDName", channel.caller.name or "<unknown>"),
    ]
    pbx.ami("OriginateResponse", fields)
