"""Transfers an agent's phone makes while in a Stasis bridge (not in the recordings; modelled on
Asterisk's ``BridgeBlindTransfer`` / ``BridgeAttendedTransfer`` and AMI ``BlindTransfer`` /
``AttendedTransfer``).

* Blind: a ``Local/<exten>@<context>`` pair replaces the transferer. Its ``;1`` enters the app
  (``StasisStart`` with ``replace_channel`` = the transferer) and the bridge; its ``;2`` rings the
  party of ``exten``; the transferer leaves and hangs up.
* Attended: the transfer target moves from the second bridge into the first one, and both of the
  transferer's channels hang up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.sim.asterisk.causes import NORMAL_CLEARING
from bridge.sim.asterisk.legs import Leg
from bridge.sim.asterisk.model import Bridge, Channel, Headers

if TYPE_CHECKING:
    from bridge.sim.asterisk.pbx import Pbx


class TransferError(ValueError):
    """The channels are not in a state that allows this transfer."""


def _other(bridge: Bridge, channel: Channel) -> Channel:
    others = [c for c in bridge.channels if c is not channel]
    if not others:
        raise TransferError(f"{channel.name} is alone in its bridge: nobody to transfer")
    return others[0]


def _bridge_fields(bridge: Bridge, prefix: str) -> Headers:
    return [(f"{prefix}{name.removeprefix('Bridge')}", value) for name, value in bridge.ami_fields()]


def blind_transfer(pbx: Pbx, transferer: Channel, exten: str, context: str) -> Channel:
    """Returns the ``;1`` of the Local pair that now stands in for the transferer."""
    bridge = transferer.bridge
    if bridge is None or transferer.stasis_app is None:
        raise TransferError(f"{transferer.name} is not in a Stasis bridge")
    transferee, app = _other(bridge, transferer), transferer.stasis_app
    one, two = pbx.local_pair(f"{exten}@{context}", linkedid=transferer.linkedid)
    one.set_dialplan("AppDial2", "(Outgoing Line)")
    one.home_dialplan = ("AppDial2", "(Outgoing Line)")
    pbx.set_caller(one, transferee.caller)
    pbx.bus.app(app).channels.update({one.id, two.id})
    after: dict[str, Any] = {
        "channel": transferer.as_json(),
        "replace_channel": one.as_json(),
        "transferee": transferee.as_json(),
        "exten": exten,
        "context": context,
        "result": "Success",
        "is_external": False,
        "bridge": bridge.as_json(),
    }
    pbx.ari("BridgeBlindTransfer", after=after, channels=(transferer, transferee, one), bridges=(bridge,))
    pbx.ami(
        "BlindTransfer",
        [
            ("Result", "Success"),
            *transferer.ami_fields("Transferer"),
            *transferee.ami_fields("Transferee"),
            *_bridge_fields(bridge, "Bridge"),
            ("IsExternal", "No"),
            ("Context", context),
            ("Extension", exten),
        ],
    )
    pbx.enter_stasis(one, app, [], replacing=transferer)
    pbx.bridging.add(bridge, one)
    pbx.bridging.remove(transferer)
    pbx.hangup(transferer, NORMAL_CLEARING, "remote")
    leg = Leg(pbx, outer=one, inner=two, dialstring=f"{exten}@{context}", party=pbx.parties.for_endpoint(exten))
    leg.begin()
    return one


def attended_transfer(pbx: Pbx, first_leg: Channel, second_leg: Channel) -> None:
    """``first_leg`` talks to the transferee, ``second_leg`` to the target; join those two."""
    first_bridge, second_bridge = first_leg.bridge, second_leg.bridge
    if first_bridge is None or second_bridge is None or first_bridge is second_bridge:
        raise TransferError("an attended transfer needs two legs in two different bridges")
    transferee, target = _other(first_bridge, first_leg), _other(second_bridge, second_leg)
    after: dict[str, Any] = {
        "transferer_first_leg": first_leg.as_json(),
        "transferer_second_leg": second_leg.as_json(),
        "transferee": transferee.as_json(),
        "transfer_target": target.as_json(),
        "result": "Success",
        "is_external": False,
        "transferer_first_leg_bridge": first_bridge.as_json(),
        "transferer_second_leg_bridge": second_bridge.as_json(),
        "destination_type": "bridge",
        "destination_bridge": first_bridge.id,
    }
    channels = (first_leg, second_leg, transferee, target)
    pbx.ari("BridgeAttendedTransfer", after=after, channels=channels, bridges=(first_bridge, second_bridge))
    pbx.ami(
        "AttendedTransfer",
        [
            ("Result", "Success"),
            *first_leg.ami_fields("OrigTransferer"),
            *_bridge_fields(first_bridge, "OrigBridge"),
            *second_leg.ami_fields("SecondTransferer"),
            *_bridge_fields(second_bridge, "SecondBridge"),
            ("DestType", "Bridge"),
            ("DestBridgeUniqueid", first_bridge.id),
            *transferee.ami_fields("Transferee"),
            *target.ami_fields("TransferTarget"),
            ("IsExternal", "No"),
        ],
    )
    pbx.bridging.add(first_bridge, target)
    for leg in (first_leg, second_leg):
        pbx.bridging.remove(leg)
        pbx.hangup(leg, NORMAL_CLEARING, "remote")
