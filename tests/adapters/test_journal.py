"""The outbox on a real SQLite file: serialization, order rules, offline bookkeeping, and surviving kill -9."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bridge.domain.commands import (
    CallType,
    CrmAdopt,
    CrmAttachRecord,
    CrmCommand,
    CrmFinish,
    CrmHide,
    CrmMissedTask,
    CrmNotify,
    CrmRegister,
    CrmShow,
)
from bridge.journal import CodecError, DoneMark, Journal, JournalError, decode_command, encode_command
from tests.adapters.journal_backends import PgBlocking

MSK = timezone(timedelta(hours=3))
START = datetime(2026, 3, 7, 10, 20, 30, tzinfo=MSK)


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sqlite_journal(tmp_path: Path, clock: FakeClock) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "journal.db", clock=clock)
    yield j
    j.close()


@pytest.fixture(params=["sqlite", "postgres"])
def journal(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Journal]:
    """The contract holds on both backends: SQLite in a file, and a fresh database on the real PostgreSQL."""
    if request.param == "sqlite":
        j = Journal.open(tmp_path / "journal.db", clock=clock)
    else:
        j = PgBlocking(request.getfixturevalue("pg_url"), clock)  # type: ignore[assignment]
    yield j
    j.close()


def register(leg: str, user: int = 7, show: bool = True) -> CrmRegister:
    return CrmRegister(leg, user, "+79001234567", CallType.INCOMING, "74950000000", START, show)


def finish(leg: str, user: int = 8, duration: int = 42, status: str = "200") -> CrmFinish:
    return CrmFinish(leg, user, duration, status)


def states(journal: Journal, leg: str) -> list[tuple[str, str]]:
    return [(op.kind, op.state) for op in journal.operations(leg)]


# --- serialization ---------------------------------------------------------------------------------

offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.datetimes(timezones=offsets)
text = st.text(max_size=20)
ints = st.integers(min_value=-(2**31), max_value=2**31)
commands = st.one_of(
    st.builds(
        CrmRegister,
        text,
        ints,
        text,
        st.sampled_from(CallType),
        text,
        aware,
        st.booleans(),
        st.booleans(),
        text,
        text,
        ints,
    ),
    st.builds(CrmAdopt, text, text),
    st.builds(CrmShow, text, st.lists(ints, max_size=10).map(tuple)),
    st.builds(CrmHide, text, st.lists(ints, max_size=10).map(tuple)),
    st.builds(CrmFinish, text, ints, ints, text, text),
    st.builds(CrmAttachRecord, text, text),
    st.builds(CrmMissedTask, ints, text, text),
    st.builds(CrmNotify, ints, text),
)


@given(commands)
def test_the_stored_text_is_what_json_dumps_wrote_before_orjson(cmd: CrmCommand) -> None:
    """Journals written before keep the same text for the same command (compact, non-ASCII as is)."""
    data = json.loads(encode_command(cmd))
    assert encode_command(cmd) == json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@given(commands)
def test_every_command_survives_the_round_trip(cmd: CrmCommand) -> None:
    back = decode_command(encode_command(cmd))
    assert back == cmd
    assert type(back) is type(cmd)
    if isinstance(cmd, CrmRegister):
        assert isinstance(back, CrmRegister)
        assert back.started_at.utcoffset() == cmd.started_at.utcoffset()
        assert type(back.call_type) is CallType


def test_stored_form_is_plain_json_with_offset_and_enum_value() -> None:
    data = json.loads(encode_command(register("leg-1")))
    assert data["kind"] == "register"
    assert data["started_at"] == "2026-03-07T10:20:30+03:00"
    assert data["call_type"] == 2


@pytest.mark.parametrize(
    ("stored", "complaint"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"kind": "explode"}', "unknown command kind"),
        ('{"kind": "show", "crm_leg": "x"}', "missing field 'user_ids'"),
        ('{"kind": "show", "crm_leg": "x", "user_ids": [1, "2"]}', "show.user_ids"),
        ('{"kind": "finish", "crm_leg": "x", "user_id": true, "duration": 1, "status_code": "200"}', "finish.user_id"),
        ('{"kind": "notify", "user_id": 1, "message": "m", "extra": 1}', "unknown fields"),
        (encode_command(register("x")).replace("2026-03-07T10:20:30+03:00", "yesterday"), "register.started_at"),
        (encode_command(register("x")).replace('"call_type":2', '"call_type":9'), "not a CallType"),
    ],
)
def test_damaged_text_is_refused_with_the_field_named(stored: str, complaint: str) -> None:
    with pytest.raises(CodecError, match=complaint):
        decode_command(stored)


# --- the file ------------------------------------------------------------------------------------------


def test_open_sets_wal_durable_commits_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
    conn.close()


def test_a_journal_from_a_newer_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(JournalError, match="newer than this program"):
        Journal.open(path)


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(JournalError, match=r"cannot use the journal .*j\.db"):
        Journal.open(path)


def test_what_was_appended_is_there_after_reopening(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path, clock=clock) as j:
        j.append(register("leg-1"), linkedid="1700.1", pbx_call="1700.2")
        j.append(finish("leg-1"))
    with Journal.open(path, clock=clock) as j:
        (call,) = j.calls()
        assert [op.kind for op in j.operations("leg-1")] == ["register", "finish"]
    assert (call.crm_leg, call.linkedid, call.pbx_call, call.phone, call.line) == (
        "leg-1", "1700.1", "1700.2", "+79001234567", "74950000000")  # fmt: skip
    assert call.started_at == "2026-03-07T10:20:30+03:00"
    assert call.started_ts == START.timestamp()
    assert (call.user_id, call.duration, call.status_code, call.call_type) == (8, 42, "200", 2)
    assert call.answered_at == clock.now - 42
    assert (call.state, call.mode) == ("ended", "online")


# --- order rules ---------------------------------------------------------------------------------------


def test_register_carries_the_ops_right_behind_it_and_later_ops_wait_for_the_call_id(journal: Journal) -> None:
    journal.append(register("a"))
    journal.append(CrmShow("a", (7,)))
    journal.append(CrmHide("a", (7,)))
    journal.append(finish("a"))
    journal.append(CrmAttachRecord("a", "rec-a"))
    assert [p.kind for p in journal.ready()] == ["register", "hide", "finish"], "the show was skipped: call ended"
    assert states(journal, "a")[1] == ("show", "done")
    assert all(p.call_id is None for p in journal.ready())

    reg = journal.ready()[0]
    journal.mark_sent([reg.id])
    assert journal.ready() == [], "nothing of a leg goes while its head is in flight"
    journal.mark_failed(reg.id, "timeout", permanent=False)
    journal.mark_sent([reg.id])
    journal.mark_done(reg.id, {"CALL_ID": "externalCall.x"}, call_id="externalCall.x")
    ready = journal.ready()
    assert [p.kind for p in ready] == ["hide", "finish"], "a card move carries what rides behind it, as a register"
    assert {p.call_id for p in ready} == {"externalCall.x"}
    assert [p.kind for p in journal.ready(limit=1)] == ["hide"], "what rides on a card move may wait"
    journal.mark_done(ready[0].id)
    (fin,) = journal.ready()
    assert fin.kind == "finish"
    journal.mark_done(fin.id)
    (rec,) = journal.ready()
    assert rec.kind == "attach_record"
    assert journal.calls()[0].state == "ended"
    journal.mark_done(rec.id)
    assert journal.calls()[0].state == "done"
    assert journal.depth() == 0


def test_a_batch_answer_marked_at_once_lets_each_leg_go_on_as_marks_one_by_one_would(journal: Journal) -> None:
    for leg in ("a", "b"):
        journal.append(register(leg))
        journal.append(finish(leg))
    journal.append(CrmNotify(3, "loose"))
    sent = journal.ready()
    assert [p.kind for p in sent] == ["register", "finish", "register", "finish", "notify"]
    journal.mark_sent([p.id for p in sent])
    reg_a, fin_a, reg_b, fin_b, notice = sent
    journal.mark_done_many([
        DoneMark(reg_a.id, {"CALL_ID": "C-a"}, call_id="C-a"), DoneMark(fin_a.id, {"ok": 1}),
        DoneMark(reg_b.id, {"CALL_ID": "C-b"}, call_id="C-b"), DoneMark(notice.id, note="skipped: test"),
    ])  # fmt: skip
    assert [(c.crm_leg, c.call_id, c.state) for c in journal.calls()] == [("a", "C-a", "done"), ("b", "C-b", "ended")]
    assert journal.operations("a")[1].result == {"ok": 1}
    assert [(op.state, op.note) for op in journal.operations(None)] == [("done", "skipped: test")]
    assert journal.ready() == [], "b's finish is still in flight"
    journal.mark_failed(fin_b.id, "timeout", permanent=False)
    assert [(p.kind, p.call_id) for p in journal.ready()] == [("finish", "C-b")]
    with pytest.raises(JournalError, match="no operation with id 99"):
        journal.mark_done_many([DoneMark(fin_b.id), DoneMark(99)])
    assert states(journal, "b") == [("register", "done"), ("finish", "pending")], "all or nothing"


def test_a_batch_answer_keeps_each_operations_own_result_and_note(journal: Journal) -> None:
    legs = [f"leg-{i}" for i in range(120)]  # more than one statement's worth on SQLite
    for leg in legs:
        journal.append(register(leg))
        journal.append(CrmShow(leg, (7,)))
    sent = journal.ready(limit=300, chain_limit=2)
    assert len(sent) == 240
    journal.mark_sent([p.id for p in sent])
    marks = [
        DoneMark(p.id, {"CALL_ID": f"C-{p.crm_leg}"}, call_id=f"C-{p.crm_leg}")
        if p.kind == "register"
        else DoneMark(p.id, p.seq == 2 and p.crm_leg != "leg-5", note="delivered" if p.crm_leg != "leg-7" else "late")
        for p in sent
    ]
    journal.mark_done_many(marks)
    assert sorted((c.call_id, c.state) for c in journal.calls()) == sorted((f"C-{leg}", "open") for leg in legs)
    ops = {leg: journal.operations(leg) for leg in ("leg-0", "leg-5", "leg-7", "leg-119")}
    assert [(op.state, op.result, op.note) for op in ops["leg-0"]] == [
        ("done", {"CALL_ID": "C-leg-0"}, "delivered"), ("done", True, "delivered")]  # fmt: skip
    assert [(op.result, op.note) for op in ops["leg-5"][1:]] == [(False, "delivered")]
    assert [(op.result, op.note) for op in ops["leg-7"][1:]] == [(True, "late")]
    assert [(op.result, op.note) for op in ops["leg-119"]] == [
        ({"CALL_ID": "C-leg-119"}, "delivered"),
        (True, "delivered"),
    ]
    assert journal.depth() == 0


def test_a_show_still_waiting_when_the_call_ends_is_skipped_one_in_flight_is_not(journal: Journal) -> None:
    journal.append(register("a"))
    journal.append(CrmShow("a", (7,)))
    reg, show = journal.ready()
    journal.mark_sent([reg.id, show.id])
    journal.mark_done_many([DoneMark(reg.id, {"CALL_ID": "C-a"}, call_id="C-a")])
    journal.append(CrmHide("a", (7,)))
    journal.append(CrmShow("a", (8,)))
    journal.append(finish("a"))
    assert [(op.kind, op.state, op.note) for op in journal.operations("a")] == [
        ("register", "done", "delivered"),
        ("show", "sent", ""),
        ("hide", "pending", ""),
        ("show", "done", "skipped: the call ended before the card was sent"),
        ("finish", "pending", ""),
    ]
    journal.append(register("b"))
    journal.append(finish("b"))
    assert [(op.kind, op.state) for op in journal.operations("b")] == [("register", "pending"), ("finish", "pending")]


def test_operations_in_flight_are_neither_ready_nor_due(journal: Journal, clock: FakeClock) -> None:
    for leg in ("a", "b", "c"):
        journal.append(register(leg, show=False))
        clock.now += 1
    a, b, c = journal.ready()
    journal.mark_sent([a.id, b.id])
    assert [op.crm_leg for op in journal.ready()] == ["c"]
    assert journal.next_due(register_timeout=100) == clock.now - 1, "c's register is due since it was journaled"
    journal.mark_sent([c.id])
    assert journal.ready() == []
    assert journal.next_due(register_timeout=100) is None, "nothing to wake up for while all is in flight"
    journal.mark_failed(b.id, "HTTP 502", permanent=False, retry_at=clock.now + 4)
    assert journal.next_due(register_timeout=100) == clock.now + 4
    clock.now += 4
    assert [op.crm_leg for op in journal.ready()] == ["b"]


def test_the_journal_tells_which_legs_it_holds(journal: Journal) -> None:
    assert not journal.has_call("a")
    journal.append(register("a"))
    journal.append(CrmNotify(7, "no leg"))
    assert journal.has_call("a")
    assert not journal.has_call("b") and not journal.has_call("")


def test_legs_are_independent_and_oldest_first_within_the_limit(journal: Journal, clock: FakeClock) -> None:
    for i in range(5):
        journal.append(register(f"leg-{i}"))
        journal.append(CrmShow(f"leg-{i}", (7,)))
        clock.now += 1
    ready = journal.ready(limit=5)
    assert [(p.crm_leg, p.kind) for p in ready] == [
        ("leg-0", "register"), ("leg-0", "show"), ("leg-1", "register"), ("leg-1", "show")]  # fmt: skip
    assert [p.kind for p in journal.ready(limit=1)] == ["register"], "what rides on a register may wait"


def test_a_chain_never_exceeds_one_batch(journal: Journal) -> None:
    journal.append(register("chatty"))
    for user in range(70):
        journal.append(CrmShow("chatty", (user,)))
    chain = journal.ready(limit=50)
    assert len(chain) == 50
    assert [p.kind for p in chain[:2]] == ["register", "show"]


def test_a_transient_failure_waits_for_its_retry_time(journal: Journal, clock: FakeClock) -> None:
    journal.append(register("a"))
    (op,) = journal.ready()
    journal.mark_sent([op.id])
    journal.mark_failed(op.id, "HTTP 502", permanent=False, retry_at=clock.now + 4)
    assert journal.ready() == []
    assert journal.next_due(register_timeout=100) == clock.now + 4
    clock.now += 4
    (again,) = journal.ready()
    assert again.attempts == 1
    assert journal.operations("a")[0].last_error == "HTTP 502"


def test_a_failed_register_fails_what_needs_its_call_id_but_not_other_work(journal: Journal) -> None:
    journal.append(register("a"))
    journal.append(CrmShow("a", (7,)))
    journal.append(CrmNotify(7, "hello"))
    reg = journal.ready()[0]
    cascaded = journal.mark_failed(reg.id, "User is not found or is not active", permanent=True)
    assert len(cascaded) == 1
    journal.append(finish("a"))
    assert states(journal, "a") == [("register", "failed"), ("show", "failed"), ("finish", "failed")]
    assert journal.operations("a")[2].last_error == "register failed: User is not found or is not active"
    assert journal.calls()[0].state == "failed"
    assert [p.kind for p in journal.ready()] == ["notify"]


def test_a_failed_finish_fails_the_record_but_a_failed_card_fails_nothing(journal: Journal) -> None:
    journal.append(register("a"))
    journal.append(CrmShow("a", (7,)))
    (reg, show) = journal.ready()
    journal.mark_done(reg.id, call_id="C1")
    journal.mark_failed(show.id, "bad user", permanent=True)
    journal.append(finish("a"))
    journal.append(CrmAttachRecord("a", "r"))
    (fin,) = journal.ready()
    journal.mark_failed(fin.id, "Unexpected database error", permanent=True)
    assert states(journal, "a")[-1] == ("attach_record", "failed")
    assert journal.calls()[0].state == "failed"


def test_ops_for_a_leg_never_registered_are_failed_on_arrival(journal: Journal) -> None:
    journal.append(finish("ghost"))
    assert states(journal, "ghost") == [("finish", "failed")]
    assert journal.operations("ghost")[0].last_error == "no register for this call leg"


def test_an_adopted_call_needs_no_register(journal: Journal) -> None:
    journal.append(CrmAdopt("c2c", "externalCall.abc"))
    journal.append(finish("c2c"))
    (fin,) = journal.ready()
    assert (fin.kind, fin.call_id) == ("finish", "externalCall.abc")
    assert states(journal, "c2c")[0] == ("adopt", "done")


def test_an_adopted_call_keeps_who_clicked_and_the_number_for_a_restart(journal: Journal) -> None:
    journal.append(CrmAdopt("c2c.1", "externalCall.abc", user_id=11, phone="79260000301", line="74951112233"),
                   pbx_call="c2c")  # fmt: skip
    (row,) = journal.calls(status="open")
    assert (row.pbx_call, row.call_id, row.user_id, row.phone, row.line, row.call_type) == (
        "c2c", "externalCall.abc", 11, "79260000301", "74951112233", 1,
    )  # fmt: skip
    # one stored before the adopt kept them decodes as before, naming nobody
    assert decode_command('{"kind":"adopt","crm_leg":"x.1","call_id":"externalCall.x"}') == CrmAdopt(
        "x.1", "externalCall.x"
    )


# --- offline -----------------------------------------------------------------------------------------


def test_a_register_stuck_past_the_timeout_takes_the_call_offline(journal: Journal, clock: FakeClock) -> None:
    journal.append(register("a"))
    journal.append(CrmShow("a", (7,)))
    reg = journal.ready()[0]
    journal.mark_sent([reg.id])
    clock.now += 10
    assert journal.take_offline(register_timeout=5) == [], "one in flight is not stuck yet"
    journal.mark_failed(reg.id, "outage", permanent=False, retry_at=clock.now + 1)
    assert journal.next_due(register_timeout=5) == clock.now - 5
    assert journal.take_offline(register_timeout=5) == ["a"]
    assert journal.calls()[0].mode == "offline"
    journal.append(CrmHide("a", (7,)))
    assert states(journal, "a") == [("register", "pending"), ("show", "done"), ("hide", "done")]
    assert "offline" in journal.operations("a")[2].note
    clock.now += 5
    assert journal.ready() == [], "an offline call waits for its end"
    journal.append(finish("a"))
    ready = journal.ready()
    assert [(p.kind, p.mode, p.attempts) for p in ready] == [("register", "offline", 1), ("finish", "offline", 0)]


def test_a_card_that_may_have_been_shown_before_a_crash_is_hidden_ahead_of_the_offline_finish(
    journal: Journal, clock: FakeClock
) -> None:
    """Seen in the chaos run: register and show went out in one batch, the daemon was killed before the answer, the
    restarted one sent the register offline (SHOW=0) and the finish for the agent who talked: the other agent's card
    stayed open (finish hides only its own user's card; a hide after finish does nothing)."""
    journal.append(register("a"))
    journal.append(CrmShow("a", (7, 8)))
    journal.mark_sent([op.id for op in journal.ready()])
    assert journal.requeue_sent() == 2  # the restart: both may have arrived
    journal.append(finish("a"))
    clock.now += 10
    assert journal.take_offline(register_timeout=5) == ["a"]
    assert states(journal, "a") == [
        ("register", "pending"),
        ("show", "done"),
        ("hide", "pending"),
        ("finish", "pending"),
    ]
    assert journal.operations("a")[2].command == CrmHide("a", (7, 8))
    assert [p.kind for p in journal.ready()] == ["register", "hide", "finish"]


def test_several_stuck_registers_go_offline_together_each_with_its_own_cards(
    journal: Journal, clock: FakeClock
) -> None:
    for leg in ("a", "b", "c"):
        journal.append(register(leg))
        journal.append(CrmShow(leg, (7,)))
    shown = [p.id for p in journal.ready() if p.crm_leg == "b"]
    journal.mark_sent(shown)
    assert journal.requeue_sent() == 2  # b's register and show may have arrived
    journal.append(finish("b"))
    clock.now += 10
    assert sorted(journal.take_offline(register_timeout=5)) == ["a", "b", "c"]
    assert {c.crm_leg: c.mode for c in journal.calls()} == {"a": "offline", "b": "offline", "c": "offline"}
    assert states(journal, "a") == states(journal, "c") == [("register", "pending"), ("show", "done")]
    assert states(journal, "b") == [
        ("register", "pending"),
        ("show", "done"),
        ("hide", "pending"),
        ("finish", "pending"),
    ]
    assert [p.kind for p in journal.ready()] == ["register", "hide", "finish"], "only the ended call may go"
    assert {leg: row.mode for leg, row in journal.calls_of(["a", "c", "none"]).items()} == {
        "a": "offline",
        "c": "offline",
    }


def test_a_card_never_sent_needs_no_hide_when_the_call_goes_offline(journal: Journal, clock: FakeClock) -> None:
    journal.append(register("a"))
    journal.append(CrmShow("a", (7,)))
    clock.now += 10
    assert journal.take_offline(register_timeout=5) == ["a"]
    assert states(journal, "a") == [("register", "pending"), ("show", "done")]


def test_requeue_after_a_crash_keeps_the_attempt_count(journal: Journal) -> None:
    journal.append(register("a"))
    journal.append(finish("a"))
    ops = journal.ready()
    journal.mark_sent([op.id for op in ops])
    assert journal.requeue_sent() == 2
    assert [(p.kind, p.attempts) for p in journal.ready()] == [("register", 1), ("finish", 1)]


def test_a_failed_cycle_requeues_only_what_it_sent(journal: Journal) -> None:
    """Another cycle's request (or an upload) may still be in flight: its operations stay ``sent``."""
    journal.append(register("mine"))
    journal.append(register("other"))
    mine, other = journal.ready()
    journal.mark_sent([mine.id, other.id])
    assert journal.requeue_sent([mine.id]) == 1
    assert journal.requeue_sent([]) == 0
    assert [(p.crm_leg, p.attempts) for p in journal.ready()] == [("mine", 1)]
    assert [op.state for op in journal.operations("other")] == ["sent"]


def test_retry_now_makes_backed_off_operations_due_and_keeps_their_attempts(journal: Journal, clock: FakeClock) -> None:
    journal.append(register("a"))
    journal.append(register("b"))
    first, second = journal.ready()
    journal.mark_sent([first.id, second.id])
    journal.mark_failed(first.id, "outage", permanent=False, retry_at=clock.now + 300)
    journal.mark_done(second.id, {"CALL_ID": "externalCall.b"}, call_id="externalCall.b")
    assert journal.ready() == []
    assert journal.retry_now() == 1
    assert [(p.crm_leg, p.attempts) for p in journal.ready()] == [("a", 1)]
    assert journal.retry_now() == 0, "nothing is waiting any more"


# --- reading -----------------------------------------------------------------------------------------


def test_metrics_depth_and_age(journal: Journal, clock: FakeClock) -> None:
    assert (journal.depth(), journal.oldest_pending_age(clock.now)) == (0, 0.0)
    journal.append(register("a"))
    clock.now += 3
    journal.append(CrmNotify(1, "x"))
    assert journal.depth() == 2
    assert journal.oldest_pending_age(clock.now + 2) == 5.0


def test_calls_filter_by_status_start_and_leg(journal: Journal) -> None:
    for i, minutes in enumerate((0, 10, 20)):
        journal.append(CrmRegister(f"l{i}", 7, "+7900", CallType.INCOMING, "1", START + timedelta(minutes=minutes),
                                   False))  # fmt: skip
    journal.append(finish("l0"))
    l0_register = journal.operations("l0")[0]
    journal.mark_done(l0_register.id, call_id="C")
    journal.mark_done(journal.operations("l0")[1].id)
    assert [c.crm_leg for c in journal.calls(status="done")] == ["l0"]
    assert [c.crm_leg for c in journal.calls(status="pending")] == ["l1", "l2"]
    assert [c.crm_leg for c in journal.calls(since=START + timedelta(minutes=10))] == ["l1", "l2"]
    since_utc = (START + timedelta(minutes=20)).astimezone(UTC)
    assert [c.crm_leg for c in journal.calls(since=since_utc)] == ["l2"]
    assert [c.crm_leg for c in journal.calls(crm_leg="l1")] == ["l1"]


def test_a_damaged_row_is_parked_and_logged_not_sent(sqlite_journal: Journal, tmp_path: Path) -> None:
    journal = sqlite_journal
    op_id = journal.append(CrmNotify(1, "x"))
    journal.append(CrmNotify(2, "y"))
    conn = sqlite3.connect(tmp_path / "journal.db")
    conn.execute("UPDATE operations SET command = '{broken' WHERE id = ?", (op_id,))
    conn.commit()
    conn.close()
    with capture_logs() as logs:
        ready = journal.ready()
    assert [p.command for p in ready] == [CrmNotify(2, "y")]
    assert journal.operations(None)[0].state == "failed"
    assert any(e["event"] == "journal.bad_row" and e["op"] == op_id for e in logs)


# --- kill -9 -------------------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    import structlog
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    from bridge.domain.commands import CallType, CrmFinish, CrmHide, CrmRegister
    from bridge.journal import Journal

    j = Journal.open(sys.argv[1])
    first = int(sys.argv[2])
    start = datetime(2026, 3, 7, 10, 0, tzinfo=timezone.utc)
    i = first
    while True:
        leg = f"leg-{i}"
        with j.transaction():
            j.append(CrmRegister(leg, 1, "+7900", CallType.INCOMING, "1", start, True))
            j.append(CrmHide(leg, (1,)))
            j.append(CrmFinish(leg, 1, 5, "200"))
        print("appended", leg, flush=True)
        if i > first:
            for op in j.operations(f"leg-{i - 1}"):
                j.mark_sent([op.id])
                print("sent", op.id, flush=True)
                j.mark_done(op.id, {"ok": True}, call_id="C" if op.kind == "register" else None)
                print("done", op.id, flush=True)
        i += 1
    """
)


def test_kill_9_at_random_moments_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    rng = random.Random()
    appended: set[str] = set()
    done: set[int] = set()
    first = 0
    for _round in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(first)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert child.stdout is not None
        stop_after = rng.randint(5, 200)
        for n, line in enumerate(child.stdout):
            what, item = line.split()
            if what == "appended":
                appended.add(item)
            elif what == "done":
                done.add(int(item))
            if n >= stop_after:
                break
        child.kill()  # SIGKILL, wherever the writer is
        child.wait()
        with Journal.open(path) as j:
            j.requeue_sent()
            legs = {c.crm_leg: c for c in j.calls()}
            assert appended <= set(legs), "every append reported as committed is there"
            for leg in legs:
                ops = j.operations(leg)
                assert [(op.seq, op.kind) for op in ops] == [(1, "register"), (2, "hide"), (3, "finish")], leg
                flags = [op.state == "done" for op in ops]
                assert flags == sorted(flags, reverse=True), f"{leg}: done ops must be a prefix"
                assert all(op.state in ("pending", "done") for op in ops)
                assert legs[leg].call_id == ("C" if flags[0] else None)
            settled = {op.id for leg in legs for op in j.operations(leg) if op.state == "done"}
            assert done <= settled, "every op reported done is done"
            first = max(int(leg.split("-")[1]) for leg in legs) + 1
    assert len(appended) > 6


def test_a_legs_call_row_keeps_the_names_it_was_given(journal: Journal) -> None:
    """The call row is upserted with every append: a name given later replaces one known, an empty one erases
    nothing, and the line is the first one given (the delivery's log lines name the bridge's call with these)."""
    journal.append(CrmRegister("a", 7, "+7900", CallType.INCOMING, "", START, True), linkedid="L1", line="7495")
    journal.append(CrmShow("a", (7,)), pbx_call="P1", line="other")
    journal.append(CrmHide("a", (7,)))
    (call,) = journal.calls(crm_leg="a")
    assert (call.linkedid, call.pbx_call, call.line) == ("L1", "P1", "7495")
    journal.append(finish("a"), linkedid="L2")
    (call,) = journal.calls(crm_leg="a")
    assert (call.linkedid, call.pbx_call, call.line) == ("L2", "P1", "7495")
    assert [op.seq for op in journal.operations("a")] == [1, 2, 3, 4]
    journal.append(CrmNotify(3, "loose"), pbx_call="P9", linkedid="L9", line="7495")
    loose = [p for p in journal.ready() if p.crm_leg is None]
    assert [(p.pbx_call, p.linkedid, p.line) for p in loose] == [("P9", "L9", "7495")]


def test_marking_an_operation_that_does_not_exist_is_refused(journal: Journal) -> None:
    with pytest.raises(JournalError, match="no operation with id 99"):
        journal.mark_done(99)


def test_a_register_put_back_after_a_failed_cycle_still_goes_offline_on_time(
    journal: Journal, clock: FakeClock
) -> None:
    """The delivery asks before every cycle; a register in flight is not stuck, but once it waits again (a cycle
    that failed puts what it had sent back) its age counts from when it was journaled, not from the last look."""
    journal.append(register("a"))
    journal.mark_sent([journal.ready()[0].id])
    clock.now += 10
    assert journal.take_offline(register_timeout=5) == []
    assert journal.requeue_sent() == 1
    assert journal.take_offline(register_timeout=5) == ["a"]


def test_a_register_journaled_after_a_look_goes_offline_once_it_is_old(journal: Journal, clock: FakeClock) -> None:
    journal.append(register("a"))
    assert journal.take_offline(register_timeout=5) == []
    clock.now += 3
    journal.append(register("b"))
    assert journal.take_offline(register_timeout=5) == []
    clock.now += 2
    assert journal.take_offline(register_timeout=5) == ["a"]
    assert journal.take_offline(register_timeout=5) == []
    clock.now += 3
    assert journal.take_offline(register_timeout=5) == ["b"]


def test_an_answer_is_read_back_as_bitrix24_gave_it_whatever_its_numbers(journal: Journal) -> None:
    """Answers are kept as JSON: a 64-bit id, an id beyond 64 bits, text in any script, a nested list."""
    journal.append(register("a"))
    journal.append(finish("a"))
    reg, fin = journal.ready()
    journal.mark_sent([reg.id, fin.id])
    answer = {"CALL_ID": "externalCall.ы", "CRM_ENTITY_ID": 2**63 - 1, "FILES": [{"ID": 7}], "ZERO": None}
    huge = {"ID": 2**70}
    journal.mark_done_many([DoneMark(reg.id, answer, call_id="C-a"), DoneMark(fin.id, huge)])
    assert [op.result for op in journal.operations("a")] == [answer, huge]


def test_a_leg_changed_inside_a_transaction_reads_right_in_it_after_it_and_after_a_rollback(journal: Journal) -> None:
    """A leg's head and state are brought up to date once per transaction, at its commit: a read inside the
    transaction still sees them right, and a transaction that rolls back leaves the leg as it was."""
    journal.append(register("a"))
    (reg,) = journal.ready()
    journal.mark_sent([reg.id])
    with journal.transaction():
        journal.mark_done(reg.id, {"CALL_ID": "C-a"}, call_id="C-a")
        journal.append(CrmShow("a", (7,)))
        assert [(p.kind, p.call_id) for p in journal.ready()] == [("show", "C-a")], "read inside: up to date"
        journal.append(CrmHide("a", (7,)))
    assert [p.kind for p in journal.ready()] == ["show", "hide"]
    assert journal.calls()[0].state == "open"

    with pytest.raises(RuntimeError, match="changed my mind"), journal.transaction():
        show, hide = journal.ready()
        journal.mark_sent([show.id, hide.id])
        journal.mark_done_many([DoneMark(show.id), DoneMark(hide.id)])
        journal.append(finish("a"))
        assert [c.state for c in journal.calls()] == ["ended"]
        raise RuntimeError("changed my mind")
    assert [p.kind for p in journal.ready()] == ["show", "hide"], "the head is where it was before"
    assert [(c.state, c.call_id) for c in journal.calls()] == [("open", "C-a")]
    assert states(journal, "a") == [("register", "done"), ("show", "pending"), ("hide", "pending")]
    show, hide = journal.ready()
    journal.mark_done_many([DoneMark(show.id), DoneMark(hide.id)])
    journal.append(finish("a"))
    (fin,) = journal.ready()
    journal.mark_done(fin.id)
    assert journal.calls()[0].state == "done"
    assert journal.ready() == []


def test_an_operation_after_a_failed_register_fails_on_arrival_with_the_reason(journal: Journal) -> None:
    journal.append(register("a"))
    (reg,) = journal.ready()
    journal.mark_failed(reg.id, "ACCESS_DENIED: no scope", permanent=True)
    journal.append(CrmShow("a", (7,)))
    journal.append(finish("a"))
    assert [(op.kind, op.state, op.last_error) for op in journal.operations("a")] == [
        ("register", "failed", "ACCESS_DENIED: no scope"),
        ("show", "failed", "register failed: ACCESS_DENIED: no scope"),
        ("finish", "failed", "register failed: ACCESS_DENIED: no scope"),
    ]
    assert journal.calls()[0].state == "failed"


def test_a_card_move_appended_after_a_change_of_its_call_in_the_same_transaction_sees_the_change(
    journal: Journal,
) -> None:
    """A step's card moves share what the append before them read of the call, unless anything changed it since."""
    with journal.transaction():
        journal.append(register("a"), linkedid="L1", pbx_call="P1", line="74950000000")
        journal.append(CrmShow("a", (7,)), linkedid="L1", pbx_call="P1", line="74950000000")
        (reg,) = [op for op in journal.operations("a") if op.kind == "register"]
        journal.mark_failed(reg.id, "ACCESS_DENIED", permanent=True)
        journal.append(CrmHide("a", (7,)), linkedid="L1", pbx_call="P1", line="74950000000")
    assert [(op.kind, op.state) for op in journal.operations("a")] == [
        ("register", "failed"), ("show", "failed"), ("hide", "failed")
    ], "the show failed with the register; the hide came after the failure: failed on arrival"  # fmt: skip

    journal.append(register("b"))
    with journal.transaction():
        journal.append(CrmShow("b", (7,)))
        journal.go_offline("b")
        journal.append(CrmHide("b", (7,)))
        journal.append(finish("b"))
        journal.append(CrmShow("b", (8,)))
    assert [(op.kind, op.state, op.note) for op in journal.operations("b")] == [
        ("register", "pending", ""),
        ("show", "done", "skipped: the call is offline"),
        ("hide", "done", "skipped: the call is offline (its register did not go through in time)"),
        ("finish", "pending", ""),
        ("show", "done", "skipped: the call is offline (its register did not go through in time)"),
    ]
    with journal.transaction():
        journal.append(register("c"), linkedid="L1")
        journal.append(CrmShow("c", (7,)), linkedid="L2")
    assert journal.calls(crm_leg="c")[0].linkedid == "L2", "a card move with new names still writes them"


def test_a_card_move_after_a_rolled_back_register_finds_no_register(journal: Journal) -> None:
    with pytest.raises(RuntimeError, match="step failed"), journal.transaction():
        journal.append(register("a"))
        raise RuntimeError("step failed")
    journal.append(CrmShow("a", (7,)))
    assert states(journal, "a") == [("show", "failed")]
    assert journal.operations("a")[0].last_error == "no register for this call leg"
