"""Issue 15's routing parity end to end, the real daemon against both simulators: ring counts per rule, per-line
media and the telephony-wide intercept code, employees known only from Bitrix24."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import stage
from bridge.sim.verdict import ANSWERED, INCOMING, MISSED, Expect
from tests.eventually import eventually
from tests.integration.daemon_support import agents_rung, mirrored

DIRECT = "74951112277"
SALES = "74951112233"


def _direct_line(rules: list[dict[str, Any]], **line: Any) -> Any:
    def tweak(data: dict[str, Any]) -> None:
        data["routing"]["ring_seconds"] = 1.0
        data["lines"][DIRECT] = {"name": "Direct", "default_ext": "1005", "rules": rules, **line}

    return tweak


def _ring_timeouts(requests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(endpoint, timeout) of every leg the daemon originated, in order."""
    return [(r["params"]["endpoint"], str(r["params"]["timeout"])) for r in requests if "endpoint" in r["params"]]


async def test_rings_on_a_rule_set_how_long_its_employee_and_number_ring(tmp_path: Path) -> None:
    rules = [
        {"when": "always", "then": "employee:1001", "rings": 2},
        {"when": "always", "then": "number:74950000001", "rings": 3},
        {"when": "always", "then": "employee:1002"},
    ]
    async with stage(tmp_path, tweak=_direct_line(rules)) as s:
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_party("74950000001", NeverAnswer())
        s.pbx.set_party("1002", Answer(after=0.2))
        call = await s.pbx.place_inbound_call(DIRECT, "79990001501", hangup_after_answer=0.5)
        await asyncio.wait_for(call.ended(), 30)
        await mirrored(s, Expect("79990001501", INCOMING, 12, ANSWERED, talk=0.5, recorded=True,
                                 shown_to=frozenset({11, 12})))  # fmt: skip
        # one ring is 1 s here: the rule's 2 and 3 rings, then the default 4 of an employee rule
        assert _ring_timeouts(s.pbx.requests) == [
            ("PJSIP/1001", "2"), ("PJSIP/74950000001@trunk", "3"), ("PJSIP/1002", "4")
        ]  # fmt: skip


def _portal_with_inner_numbers_as_typed() -> dict[str, Any]:
    """The default portal where Vera (13) typed her extension with spaces and Fyodor (17, 1007) was dismissed."""
    seed = json.loads((Path(__file__).parents[2] / "bridge/sim/bitrix24/default_seed.json").read_text("utf-8"))
    for user in seed["users"]:
        if user["ID"] == 13:
            user["UF_PHONE_INNER"] = " 10 03"
    return seed


async def test_an_extension_known_only_from_bitrix24_is_a_queue_member_and_an_unknown_one_is_skipped(
    tmp_path: Path,
) -> None:
    def tweak(data: dict[str, Any]) -> None:
        del data["employees"]["map"]["1003"]  # Vera is only in Bitrix24
        data["queues"]["sales"]["members"] = ["1001", "1007", "1003"]  # 1007: a dismissed user's extension
        data["lines"][SALES]["rules"] = [{"when": "always", "then": "queue:sales"}]

    with capture_logs() as logs:
        async with stage(tmp_path, tweak=tweak, crm_seed=_portal_with_inner_numbers_as_typed()) as s:
            assert s.daemon.current_plan().employees["1003"].user_id == 13
            s.pbx.set_party("1001", NeverAnswer())
            s.pbx.set_party("1003", Answer(after=0.2))
            call = await s.pbx.place_inbound_call(SALES, "79990001502", hangup_after_answer=0.5)
            await asyncio.wait_for(call.ended(), 20)
            await mirrored(s, Expect("79990001502", INCOMING, 13, ANSWERED, talk=0.5, recorded=True,
                                     shown_to=frozenset({11, 13})))  # fmt: skip
            assert agents_rung(s) == ["1001", "1003"]
    [unresolved] = [e for e in logs if e["event"] == "directory.unresolved"]
    assert unresolved["extensions"] == ["1007"] and unresolved["named_by"] == {"1007": ["queues.sales.members"]}
    warned = [e["problem"] for e in logs if e["event"] == "call.warning"]
    assert any(w.startswith("skipped as unavailable: 1007") for w in warned), warned


