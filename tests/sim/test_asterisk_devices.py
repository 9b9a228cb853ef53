"""Device states follow the device's own channels, however many other channels the PBX holds."""

from __future__ import annotations

from bridge.sim.asterisk.bus import EventBus
from bridge.sim.asterisk.parties import Answer, PartyBook
from bridge.sim.asterisk.pbx import Pbx


def reported(pbx: Pbx) -> list[tuple[str, str]]:
    changes: list[tuple[str, str]] = []
    pbx.bus.ami_sinks.append(
        lambda message: (
            changes.append((dict(message)["Device"], dict(message)["State"]))
            if dict(message).get("Event") == "DeviceStateChange"
            else None
        )
    )
    return changes


def test_a_device_state_follows_its_own_channels_among_many_others() -> None:
    pbx = Pbx(EventBus("02:fc:00:00:00:01"), PartyBook(Answer()))
    changes = reported(pbx)
    others = [pbx.single_channel(f"PJSIP/{2000 + i}") for i in range(20)]
    for channel in others:
        pbx.set_state(channel, "Up")
    changes.clear()

    ringing = pbx.single_channel("PJSIP/1001", state="Down")
    pbx.set_state(ringing, "Ringing")
    pbx.set_state(ringing, "Up")
    waiting = pbx.single_channel("PJSIP/1001")
    pbx.destroy(ringing, 16)
    pbx.destroy(waiting, 16)

    assert changes == [("PJSIP/1001", "RINGING"), ("PJSIP/1001", "INUSE"), ("PJSIP/1001", "RINGING"),
                       ("PJSIP/1001", "NOT_INUSE")]  # fmt: skip
    assert {pbx.devices.state_of(f"PJSIP/{2000 + i}") for i in range(20)} == {"INUSE"}


def test_a_channel_replaced_under_its_id_no_longer_counts_for_its_device() -> None:
    pbx = Pbx(EventBus("02:fc:00:00:00:01"), PartyBook(Answer()))
    old = pbx.single_channel("PJSIP/1001", uniqueid="chosen-id")
    pbx.set_state(old, "Up")
    new = pbx.single_channel("PJSIP/1002", uniqueid="chosen-id")
    pbx.set_state(new, "Up")
    pbx.destroy(new, 16)  # the table's entry under that id is gone; the replaced channel was not in it any more

    pbx.devices.refresh("PJSIP/1001")
    assert pbx.devices.state_of("PJSIP/1001") == "NOT_INUSE"
    assert pbx.devices.state_of("PJSIP/1002") == "NOT_INUSE"
