"""A click-to-call a dead process was carrying out, found again at a restart: what is left of it on the PBX.

The desk (``bridge/clicktocall.py``) names a click-to-call's PBX objects after its key: the employee's leg is the
channel ``<key>`` (it is also the call), the client's leg ``<key>-client``, the bridge they talk in ``call-<key>``
(created when the client picks up, so its ``creationtime`` is when the conversation began) and the recording on it
``<key>-talk``. An originated leg enters our Stasis application only once it answers: a leg still ringing is
listed outside it. Asterisk keeps channels that are in Stasis, and ARI's bridges, while no application is
connected: when a party hangs up meanwhile, the other stays in the bridge alone until someone hangs it up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bridge.crm.inbound import ClickToCall
from bridge.journal.rows import CallRow
from bridge.pbx.events import LiveChannel
from bridge.recovery.view import PbxView


@dataclass(frozen=True)
class Remains:
    """What the PBX still has of one click-to-call."""

    employee: LiveChannel | None
    client: LiveChannel | None
    bridge: str
    """The bridge the two talked in ('' when the client never picked up)."""
    answered_at: datetime | None
    """When the client picked up (the bridge's creation), where Asterisk says."""

    @property
    def employee_answered(self) -> bool:
        return answered(self.employee)

    @property
    def client_answered(self) -> bool:
        return answered(self.client)


def answered(channel: LiveChannel | None) -> bool:
    """An originated leg is in our application once it has answered (ringing, it runs ``AppDial2``)."""
    return channel is not None and channel.app == "Stasis"


def remains(view: PbxView, key: str) -> Remains:
    bridge = view.bridge_named(f"call-{key}")
    return Remains(
        employee=view.channels.get(key),
        client=view.channels.get(f"{key}-client"),
        bridge=bridge,
        answered_at=view.bridge_created.get(bridge),
    )


def request_of(row: CallRow) -> ClickToCall | None:
    """The click-to-call as Bitrix24 sent it, from its journaled ``adopt`` (None: written by a version that did
    not keep the employee and the number; recovery then only finishes it)."""
    if not row.call_id or not row.user_id or not row.phone:
        return None
    return ClickToCall(call_id=row.call_id, user_id=row.user_id, phone=row.phone, line=row.line or "")