def _played(requests: list[dict[str, Any]]) -> list[str]:
    return [r["params"]["media"] for r in requests if "media" in r["params"]]


async def test_a_lines_greeting_music_class_and_voicemail_prompt_are_what_its_callers_hear(tmp_path: Path) -> None:
    rules = [{"when": "always", "then": "employee:1001", "rings": 1}, {"when": "always", "then": "voicemail:1005"}]
    media = {"greeting": "sound:custom/direct-hello", "moh_class": "direct", "voicemail_prompt": "sound:custom/vm"}
    async with stage(tmp_path, tweak=_direct_line(rules, **media)) as s:
        s.pbx.pbx.bridging.moh_classes.add("direct")
        s.pbx.set_party("1001", NeverAnswer())
        call = await s.pbx.place_inbound_call(DIRECT, "79990001503", hangup_after=4.0)
        await asyncio.wait_for(call.ended(), 20)
        await mirrored(s, Expect("79990001503", INCOMING, 15, MISSED, recorded=True, shown_to=frozenset({11})))
        assert _played(s.pbx.requests) == ["sound:custom/direct-hello", "sound:custom/vm"]
        assert [(asked, playing) for _, asked, playing in s.pbx.pbx.bridging.moh_played] == [("direct", "direct")]
        # another line keeps the global ones
        s.pbx.set_party("1002", Answer(after=0.2))
        other = await s.pbx.place_inbound_call(SALES, "79990001504", hangup_after_answer=0.3)
        await asyncio.wait_for(other.ended(), 20)
        assert s.pbx.pbx.bridging.moh_played[-1][1:] == ("default", "default")  # asterisk.moh_class


async def test_a_missing_greeting_and_an_unknown_music_class_never_leave_the_caller_in_silence(
    tmp_path: Path,
) -> None:
    rules = [{"when": "always", "then": "employee:1002"}]
    media = {"greeting": "sound:custom/not-installed", "moh_class": "nosuch"}
    with capture_logs() as logs:
        async with stage(tmp_path, tweak=_direct_line(rules, **media)) as s:
            s.pbx.pbx.media.missing_sounds.add("sound:custom/not-installed")
            s.pbx.set_party("1002", Answer(after=0.5))
            call = await s.pbx.place_inbound_call(DIRECT, "79990001505", hangup_after_answer=0.3)
            await asyncio.wait_for(call.ended(), 20)
            await mirrored(s, Expect("79990001505", INCOMING, 12, ANSWERED, talk=0.3, recorded=True,
                                     shown_to=frozenset({12})))  # fmt: skip
            # Asterisk plays its default class for a class musiconhold.conf lacks
            assert [(asked, playing) for _, asked, playing in s.pbx.pbx.bridging.moh_played] == [("nosuch", "default")]
    warned = [e["problem"] for e in logs if e["event"] == "call.warning"]
    assert "could not play sound:custom/not-installed (is the sound file installed?): going on" in warned


async def test_the_telephony_wide_intercept_code_takes_a_call_ringing_any_of_the_members_groups(
    tmp_path: Path,
) -> None:
    def tweak(data: dict[str, Any]) -> None:
        data["routing"]["intercept_code"] = "*9"
        data["lines"][SALES]["rules"] = [{"when": "always", "then": "queue:sales"}]

    async with stage(tmp_path, tweak=tweak) as s:
        s.pbx.set_party("1001", NeverAnswer())
        call = await s.pbx.place_inbound_call(SALES, "79990001506", hangup_after_answer=0.5)
        await eventually(lambda: agents_rung(s) == ["1001"])
        refused = await s.pbx.intercept("1006", "*9")  # not a member of sales
        await asyncio.wait_for(refused.ended(), 10)
        await s.pbx.intercept("1003", "*9")  # as the generated dialplan enters: intercept,1003,*9
        await asyncio.wait_for(call.ended(), 10)
        await mirrored(s, Expect("79990001506", INCOMING, 13, ANSWERED, talk=0.5, recorded=True,
                                 shown_to=frozenset({11, 13})))  # fmt: skip
