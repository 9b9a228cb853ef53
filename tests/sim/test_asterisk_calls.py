"""Scripted calls: inbound customers, phones dialing out, feature codes, agents hanging up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bridge.sim.asterisk import Answer, AsteriskSimulator, Busy, NeverAnswer
from tests.eventually import eventually
from tests.sim.asterisk_clients import AmiWire, AriWire

WHO = '"Иван Петров" <79161234567>'


@pytest.fixture
async def ami(sim: AsteriskSimulator) -> AsyncIterator[AmiWire]:
    wire = await AmiWire.connect(sim.ami_host, sim.ami_port)
    await wire.login("b24bridge", "ami-secret")
    yield wire
    await wire.close()


async def bridge_with_agent(ari: AriWire, caller_id: str, ext: str) -> tuple[str, str]:
    await ari.call("POST", f"/channels/{caller_id}/answer")
    _, bridge = await ari.call("POST", "/bridges", {"type": "mixing"})
    await ari.call("POST", f"/bridges/{bridge['id']}/addChannel", {"channel": caller_id})
    params = {"endpoint": f"Local/{ext}@agents", "app": "b24bridge", "appArgs": f"agent,{bridge['id']},{ext}"}
    _, agent = await ari.call("POST", "/channels", {**params, "callerId": WHO})
    await ari.wait_for("StasisStart", channel_id=agent["id"])
    await ari.call("POST", f"/bridges/{bridge['id']}/addChannel", {"channel": agent["id"]})
    return bridge["id"], agent["id"]


def trunk_dials(ami: AmiWire, event: str) -> list[dict[str, str]]:
    """Dial events of the phone's Dial() (they name the calling channel; an originate's do not)."""
    return [e for e in ami.events(event) if "Channel" in e]


async def test_inbound_call_sends_dtmf_then_hangs_up(sim: AsteriskSimulator, ari: AriWire, ami: AmiWire) -> None:
    call = await sim.place_inbound_call(
        did="74951112233", caller="79161234567", caller_name="Иван Петров", hangup_after=0.3, dtmf=[(0.1, "12")]
    )
    start = await ari.wait_for("StasisStart", channel_id=call.channel_id)
    assert start["args"] == ["inbound", "74951112233"]
    assert start["channel"]["caller"] == {"name": "Иван Петров", "number": "79161234567"}
    assert start["channel"]["name"].startswith("Local/74951112233@from-trunk-") and call.linkedid.endswith(".0")
    await ari.call("POST", f"/channels/{call.channel_id}/answer")
    await asyncio.wait_for(call.ended(), 5)
    digits = [(e["digit"], e["duration_ms"]) for e in ari.events if e["type"] == "ChannelDtmfReceived"]
    assert digits == [("1", 100), ("2", 100)]
    assert [e["Digit"] for e in ami.events("DTMFEnd")] == ["1", "2"]
    assert ari.events[-1]["type"] == "StasisEnd", "after StasisEnd the app hears nothing more of it"
    await eventually(lambda: ami.events("OriginateResponse"))
    assert ami.events("OriginateResponse")[0]["Response"] == "Success"
    assert sorted(e["Cause"] for e in ami.events("Hangup")) == ["16", "16"]


async def test_inbound_caller_hangs_up_after_talking_to_an_agent(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.set_party("1001", Answer(after=0.05, talk=None))
    call = await sim.place_inbound_call("74951112233", "79161234567", "Иван Петров", hangup_after_answer=0.2)
    await ari.wait_for("StasisStart", channel_id=call.channel_id)
    _, agent_id = await bridge_with_agent(ari, call.channel_id, "1001")
    entered = await ari.wait_for("ChannelEnteredBridge", channel_id=agent_id)
    assert sorted(entered["bridge"]["channels"]) == sorted([call.channel_id, agent_id])
    assert sim.pbx.channels[agent_id].linkedid == call.linkedid, "bridging spreads the oldest linkedid"
    await ari.wait_for("StasisEnd", channel_id=call.channel_id)
    left = await ari.wait_for("ChannelLeftBridge", channel_id=call.channel_id)
    assert left["bridge"]["channels"] == [agent_id]
    await asyncio.wait_for(call.ended(), 5)
    assert agent_id in sim.pbx.channels, "the agent stays until the app hangs it up"


async def test_agent_hangs_up_after_talking(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.set_party("1001", Answer(after=0.05, talk=0.1))
    call = await sim.place_inbound_call("74951112233", "79161234567")
    await ari.wait_for("StasisStart", channel_id=call.channel_id)
    _, agent_id = await bridge_with_agent(ari, call.channel_id, "1001")
    gone = await ari.wait_for("ChannelDestroyed", channel_id=agent_id)
    assert (gone["cause"], gone["cause_txt"]) == (16, "Normal Clearing")
    assert await ari.wait_for("StasisEnd", channel_id=agent_id)
    assert call.channel_id in sim.pbx.channels, "the customer is still there"


async def test_no_app_means_the_inbound_call_is_lost(sim: AsteriskSimulator, ami: AmiWire) -> None:
    call = await sim.place_inbound_call("74951112233", "79161234567")
    await asyncio.wait_for(call.ended(), 5)
    await eventually(lambda: ami.events("OriginateResponse"))
    assert ami.events("OriginateResponse")[0]["Response"] == "Failure"
    assert [e["Value"] for e in ami.events("VarSet") if e["Variable"] == "STASISSTATUS"] == ["FAILED"]


async def test_outbound_call_answered_as_recorded(sim: AsteriskSimulator, ami: AmiWire, ari: AriWire) -> None:
    call = await sim.place_outbound_call(from_ext="1001", number="84951234567", answer_after=0.1, talk=0.15)
    await asyncio.wait_for(call.ended(), 5)
    await eventually(lambda: ami.events("BridgeDestroy"))
    assert [e["DialStatus"] for e in trunk_dials(ami, "DialEnd")] == ["ANSWER"]
    dial = trunk_dials(ami, "DialBegin")[0]
    assert (dial["Channel"], dial["DestChannel"][:30]) == (call.channel.name, "Local/84951234567@external-000")
    assert dial["DialString"] == "84951234567@external"
    assert [e["BridgeType"] for e in ami.events("BridgeCreate")] == ["basic"]
    assert ami.events("MixMonitorStart")[0]["Channel"] == call.channel.name
    assert {e["Cause"] for e in ami.events("Hangup")} == {"16"}
    assert [e for e in ari.events if e["type"] != "ApplicationReplaced"] == [], "no Stasis, nothing on ARI"
    assert f"out-{call.channel_id}" in sim.recordings
    cdr = next(e for e in ami.events("Cdr") if e["Channel"] == call.channel.name)
    assert (cdr["UserField"], cdr["Disposition"]) == ("outbound", "ANSWERED")


@pytest.mark.parametrize(("party", "status", "cause"), [(Busy(), "BUSY", "17"), (NeverAnswer(), "NOANSWER", "19")])
async def test_outbound_call_to_a_number_that_does_not_answer(
    sim: AsteriskSimulator, ami: AmiWire, party: Busy | NeverAnswer, status: str, cause: str
) -> None:
    sim.set_party("84951234567", party)
    call = await sim.place_outbound_call("1001", "84951234567", dial_timeout=0.2)
    await asyncio.wait_for(call.ended(), 5)
    await eventually(lambda: len(ami.events("Hangup")) == 4)
    assert [e["DialStatus"] for e in trunk_dials(ami, "DialEnd")] == [status]
    phone = next(e for e in ami.events("Hangup") if e["Channel"] == call.channel.name)
    assert phone["Cause"] == cause
    assert not ami.events("BridgeCreate")


async def test_phone_gives_up_while_the_number_rings(sim: AsteriskSimulator, ami: AmiWire) -> None:
    sim.set_party("84951234567", NeverAnswer())
    call = await sim.place_outbound_call("1001", "84951234567", hangup_after=0.1)
    await asyncio.wait_for(call.ended(), 5)
    await eventually(lambda: trunk_dials(ami, "DialEnd"))
    assert [e["DialStatus"] for e in trunk_dials(ami, "DialEnd")] == ["CANCEL"]


async def test_pjsip_phone_and_trunk_use_single_channels(sim: AsteriskSimulator, ami: AmiWire) -> None:
    sim.trunk_template = "PJSIP/{number}@trunk"
    call = await sim.place_outbound_call("1001", "84951234567", answer_after=0.05, talk=0.1, device="PJSIP/1001")
    await asyncio.wait_for(call.ended(), 5)
    names = {e["Channel"].rsplit("-", 1)[0] for e in ami.events("Newchannel")}
    assert names == {"PJSIP/1001", "PJSIP/trunk"}
    assert [e["ChannelStateDesc"] for e in ami.events("Newchannel") if e["Channel"].startswith("PJSIP/1001")] == [
        "Ring"
    ]
    assert [e["DialString"] for e in trunk_dials(ami, "DialBegin")] == ["84951234567@trunk"]


async def test_intercept_code_enters_stasis_with_its_args(sim: AsteriskSimulator, ari: AriWire) -> None:
    call = await sim.intercept(ext="1003", code="*8", args=("intercept", "1003"))
    start = await ari.wait_for("StasisStart", channel_id=call.channel_id)
    assert start["args"] == ["intercept", "1003"]
    assert start["channel"]["dialplan"]["exten"] == "*8"
    pjsip = await sim.intercept(ext="1004", device="PJSIP/1004")
    start = await ari.wait_for("StasisStart", channel_id=pjsip.channel_id)
    assert start["args"] == ["intercept", "1004", "*8"] and start["channel"]["state"] == "Ring"
    await ari.call("DELETE", f"/channels/{pjsip.channel_id}")
    await asyncio.wait_for(pjsip.ended(), 5)


async def test_channels_snapshot_and_variables(sim: AsteriskSimulator, ari: AriWire) -> None:
    call = await sim.place_inbound_call("74951112233", "79161234567", "Иван Петров")
    await ari.wait_for("StasisStart")
    snapshot = {c["id"]: c for c in sim.channels()}
    assert snapshot[call.channel_id]["dialplan"]["app_name"] == "Stasis"
    assert snapshot[call.caller_channel.id]["state"] == "Down"
    status, value = await ari.call("GET", f"/channels/{call.channel_id}/variable", {"variable": "CHANNEL(linkedid)"})
    assert (status, value) == (200, {"value": call.linkedid})
    await ari.call("POST", f"/channels/{call.channel_id}/variable", {"variable": "X_TAG", "value": "vip"})
    varset = await ari.wait_for("ChannelVarset", variable="X_TAG")
    assert varset["value"] == "vip"
    missing = await ari.call("GET", f"/channels/{call.channel_id}/variable", {"variable": "NOPE"})
    assert missing == (404, {"message": "Provided variable was not found"})


async def answered_leg(ari: AriWire, endpoint: str) -> str:
    params = {"endpoint": endpoint, "app": "b24bridge", "appArgs": "leg", "callerId": WHO}
    _, channel = await ari.call("POST", "/channels", params)
    await ari.wait_for("StasisStart", channel_id=channel["id"])
    return str(channel["id"])


async def test_blind_transfer_replaces_the_agent_with_a_local_leg(
    sim: AsteriskSimulator, ari: AriWire, ami: AmiWire
) -> None:
    sim.set_party("1001", Answer(after=0.05))
    sim.set_party("1002", Answer(after=0.05))
    call = await sim.place_inbound_call("74951112233", "79161234567", "Иван Петров")
    await ari.wait_for("StasisStart", channel_id=call.channel_id)
    bridge_id, agent_id = await bridge_with_agent(ari, call.channel_id, "1001")
    replacement = await sim.blind_transfer(agent_id, "1002")
    transfer = await ari.wait_for("BridgeBlindTransfer")
    assert (transfer["exten"], transfer["result"], transfer["bridge"]["id"]) == ("1002", "Success", bridge_id)
    assert (transfer["channel"]["id"], transfer["transferee"]["id"]) == (agent_id, call.channel_id)
    assert transfer["replace_channel"]["id"] == replacement
    start = await ari.wait_for("StasisStart", channel_id=replacement)
    assert start["replace_channel"]["id"] == agent_id
    await ari.wait_for("ChannelDestroyed", channel_id=agent_id)
    await ari.wait_for("Dial", dialstatus="ANSWER", peer_name="Local/1002@from-agents-")
    assert sorted(sim.pbx.bridges[bridge_id].member_ids()) == sorted([call.channel_id, replacement])
    await eventually(lambda: ami.events("BlindTransfer"))
    assert ami.events("BlindTransfer")[0]["Extension"] == "1002"


async def test_attended_transfer_joins_transferee_and_target(sim: AsteriskSimulator, ari: AriWire) -> None:
    for ext in ("1001", "1002", "1003"):
        sim.set_party(ext, Answer(after=0))
    customer, first = await answered_leg(ari, "PJSIP/1003"), await answered_leg(ari, "PJSIP/1001")
    second, target = await answered_leg(ari, "PJSIP/1001"), await answered_leg(ari, "PJSIP/1002")
    bridges = []
    for pair in ((customer, first), (second, target)):
        _, bridge = await ari.call("POST", "/bridges")
        await ari.call("POST", f"/bridges/{bridge['id']}/addChannel", {"channel": ",".join(pair)})
        bridges.append(bridge["id"])
    await sim.attended_transfer(first, second)
    transfer = await ari.wait_for("BridgeAttendedTransfer")
    assert (transfer["transferee"]["id"], transfer["transfer_target"]["id"]) == (customer, target)
    assert transfer["destination_bridge"] == bridges[0]
    for leg in (first, second):
        await ari.wait_for("ChannelDestroyed", channel_id=leg)
    assert sim.pbx.bridges[bridges[0]].member_ids() == [customer, target]
    with pytest.raises(ValueError):
        await sim.attended_transfer(customer, "no-such-channel")


async def test_client_chosen_ids_bridge_and_keep_the_oldest_linkedid(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.set_party("1001", Answer(after=0))
    call = await sim.place_inbound_call("74951112233", "79161234567")
    await ari.wait_for("StasisStart", channel_id=call.channel_id)
    params = {"endpoint": "Local/1001@agents", "app": "b24bridge", "channelId": "call-leg2", "otherChannelId": "x"}
    assert (await ari.call("POST", "/channels", params))[0] == 200
    await ari.wait_for("StasisStart", channel_id="call-leg2")
    _, bridge = await ari.call("POST", "/bridges")
    both = {"channel": f"call-leg2,{call.channel_id}"}
    assert (await ari.call("POST", f"/bridges/{bridge['id']}/addChannel", both))[0] == 204
    assert sim.pbx.channels["call-leg2"].linkedid == call.linkedid
