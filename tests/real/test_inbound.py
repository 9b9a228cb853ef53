"""Inbound calls through the sample dialplan into the daemon on a real Asterisk, with PJSIP phones that really
register, ring, answer and refuse; each call judged in Bitrix24 (who talked, the status, the talk time the PBX
itself measured, the cards shown and hidden).
"""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from bridge.sim.verdict import ANSWERED, INCOMING, CrmCall, Expect, calls_of
from tests.eventually import eventually
from tests.real.site import Site

PAIR, EVERYBODY, UNREGISTERED_FIRST, MENU = "74951110001", "74951110002", "74951110003", "74951110004"
MEDIA = "74951110005"
MONITORED = "74951112299"  # the sample's monitor-only line


async def walk_the_pair(s: Site, caller: str) -> CrmCall:
    """A call into ``PAIR`` walked as the sample queue walks it: 1001 rings out, 1002 answers and talks; returns the
    call as Bitrix24 has it once it is mirrored (answered by 1002, both cards shown)."""
    await s.phone("1001", "ring", ring=0)
    await s.phone("1002", "answer", ring=1, talk=2)
    await s.inbound(PAIR, caller)
    await s.ended("PJSIP/1002-")
    return await s.mirrored(
        Expect(caller, INCOMING, 12, ANSWERED, talk=s.talk("PJSIP/1002-"), recorded=True,
               shown_to=frozenset({11, 12}))
    )  # fmt: skip


async def test_the_second_member_answers_after_the_first_rang_out(real_site: Site) -> None:
    """Over ARI REST on the events WebSocket: ``auto`` (the default) finds that the PBX takes it, and the leg's join
    and variable go there too; the PBX sends the application only the messages the link reads."""
    s = real_site
    rest = s.daemon.ari.rest
    await eventually(lambda: rest.over_socket is not None and rest.over_socket.ready, timeout=10)
    over_http: list[str] = []
    send_over_http = rest._over_http

    async def noted(action: str, send: Any) -> Any:
        over_http.append(action)
        return await send_over_http(action, send)

    rest._over_http = noted  # type: ignore[method-assign]
    crm = await walk_the_pair(s, "79990000101")
    assert crm.cards == {11: ("show", "hide"), 12: ("show", "hide")}
    assert rest.over_socket is not None and rest.over_socket.ready and not rest.over_socket.closed
    assert "channels.setChannelVar" not in over_http and "bridges.addChannel" not in over_http, over_http
    app = await s.daemon.ari.request("applications", "get", applicationName="b24bridge")
    allowed = {f["type"] for f in app["events_allowed"]}
    assert {"StasisStart", "Dial", "ChannelDestroyed", "RESTResponse"} <= allowed and "ChannelVarset" not in allowed


async def test_everybody_rings_and_the_one_who_answers_talks(real_site: Site) -> None:
    s = real_site
    await s.phone("1001", "ring", ring=0)
    await s.phone("1002", "ring", ring=0)
    await s.phone("1003", "answer", ring=2, talk=2)
    await s.inbound(EVERYBODY, "79990000102")
    await s.ended("PJSIP/1003-")
    crm = await s.mirrored(
        Expect("79990000102", INCOMING, 13, ANSWERED, talk=s.talk("PJSIP/1003-"), recorded=True,
               shown_to=frozenset({11, 12, 13}))
    )  # fmt: skip
    assert all(actions == ("show", "hide") for actions in crm.cards.values()), crm.cards


async def test_a_member_whose_phone_says_busy_is_passed_over(real_site: Site) -> None:
    s = real_site
    await s.phone("1001", "busy", ring=1)  # 486 Busy Here after a second of ringing
    await s.phone("1002", "answer", ring=1, talk=2)
    await s.inbound(PAIR, "79990000103")
    await s.ended("PJSIP/1002-")
    await s.mirrored(
        Expect("79990000103", INCOMING, 12, ANSWERED, talk=s.talk("PJSIP/1002-"), recorded=True,
               shown_to=frozenset({11, 12}))
    )  # fmt: skip


