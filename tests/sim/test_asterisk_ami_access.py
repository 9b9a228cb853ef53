"""The simulator's AMI event mask, user classes and event filters, as Asterisk 20's manager.c applies them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.config import AsteriskSettings
from bridge.pbx.ami_events import event_filter
from bridge.sim.asterisk import Answer, AsteriskSimulator
from bridge.sim.asterisk.ami_access import ALL, CLASSES, Access, get_perm, strings_to_mask
from tests.eventually import eventually
from tests.sim.asterisk_clients import AmiWire


@pytest.fixture
async def sim() -> AsyncIterator[AsteriskSimulator]:
    async with AsteriskSimulator(media_seconds=0.05) as simulator:
        yield simulator


async def logged_in(sim: AsteriskSimulator, events: str) -> AmiWire:
    wire = await AmiWire.connect(sim.ami_host, sim.ami_port)
    assert (await wire.login("b24bridge", "ami-secret", events=events))["Response"] == "Success"
    return wire


async def traffic(sim: AsteriskSimulator, wire: AmiWire) -> set[str]:
    """One of each: a device state (call), a peer status (system), a global VarSet (dialplan); then a Ping, so
    that every event sent before it has arrived. The names of the events the session received."""
    sim.set_endpoint_state("PJSIP/1001", "online")  # ContactStatus, PeerStatus (system), DeviceStateChange (call)
    sim.set_global_variable("RECORD_CALLS", "yes")  # VarSet (dialplan)
    assert (await wire.action("Ping"))["Ping"] == "Pong"
    return {event["Event"] for event in wire.events()}


@pytest.mark.parametrize(
    ("text", "mask"),
    [
        ("", None),  # no header: the mask stays as it is
        ("on", ALL),
        ("YES", ALL),
        ("off", 0),
        ("n", 0),
        ("1", CLASSES["system"]),  # digits are a number, not "true"
        ("2050", CLASSES["call"] | CLASSES["dialplan"]),
        ("call,dialplan", CLASSES["call"] | CLASSES["dialplan"]),
        ("Call", 0),  # class names are case-sensitive
        ("calls", 0),  # the last name must match exactly
        ("c,dialplan", get_perm("call,command,config,cdr,cc,dialplan")),  # the others match as prefixes
    ],
)
def test_event_masks_read_as_asterisk_reads_them(text: str, mask: int | None) -> None:
    assert strings_to_mask(text) == mask


async def test_the_login_mask_keeps_only_its_classes(sim: AsteriskSimulator) -> None:
    wire = await logged_in(sim, "call")
    assert await traffic(sim, wire) == {"DeviceStateChange"}
    await wire.close()


async def test_events_on_sends_every_class_and_fully_booted_with_the_login(sim: AsteriskSimulator) -> None:
    wire = await logged_in(sim, "on")
    assert await traffic(sim, wire) >= {"FullyBooted", "SuccessfulAuth", "DeviceStateChange", "PeerStatus", "VarSet"}
    await wire.close()


async def test_events_off_sends_nothing_but_answers(sim: AsteriskSimulator) -> None:
    wire = await logged_in(sim, "off")
    assert await traffic(sim, wire) == set()
    assert (await wire.action("Events", EventMask="dialplan"))["Events"] == "On"
    assert await traffic(sim, wire) == {"VarSet"}
    assert (await wire.action("Events", EventMask=""))["Message"] == "Invalid event mask"
    await wire.close()


async def test_a_global_varset_names_no_channel(sim: AsteriskSimulator) -> None:
    wire = await logged_in(sim, "dialplan")
    assert (await wire.action("Setvar", Variable="PHONE_1002", Value="busy,1,0"))["Message"] == "Variable Set"
    await eventually(lambda: wire.events("VarSet"))
    (varset,) = wire.events("VarSet")
    assert varset == {
        "Event": "VarSet",
        "Privilege": "dialplan,all",
        "Channel": "none",
        "Uniqueid": "none",
        "Variable": "PHONE_1002",
        "Value": "busy,1,0",
    }
    assert sim.global_variables["PHONE_1002"] == "busy,1,0"
    await wire.close()


async def test_the_user_read_classes_bound_every_mask() -> None:
    async with AsteriskSimulator(ami_read="call,system") as sim:
        wire = await logged_in(sim, "on")
        assert await traffic(sim, wire) == {"FullyBooted", "ContactStatus", "PeerStatus", "DeviceStateChange"}
        await wire.close()


async def test_include_and_exclude_filters(sim: AsteriskSimulator) -> None:
    wire = await logged_in(sim, "on")
    assert (await wire.action("Filter", Operation="Add", Filter="^Event: (PeerStatus|VarSet)[^A-Za-z]"))[
        "Response"
    ] == "Success"
    assert (await wire.action("Filter", Operation="Add", Filter="!Variable: RECORD_CALLS[[:space:]]"))[
        "Message"
    ] == "Success"
    wire.frames.clear()
    sim.set_global_variable("OTHER", "1")
    assert await traffic(sim, wire) == {"PeerStatus", "VarSet"}
    assert [e["Variable"] for e in wire.events("VarSet")] == ["OTHER"], "the exclude filter wins over the include"
    await wire.close()


HANGUP = "Event: Hangup\r\nPrivilege: call,all\r\nChannel: PJSIP/1001-00000001\r\nUniqueid: 17.1-leg1\r\n\r\n"
NEWSTATE = HANGUP.replace("Hangup", "Newstate")
REQUEST = HANGUP.replace("Hangup", "HangupRequest")


@pytest.mark.parametrize(
    ("filters", "sent"),
    [
        ([], {"Hangup", "Newstate", "HangupRequest"}),  # no filter: everything
        (["^Event: Hangup[^A-Za-z]"], {"Hangup"}),  # includes only: what one matches
        (["^Event: Hangup", "^Event: Newstate"], {"Hangup", "Newstate", "HangupRequest"}),  # any include
        (["!^Event: Newstate"], {"Hangup", "HangupRequest"}),  # excludes only: what none matches
        (["!Uniqueid: [^[:cntrl:]]*-leg[0-9]+[[:cntrl:]]"], set()),  # [:cntrl:] is the \r of the line's end
        (["!-leg1[[:cntrl:]]", "^Event: Hangup[^A-Za-z]"], set()),  # include, then exclude, in any order of adding
        (["^Event: Hangup.*Channel: PJSIP"], {"Hangup", "HangupRequest"}),  # "." crosses lines; unanchored names
        (["^Event: Newstate", "!^Event: Hangup"], {"Newstate"}),
        (["^event: hangup"], set()),  # case-sensitive
    ],
)
def test_filters_decide_as_should_send_event_does(filters: list[str], sent: set[str]) -> None:
    access = Access()
    assert all(access.add_filter(pattern) is None for pattern in filters)
    passed = {text.split("\r\n")[0].removeprefix("Event: ") for text in (HANGUP, NEWSTATE, REQUEST)
              if access.wants("call,all", text)}  # fmt: skip
    assert passed == sent


async def test_filters_do_not_touch_action_answers_and_keep_originate_responses(sim: AsteriskSimulator) -> None:
    sim.set_party("1006", Answer(after=0.05))
    wire = await logged_in(sim, "on")
    await wire.action("Filter", Operation="Add", Filter="^Event: OriginateResponse[^A-Za-z]")
    wire.frames.clear()  # the login's FullyBooted and SuccessfulAuth
    queued = await wire.action("Originate", Channel="PJSIP/1006", Application="Wait", Data="1", Async="true")
    await eventually(lambda: wire.events("OriginateResponse"))
    listed = wire.send("DeviceStateList")
    await eventually(lambda: any(f[0] == ("Event", "DeviceStateListComplete") for f in wire.with_id(listed)))
    assert any(dict(f).get("Event") == "DeviceStateChange" for f in wire.with_id(listed)), "list items pass"
    assert {e["Event"] for e in wire.events() if e.get("ActionID") != listed} == {"OriginateResponse"}
    assert wire.events("OriginateResponse")[0]["ActionID"] == queued["ActionID"]
    await wire.close()


async def test_bad_filters_are_refused_as_asterisk_words_it(sim: AsteriskSimulator) -> None:
    wire = await logged_in(sim, "on")
    broken = await wire.action("Filter", Operation="Add", Filter="Event: (Hangup")
    assert (broken["Response"], broken["Message"]) == (
        "Error",
        "Filter did not compile.  Check the syntax of the filter given.",
    )
    assert (await wire.action("Filter", Operation="Add", Filter="!"))["Response"] == "Error"
    assert (await wire.action("Filter", Filter="Event: Hangup"))["Message"] == "Unknown operation"
    assert await traffic(sim, wire) >= {"PeerStatus", "VarSet"}, "no filter was added"
    await wire.close()


async def test_filter_needs_write_system() -> None:
    async with AsteriskSimulator(ami_read="call,dialplan", ami_write="originate,reporting") as sim:
        wire = await logged_in(sim, "on")
        denied = await wire.action("Filter", Operation="Add", Filter="^Event: Hangup[^A-Za-z]")
        assert (denied["Response"], denied["Message"]) == ("Error", "Permission denied")
        assert (await wire.action("Setvar", Variable="X", Value="1"))["Message"] == "Permission denied"
        assert (await wire.action("Ping"))["Response"] == "Success", "Ping needs no class"
        assert await traffic(sim, wire) == {"DeviceStateChange", "VarSet"}
        await wire.close()


async def test_the_bridges_user_reads_astdb_but_deletes_only_through_the_forget_dialplan() -> None:
    """DBGetTree needs system or reporting, DBDelTree system (main/db.c); the bridge's user deletes a trace by
    originating into [b24-fallback-forget], which its ``originate`` class allows."""
    async with AsteriskSimulator(ami_read="call,dialplan", ami_write="originate,reporting") as sim:
        sim.astdb.update({"/b24fallback/1700000000.1/line": "74951112233", "/b24fallback/1700000000.1/end": "5",
                          "/b24fallbackx/1/line": "not in the family", "/other/1": "x"})  # fmt: skip
        wire = await logged_in(sim, "off")
        tree = await wire.action("DBGetTree", Family="b24fallback")
        assert (tree["Response"], tree["EventList"]) == ("Success", "start")
        await eventually(lambda: wire.events("DBGetTreeComplete"))
        rows = {e["Key"]: e["Val"] for e in wire.events("DBGetTreeResponse")}
        assert rows == {"/b24fallback/1700000000.1/line": "74951112233", "/b24fallback/1700000000.1/end": "5"}
        denied = await wire.action("DBDelTree", Family="b24fallback")
        assert denied["Message"] == "Permission denied" and len(sim.astdb) == 4
        gone = await wire.action(
            "Originate", Channel="Local/1700000000.1@b24-fallback-forget", Application="NoOp", Async="true"
        )
        assert gone["Response"] == "Success"
        await eventually(lambda: sorted(sim.astdb) == ["/b24fallbackx/1/line", "/other/1"])
        await wire.close()


def frame(*headers: tuple[str, str]) -> str:
    return "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"


def snapshot(event: str, context: str, exten: str = "s") -> str:
    return frame(("Event", event), ("Privilege", "call,all"), ("Channel", "PJSIP/1001-00000001"),
                 ("Context", context), ("Exten", exten), ("Uniqueid", "1.1"), ("Linkedid", "1.1"))  # fmt: skip


def bridge_enter(channels: int) -> str:
    return frame(("Event", "BridgeEnter"), ("Privilege", "call,all"), ("BridgeNumChannels", str(channels)),
                 ("Channel", "PJSIP/trunk-00000001"), ("Uniqueid", "1.1"), ("Linkedid", "1.1"))  # fmt: skip


def test_the_bridges_filters_pass_state_changes_and_bridge_entries_only_where_the_translator_reads_them() -> None:
    """``Newstate`` only in a watched context or on a watched line (it only shows a watched call start), and
    ``BridgeEnter`` from the second channel (the answer of a watched call): tests/real/test_ami_filter.py shows the
    real Asterisk does the same with them."""
    settings = AsteriskSettings(outbound_contexts=("from-agents",), monitor_lines=("74951112299",))
    access = Access()
    assert all(access.add_filter(pattern) is None for pattern in event_filter(settings))
    wanted = {
        snapshot("Newstate", "from-agents", "84951234567"): True,
        snapshot("Newstate", "from-trunk", "74951112299"): True,
        snapshot("Newstate", "from-trunk", "74951110001"): False,
        snapshot("Newstate", "from-agentsX", "84951234567"): False,
        snapshot("Newexten", "from-trunk", "74951110001"): False,
        snapshot("Newchannel", "from-trunk", "74951110001"): True,
        bridge_enter(1): False,
        bridge_enter(2): True,
        bridge_enter(10): True,
        bridge_enter(0): False,
    }
    assert {text: access.wants("call,all", text) for text in wanted} == wanted
