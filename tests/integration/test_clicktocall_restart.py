"""A click-to-call that spans a daemon restart (stopped with ``grace=0``: the calls stay up on the PBX): the new
process finds it in the journal and on the PBX and carries it on. Employees are PJSIP phones, the client is reached
through the trunk, as the default templates have it. The restart comes while the employee's phone still rings,
while both talk, or after the client hung up while no daemon ran."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from bridge.pbx.ari_commands import ANSWERED_VAR
from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import Stage, stage
from bridge.sim.verdict import ANSWERED, CALLBACK, OUTGOING, Expect, calls_of, crm_call, verdict
from tests.eventually import eventually
from tests.integration.daemon_support import mirrored

SALES = "74951112233"


def channels(s: Stage, prefix: str) -> list[dict[str, Any]]:
    return [c for c in s.pbx.channels() if c["name"].startswith(prefix)]


def answered(s: Stage) -> bool:
    return any(session.answered for session in s.daemon.desk.sessions.values())


async def restart(s: Stage) -> None:
    """Stop as SIGTERM does with no grace (the click-to-call stays up), start a new daemon, wait for its look."""
    await s.stop_daemon(grace=0.0, flush=0.0)
    await s.start_daemon()
    await eventually(lambda: s.daemon.recovery.looked)


async def test_a_click_to_call_talking_across_a_restart_stays_connected_and_is_finished_for_its_employee(
    tmp_path: Path,
) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        s.pbx.set_party("79260000301", Answer(after=0.2, talk=4.0))
        call_id = await s.crm.click_to_call(11, "79260000301")
        await eventually(lambda: answered(s))
        with capture_logs() as logs:
            await restart(s)
            assert len(channels(s, "PJSIP/1001-")) == 1, "the employee's leg must not be hung up as an orphan"
            assert len(channels(s, "PJSIP/trunk-")) == 1, "nor the client's"
            crm = await mirrored(
                s,
                Expect("79260000301", OUTGOING, 11, ANSWERED, talk=4.0, recorded=True, shown_to=frozenset({11}),
                       crm_call_id=call_id),
            )  # fmt: skip
        assert crm.cards == {11: ("show", "hide")}
        found = {e.get("found") for e in logs if e["event"] == "call.reconciled"}
        assert "click-to-call talking, resumed" in found and "orphan leg, hung up" not in found
        await eventually(lambda: channels(s, "PJSIP/") == [])  # the employee is not left on a dead line


async def test_an_employee_who_picks_up_after_the_restart_gets_the_client_dialled(tmp_path: Path) -> None:
    async with stage(tmp_path, ring_seconds=2.0) as s:  # the employee's phone rings 6 rings: 12 s
        s.pbx.set_party("1002", NeverAnswer())
        s.pbx.set_party("79260000302", Answer(after=0.2, talk=1.5))
        call_id = await s.crm.click_to_call(12, "79260000302")
        await eventually(lambda: len(channels(s, "PJSIP/1002-")) == 1)
        await restart(s)
        (phone,) = channels(s, "PJSIP/1002-")
        s.pbx.pick_up(phone["id"])
        await mirrored(
            s,
            Expect("79260000302", OUTGOING, 12, ANSWERED, talk=1.5, recorded=True, shown_to=frozenset({12}),
                   crm_call_id=call_id),
        )  # fmt: skip
        dialled = [r["params"]["endpoint"] for r in s.pbx.requests if "endpoint" in r["params"]]
        assert dialled == ["PJSIP/1002", "PJSIP/79260000302@trunk"], "the employee is rung once, the client once"


async def test_a_client_who_hung_up_while_no_daemon_ran_ends_the_call_for_the_employee(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1003", Answer(after=0.1))
        s.pbx.set_party("79260000303", Answer(after=0.2))
        call_id = await s.crm.click_to_call(13, "79260000303")
        await eventually(lambda: answered(s))
        talk_began = time.monotonic()
        await s.stop_daemon(grace=0.0, flush=0.0)
        (client,) = channels(s, "PJSIP/trunk-")
        s.pbx.hang_up(client["id"])
        talked = time.monotonic() - talk_began
        await s.start_daemon()
        await eventually(lambda: s.daemon.recovery.looked)
        looked = time.monotonic() - talk_began
        await eventually(lambda: channels(s, "PJSIP/1003-") == [])  # the employee left alone is hung up
        expect = Expect("79260000303", OUTGOING, 13, ANSWERED, recorded=True, shown_to=frozenset({13}),
                        crm_call_id=call_id)  # fmt: skip
        await eventually(lambda: [p for p in verdict(expect, s.crm.state()) if not p.startswith("DURATION")] == [])
        (raw,) = calls_of(s.crm.state(), "79260000303")
        duration = crm_call(s.crm.state(), raw).duration
        assert int(talked) <= duration <= looked + 1.5, "counted from the answer until the restart found it over"


async def test_an_employee_who_never_picks_up_after_the_restart_ends_bitrix24s_call_for_them(tmp_path: Path) -> None:
    async with stage(tmp_path, ring_seconds=0.5) as s:  # the employee's phone rings 3 s, across the restart
        s.pbx.set_party("1004", NeverAnswer())
        call_id = await s.crm.click_to_call(14, "79260000304")
        await eventually(lambda: len(channels(s, "PJSIP/1004-")) == 1)
        await restart(s)
        await mirrored(s, Expect("79260000304", OUTGOING, 14, "304", shown_to=frozenset({14}), crm_call_id=call_id))
        dialled = [r["params"]["endpoint"] for r in s.pbx.requests if "endpoint" in r["params"]]
        assert dialled == ["PJSIP/1004"], "the client is never dialled for an employee who did not answer"


async def test_a_callback_talking_across_a_restart_stays_connected_and_is_finished_for_its_agent(
    tmp_path: Path,
) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("79260000305", Answer(after=0.2, talk=4.0))
        s.pbx.set_party("1001", Answer(after=0.2))
        await s.crm.callback_request("79260000305", "call me back", line=SALES)
        await eventually(lambda: any(c.talk is not None for c in s.daemon.dispatcher.calls.values()))
        # the PBX keeps the answer's moment (B24_ANSWERED) once the join's request is through: a restart before that
        # would count the talk from when the new process saw it, and the lower bound below would be a race
        await eventually(lambda: any(r["params"].get("variable") == ANSWERED_VAR for r in s.pbx.requests))
        await restart(s)
        assert len(channels(s, "PJSIP/1001-")) == 1 and len(channels(s, "PJSIP/trunk-")) == 1, "still connected"
        crm = await mirrored(
            s, Expect("79260000305", CALLBACK, 11, ANSWERED, talk=3.0, recorded=False, shown_to=frozenset({11})), 10
        )
        assert 2 <= crm.duration <= 5, "the talk the new process saw (a lower bound)"
        await eventually(lambda: channels(s, "PJSIP/") == [])


async def test_a_client_whose_phone_stopped_ringing_while_no_daemon_ran_is_not_dialled_again(tmp_path: Path) -> None:
    async with stage(tmp_path, ring_seconds=2.0) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        s.pbx.set_party("79260000306", NeverAnswer())
        call_id = await s.crm.click_to_call(11, "79260000306")
        await eventually(lambda: len(channels(s, "PJSIP/trunk-")) == 1)
        await s.stop_daemon(grace=0.0, flush=0.0)
        (client,) = channels(s, "PJSIP/trunk-")
        s.pbx.hang_up(client["id"])  # the client rejected the call meanwhile
        await s.start_daemon()
        await mirrored(s, Expect("79260000306", OUTGOING, 11, "304", shown_to=frozenset({11}), crm_call_id=call_id))
        await eventually(lambda: channels(s, "PJSIP/") == [])  # the employee waiting on the line is let go
        dialled = [r["params"]["endpoint"] for r in s.pbx.requests if "endpoint" in r["params"]]
        assert dialled == ["PJSIP/1001", "PJSIP/79260000306@trunk"]


async def test_a_callback_whose_client_picks_up_after_the_restart_is_still_their_type_4_call(tmp_path: Path) -> None:
    async with stage(tmp_path, ring_seconds=2.0) as s:  # the client's phone rings 9 rings: 18 s
        s.pbx.set_party("79260000307", NeverAnswer())
        s.pbx.set_party("1001", Answer(after=0.2, talk=1.0))
        await s.crm.callback_request("79260000307", "call me back", line=SALES)
        await eventually(lambda: len(channels(s, "PJSIP/trunk-")) == 1)
        await restart(s)
        (client,) = channels(s, "PJSIP/trunk-")
        s.pbx.pick_up(client["id"])
        await mirrored(
            s, Expect("79260000307", CALLBACK, 11, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11}))
        )


async def test_a_click_to_call_journaled_by_an_earlier_version_stays_connected_and_is_finished_for_a_user(
    tmp_path: Path,
) -> None:
    """Its adopt kept neither the employee nor the number: it cannot be carried on, but it is adopted like any
    conversation (the employee's leg is not an orphan) and finished for the line's owner, saying why."""
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        s.pbx.set_party("79260000308", Answer(after=0.2, talk=3.0))
        call_id = await s.crm.click_to_call(11, "79260000308")
        await eventually(lambda: answered(s))
        await s.stop_daemon(grace=0.0, flush=0.0)
        with sqlite3.connect(s.settings.journal.path) as db:  # as the earlier version wrote it
            db.execute("UPDATE calls SET user_id = NULL, phone = '', line = '', call_type = NULL")
        with capture_logs() as logs:
            await s.start_daemon()
            await eventually(lambda: s.daemon.recovery.looked)
            assert len(channels(s, "PJSIP/1001-")) == 1 and len(channels(s, "PJSIP/trunk-")) == 1, "still connected"
            await eventually(lambda: calls_of(s.crm.state(), "79260000308")[0].get("finish"))
        crm = crm_call(s.crm.state(), calls_of(s.crm.state(), "79260000308")[0])
        assert (crm.call_id, crm.user, crm.status) == (call_id, 15, ANSWERED), "the first line's owner (1005)"
        (warning,) = [e for e in logs if e["event"] == "call.warning"]
        assert "finished for the line's owner, user 15" in warning["problem"]
        await eventually(lambda: channels(s, "PJSIP/") == [])