async def test_an_unregistered_member_is_skipped_without_ringing(real_site: Site) -> None:
    s = real_site
    await s.phone("1002", "answer", ring=1, talk=2)
    await s.inbound(UNREGISTERED_FIRST, "79990000104")
    await s.ended("PJSIP/1002-")
    await s.mirrored(
        Expect("79990000104", INCOMING, 12, ANSWERED, talk=s.talk("PJSIP/1002-"), recorded=True,
               shown_to=frozenset({12}))
    )  # fmt: skip
    assert not s.pbx_ami.events("Newchannel", Channel="PJSIP/1009-"), "the unregistered phone was dialled"


async def test_a_member_busy_on_another_call_is_skipped(real_site: Site) -> None:
    s = real_site
    await s.phone("1003", "answer", ring=0, talk=0)
    await s.dial_out("1001", "1003", talk=60)  # an internal call: 1001 and 1003 are in use, nothing is mirrored
    await eventually(lambda: s.pbx_ami.events("Newstate", Channel="PJSIP/1003-", ChannelStateDesc="Up"), timeout=15)
    await s.phone("1002", "answer", ring=1, talk=2)
    await s.inbound(PAIR, "79990000105")
    await eventually(lambda: s.pbx_ami.events("Hangup", Channel="PJSIP/1002-"), timeout=30)
    await s.mirrored(
        Expect("79990000105", INCOMING, 12, ANSWERED, talk=s.talk("PJSIP/1002-"), recorded=True,
               shown_to=frozenset({12}))
    )  # fmt: skip
    assert calls_of(s.crm.state(), "1003") == [], "an internal call reached Bitrix24"


async def test_the_callers_menu_choice_routes_the_call(real_site: Site) -> None:
    s = real_site
    await s.phone("1003", "answer", ring=1, talk=2)
    await s.inbound(MENU, "79990000106", dtmf="1", dtmf_delay=2)  # "1" = 1003; no choice would ring 1001 first
    await s.ended("PJSIP/1003-")
    await s.mirrored(
        Expect("79990000106", INCOMING, 13, ANSWERED, talk=s.talk("PJSIP/1003-"), recorded=True,
               shown_to=frozenset({13}))
    )  # fmt: skip


async def test_the_samples_monitor_only_line_is_mirrored_from_ami(real_site: Site) -> None:
    s = real_site  # the sample dialplan rings 1001 and 1002 itself; the bridge only watches
    await s.phone("1001", "ring", ring=0)
    await s.phone("1002", "answer", ring=2, talk=2)
    await s.inbound(MONITORED, "79990000107")
    await s.ended("PJSIP/1002-")
    await s.mirrored(
        Expect("79990000107", INCOMING, 12, ANSWERED, talk=s.talk("PJSIP/1002-"), recorded=True,
               shown_to=frozenset({11, 12}))
    )  # fmt: skip


async def test_a_missing_greeting_and_an_unknown_music_class_leave_nobody_in_silence(real_site: Site) -> None:
    """What Asterisk 20 does, as the simulator models it: a sound it does not have ends its playback at once as
    ``failed`` (the bridge goes on to routing), and an unknown MOH class plays the ``default`` class."""
    s = real_site
    await s.phone("1002", "answer", ring=2, talk=2)
    with capture_logs() as logs:
        await s.inbound(MEDIA, "79990000108")
        await s.ended("PJSIP/1002-")
    await s.mirrored(
        Expect("79990000108", INCOMING, 12, ANSWERED, talk=s.talk("PJSIP/1002-"), recorded=True,
               shown_to=frozenset({12}))
    )  # fmt: skip
    warned = [e["problem"] for e in logs if e["event"] == "call.warning"]
    assert "could not play sound:b24-not-installed (is the sound file installed?): going on" in warned
    pbx_log = s.pbx.kit.log("pbx").read_text(errors="replace")
    assert "Playback failed for sound:b24-not-installed" in pbx_log
    assert "Music on Hold class 'b24-no-such-class' not found" in pbx_log
