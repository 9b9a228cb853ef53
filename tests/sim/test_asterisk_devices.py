"""Device states follow the device's own channels, however many other channels the PBX holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.sim.asterisk import AsteriskSimulator
from bridge.sim.asterisk.bus import EventBus
from bridge.sim.asterisk.parties import Answer, PartyBook
from bridge.sim.asterisk.pbx import Pbx
from tests.eventually import eventually
from tests.sim.asterisk_clients import AmiWire, AriWire


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


def a_pbx() -> Pbx:
    """A PBX core without an event loop: device states are published as they change."""
    pbx = Pbx(EventBus("02:fc:00:00:00:01"), PartyBook(Answer()))
    pbx.devices.order = "device-first"
    return pbx


def test_a_device_state_follows_its_own_channels_among_many_others() -> None:
    pbx = a_pbx()
    changes = reported(pbx)
    others = [pbx.single_channel(f"PJSIP/{2000 + i}") for i in range(20)]
    for channel in others:
        pbx.set_state(channel, "Up")
    changes.clear()

    ringing = pbx.single_channel("PJSIP/1001", state="Down")
    pbx.set_state(ringing, "Ringing")
    pbx.set_state(ringing, "Up")
    waiting = pbx.single_channel("PJSIP/1001")
    pbx.set_state(waiting, "Ringing")
    pbx.destroy(ringing, 16)
    pbx.destroy(waiting, 16)

    assert changes == [("PJSIP/1001", "RINGING"), ("PJSIP/1001", "INUSE"), ("PJSIP/1001", "RINGINUSE"),
                       ("PJSIP/1001", "RINGING"), ("PJSIP/1001", "NOT_INUSE")]  # fmt: skip
    assert {pbx.devices.state_of(f"PJSIP/{2000 + i}") for i in range(20)} == {"INUSE"}


def test_a_channel_replaced_under_its_id_no_longer_counts_for_its_device() -> None:
    pbx = a_pbx()
    old = pbx.single_channel("PJSIP/1001", uniqueid="chosen-id")
    pbx.set_state(old, "Up")
    new = pbx.single_channel("PJSIP/1002", uniqueid="chosen-id")
    pbx.set_state(new, "Up")
    pbx.destroy(new, 16)  # the table's entry under that id is gone; the replaced channel was not in it any more

    pbx.devices.refresh("PJSIP/1001")
    assert pbx.devices.state_of("PJSIP/1001") == "NOT_INUSE"
    assert pbx.devices.state_of("PJSIP/1002") == "NOT_INUSE"


def test_a_phone_aggregates_its_channels_as_chan_pjsip_does() -> None:
    pbx = a_pbx()
    changes = reported(pbx)
    ours = pbx.single_channel("PJSIP/1002", state="Down")  # an originate that has not rung yet counts as idle
    assert pbx.devices.state_of("PJSIP/1002") == "NOT_INUSE"
    pbx.set_state(ours, "Ringing")
    dialling = pbx.single_channel("PJSIP/1002", state="Ring")  # the agent picks up another line and dials
    pbx.set_state(dialling, "Up")
    pbx.set_hold(dialling, True)  # RINGING + ONHOLD: held counts as in use
    pbx.destroy(ours, 16)
    pbx.set_hold(dialling, False)
    pbx.destroy(dialling, 16)

    assert [state for _, state in changes] == ["RINGING", "RINGINUSE", "ONHOLD", "INUSE", "NOT_INUSE"]


def test_an_unregistered_phone_is_unavailable_and_comes_back_idle() -> None:
    pbx = a_pbx()
    changes = reported(pbx)
    pbx.devices.set_endpoint_state("PJSIP/1009", "offline")
    pbx.devices.set_endpoint_state("PJSIP/1009", "online")
    assert changes == [("PJSIP/1009", "UNAVAILABLE"), ("PJSIP/1009", "NOT_INUSE")]


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[AsteriskSimulator]:
    async with AsteriskSimulator(media_seconds=0.05, recordings_dir=tmp_path) as simulator:
        simulator.set_party("1002", Answer(after=0.2))
        yield simulator


async def answer_seen(sim: AsteriskSimulator, order: str) -> tuple[list[str], list[str]]:
    """Originate a leg to PJSIP/1002 that answers; the ARI and AMI events of its answer, in arrival order."""
    sim.set_device_state_order(order, lag=0.05)
    ari = AriWire(sim.ari_url, "b24bridge", "ari-secret")
    await ari.open()
    ami = await AmiWire.connect(sim.ami_host, sim.ami_port)
    await ami.login("b24bridge", "ami-secret")
    try:
        await ari.call("POST", "/applications/b24bridge/subscription", {"eventSource": "deviceState:PJSIP/1002"})
        status, channel = await ari.call("POST", "/channels", {"endpoint": "PJSIP/1002", "app": "b24bridge"})
        assert status == 200
        await ari.wait_for("StasisStart", channel_id=channel["id"])
        await eventually(lambda: _has(ari.events, "DeviceStateChanged", "INUSE"))
        await eventually(lambda: any(e.get("State") == "INUSE" for e in ami.events("DeviceStateChange")))
        seen_ari = [_label(e) for e in ari.events if e["type"] in ("StasisStart", "DeviceStateChanged",
                                                                 "ChannelStateChange")]  # fmt: skip
        seen_ami = [f"{e['Event']}:{e.get('State') or e.get('ChannelStateDesc')}"
                    for e in ami.events() if e.get("Event") in ("DeviceStateChange", "Newstate")]  # fmt: skip
        return seen_ari, seen_ami
    finally:
        await ari.close()
        await ami.close()


def _has(events: list[dict[str, Any]], kind: str, state: str) -> bool:
    return any(e["type"] == kind and e["device_state"]["state"] == state for e in events)


def _label(event: dict[str, Any]) -> str:
    if event["type"] == "DeviceStateChanged":
        return f"DeviceStateChanged:{event['device_state']['state']}"
    if event["type"] == "ChannelStateChange":
        return f"ChannelStateChange:{event['channel']['state']}"
    return event["type"]


async def test_device_first_publishes_the_answer_before_its_channel_events(sim: AsteriskSimulator) -> None:
    seen_ari, seen_ami = await answer_seen(sim, "device-first")
    assert seen_ari.index("DeviceStateChanged:INUSE") < seen_ari.index("ChannelStateChange:Up")
    assert seen_ari.index("DeviceStateChanged:INUSE") < seen_ari.index("StasisStart")
    assert seen_ami.index("DeviceStateChange:INUSE") < seen_ami.index("Newstate:Up")


async def test_device_last_publishes_the_answer_after_stasis_start(sim: AsteriskSimulator) -> None:
    seen_ari, seen_ami = await answer_seen(sim, "device-last")
    assert seen_ari.index("StasisStart") < seen_ari.index("DeviceStateChanged:INUSE")
    assert seen_ami.index("Newstate:Up") < seen_ami.index("DeviceStateChange:INUSE")
    assert seen_ari.index("DeviceStateChanged:RINGING") < seen_ari.index("DeviceStateChanged:INUSE")


async def test_an_unknown_order_is_refused(sim: AsteriskSimulator) -> None:
    with pytest.raises(ValueError, match="device-first"):
        sim.set_device_state_order("sideways")
