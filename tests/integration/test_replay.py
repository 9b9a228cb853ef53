"""``b24-bridge replay`` and ``b24-bridge journal`` as a user runs them, against the simulator, with no PBX."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bridge.config import Bitrix24Settings, Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.telephony import Telephony
from bridge.domain.commands import CallType, CrmAttachRecord, CrmFinish, CrmHide, CrmRegister, CrmShow
from bridge.journal import Journal
from bridge.sim.bitrix24 import Bitrix24Simulator

RATE, BURST = 20.0, 50
MSK = timezone(timedelta(hours=3))
START = datetime.now(MSK).replace(microsecond=0) - timedelta(hours=2)


@dataclass
class Cli:
    code: int
    out: str
    err: str


@dataclass
class Setup:
    sim: Bitrix24Simulator
    config: Path
    journal: Path
    recording: Path
    expected: dict[str, tuple[datetime, int, int, str]]

    async def run(self, *args: str) -> Cli:
        """``python -m bridge <args>`` in a subprocess (it runs its own event loop; the simulator runs in ours)."""
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", *args, "--config", str(self.config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COLUMNS": "250", "TERM": "dumb"},
        )  # fmt: skip
        out, err = await asyncio.wait_for(child.communicate(), timeout=60)
        assert child.returncode is not None
        return Cli(child.returncode, out.decode(), err.decode())

    def sim_calls(self) -> dict[str, dict[str, Any]]:
        calls = self.sim.state()["calls"]
        legs = [c["EXTERNAL_CALL_ID"] for c in calls]
        assert len(legs) == len(set(legs)), "an EXTERNAL_CALL_ID reached Bitrix24 twice"
        return {c["EXTERNAL_CALL_ID"]: c for c in calls}

    def sent_methods(self) -> set[str]:
        return {r["method"] for r in self.sim.state()["requests"]}


def write_config(path: Path, webhook: str) -> None:
    path.write_text(
        f"""
[asterisk]
ari_url = "http://127.0.0.1:9"   # no PBX: replay must not need one
ari_password = "ari-secret"
ami_secret = "ami-secret"

[bitrix24]
webhook_url = "{webhook}"
events = "off"
rate = {RATE}
burst = {BURST}

[journal]
path = "journal.db"
""",
        encoding="utf-8",
    )


def offline_call(journal: Journal, leg: str, user: int, talker: int, duration: int, status: str, minute: int) -> None:
    start = START + timedelta(minutes=minute)
    journal.append(CrmRegister(leg, user, f"7916555{minute:04d}", CallType.INCOMING, "74950000001", start, True))
    journal.append(CrmShow(leg, (user,)))
    journal.append(CrmHide(leg, (user,)))
    journal.append(CrmFinish(leg, talker, duration, status))


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with Bitrix24Simulator(rate=RATE, burst=BURST) as sim:
        config = tmp_path / "bridge.toml"
        write_config(config, sim.webhook_url)
        recording = tmp_path / "rec-off-1.wav"
        recording.write_bytes(b"RIFF" + b"\x01\x02" * 2000)
        expected: dict[str, tuple[datetime, int, int, str]] = {}
        clock = [datetime.now().timestamp()]
        with Journal.open(tmp_path / "journal.db", clock=lambda: clock[0]) as journal:
            for i, (user, talker, duration, status) in enumerate(
                [(11, 12, 95, "200"), (13, 13, 0, "304"), (15, 16, 7, "200"), (12, 12, 0, "486")]
            ):
                offline_call(journal, f"off-{i}", user, talker, duration, status, minute=i)
                expected[f"off-{i}"] = (START + timedelta(minutes=i), talker, duration, status)
            journal.append(CrmAttachRecord("off-1", str(recording)))
            offline_call(journal, "gone-user", 17, 17, 30, "200", minute=10)  # user 17 has been dismissed
            offline_call(journal, "arrived", 11, 11, 44, "200", minute=11)
            journal.append(CrmRegister("still-talking", 11, "79160000000", CallType.INCOMING, "1", START, True))
            clock[0] += 60
            assert len(journal.take_offline(register_timeout=5)) == 7
        # "arrived" reached Bitrix24 before the bridge lost the answers: the journal does not know it
        async with Bitrix24Client(Bitrix24Settings(webhook_url=Secret(sim.webhook_url))) as client:
            telephony = Telephony(client)
            registered = await telephony.register(
                user_id=11, phone="79165550011", call_type=2, external_call_id="arrived", show=False,
                started_at=START + timedelta(minutes=11), line="74950000001",
            )  # fmt: skip
            await telephony.finish(registered.call_id, 11, 44, "200")
            # "half-done": registered online, but its finish was refused and parked
            half = await telephony.register(
                user_id=13, phone="79165550012", call_type=2, external_call_id="half-done", show=True,
                started_at=START + timedelta(minutes=12), line="74950000001",
            )  # fmt: skip
        with Journal.open(tmp_path / "journal.db") as journal:
            journal.append(CrmRegister("half-done", 13, "79165550012", CallType.INCOMING, "74950000001",
                                       START + timedelta(minutes=12), True))  # fmt: skip
            journal.append(CrmFinish("half-done", 13, 61, "200"))
            register_op, finish_op = [p for p in journal.ready() if p.crm_leg == "half-done"]
            journal.mark_done(register_op.id, {"CALL_ID": half.call_id}, call_id=half.call_id)
            journal.mark_failed(finish_op.id, "telephony.externalCall.finish: ERROR_CORE: Unexpected database error",
                                permanent=True)  # fmt: skip
        sim.core.requests.clear()
        yield Setup(sim, config, tmp_path / "journal.db", recording, expected)


async def test_dry_run_reads_statistics_sends_nothing_and_shows_what_it_would_send(setup: Setup) -> None:
    result = await setup.run("replay", "--dry-run")
    assert result.code == 0, result.err
    assert setup.sent_methods() <= {"batch"}, "only statistics batches"
    assert set(setup.sim_calls()) == {"arrived", "half-done"}, "nothing new reached Bitrix24"
    lines = table_rows(result.out)
    for leg in ("off-0", "off-1", "off-2", "off-3", "gone-user"):
        assert "would send" in lines[leg]
    assert "register SHOW=0 start" in lines["off-0"] and "finish user 12 duration 95 s status 200" in lines["off-0"]
    assert "attachRecord rec-off-1.wav" in lines["off-1"]
    assert "already present" in lines["arrived"]
    assert "would send" in lines["half-done"] and "register" not in lines["half-done"]
    assert "finish user 13 duration 61 s status 200" in lines["half-done"]
    assert "still-talking" not in lines, "a call that has not ended is not replayed"
    assert "checking 7/7 half-done: would send" in result.err
    with Journal.open(setup.journal) as journal:
        assert {c.state for c in journal.calls()} == {"open", "ended", "failed"}, "the journal is untouched"


async def test_replay_mirrors_missing_calls_once_and_reports_each(setup: Setup) -> None:
    result = await setup.run("replay")
    assert result.code == 1, "one call failed, so the exit status says so"
    calls = setup.sim_calls()
    for leg, (start, user, duration, status) in setup.expected.items():
        call = calls[leg]
        assert call["SHOW"] is False
        assert datetime.fromisoformat(call["CALL_START_DATE"]) == start
        assert (call["finish"]["USER_ID"], call["finish"]["DURATION"], call["finish"]["STATUS_CODE"]) == (
            user, duration, status)  # fmt: skip
        assert call["finish_attempts"] == 1
    assert calls["off-1"]["record"] == {"name": "rec-off-1.wav", "size": setup.recording.stat().st_size}
    assert calls["arrived"]["finish_attempts"] == 1, "the call already there was not sent again"
    assert "gone-user" not in calls and "still-talking" not in calls
    lines = table_rows(result.out)
    assert all("replayed" in lines[leg] for leg in setup.expected)
    assert "already present" in lines["arrived"]
    assert "failed" in lines["gone-user"] and "User is not found" in lines["gone-user"]
    assert "replayed: 5" in result.out and "already present: 1" in result.out and "failed: 1" in result.out
    half = calls["half-done"]
    assert (half["status"], half["finish"]["DURATION"], half["finish_attempts"], half["SHOW"]) == (
        "finished", 61, 1, True)  # fmt: skip
    assert "replayed" in lines["half-done"]
    with Journal.open(setup.journal) as journal:
        states = {c.crm_leg: c for c in journal.calls()}
    assert all(states[leg].state == "done" for leg in [*setup.expected, "arrived", "half-done"])
    assert states["half-done"].mode == "online", "a call registered online stays online"
    assert states["arrived"].call_id == calls["arrived"]["CALL_ID"]
    assert states["gone-user"].state == "failed"

    again = await setup.run("replay")
    assert "replayed" not in again.out and "gone-user" in again.out, "only the failed call is left to try"
    assert setup.sim_calls().keys() == calls.keys()


async def test_replay_of_one_call_or_since_a_time(setup: Setup) -> None:
    one = await setup.run("replay", "--call", "off-2")
    assert one.code == 0, one.err
    assert set(setup.sim_calls()) == {"arrived", "half-done", "off-2"}
    later = await setup.run("replay", "--since", (START + timedelta(minutes=3)).isoformat())
    assert set(setup.sim_calls()) == {"arrived", "half-done", "off-2", "off-3"}
    assert setup.sim_calls()["half-done"]["status"] == "finished"
    assert "gone-user" in later.out and later.code == 1
    done = await setup.run("replay", "--call", "off-2")
    assert "nothing to replay" in done.out


async def test_bad_input_is_refused_with_a_clear_message(setup: Setup, tmp_path: Path) -> None:
    bad_since = await setup.run("replay", "--since", "last tuesday")
    assert bad_since.code == 2 and "--since 'last tuesday' is not an ISO-8601" in bad_since.err
    setup.journal.rename(tmp_path / "elsewhere.db")
    missing = await setup.run("journal")
    assert missing.code == 2 and "there is no journal at" in missing.err
    assert "STATE_DIRECTORY=/var/lib/b24-bridge b24-bridge ... reads that one" in missing.err, "where the unit's is"


async def test_journal_lists_calls_and_operations(setup: Setup) -> None:
    listing = await setup.run("journal", "--json")
    assert listing.code == 0, listing.err
    data = json.loads(listing.out)
    calls = {c["crm_leg"]: c for c in data["calls"]}
    assert set(calls) == {*setup.expected, "gone-user", "arrived", "still-talking", "half-done"}
    off0 = calls["off-0"]
    assert (off0["mode"], off0["state"], off0["user_id"], off0["duration"], off0["status_code"]) == (
        "offline", "ended", 12, 95, "200")  # fmt: skip
    assert [(op["kind"], op["state"]) for op in off0["operations"]] == [
        ("register", "pending"), ("show", "done"), ("hide", "done"), ("finish", "pending")]  # fmt: skip
    assert off0["operations"][1]["note"].startswith("skipped")

    await setup.run("replay")
    failed = json.loads((await setup.run("journal", "--status", "failed", "--json")).out)
    assert [c["crm_leg"] for c in failed["calls"]] == ["gone-user"]
    assert "User is not found" in failed["calls"][0]["operations"][0]["last_error"]
    table = await setup.run("journal", "--status", "done")
    assert table.code == 0 and "off-0" in table.out and "gone-user" not in table.out


def table_rows(out: str) -> dict[str, str]:
    """A table as printed into a pipe: a ``#`` title, a header, then one row per line keyed by its first column."""
    return {line.split()[0]: line for line in out.splitlines()[2:] if line.strip() and " " in line}


def parked_reasons(listing: Cli) -> dict[str, str]:
    """``journal --status failed --json``: each parked call's reason."""
    return {
        call["crm_leg"]: op["last_error"]
        for call in json.loads(listing.out)["calls"]
        for op in call["operations"]
        if op["state"] == "failed" and op["kind"] in ("register", "finish")
    }


async def test_without_the_statistics_permission_calls_are_parked_not_registered_again(setup: Setup) -> None:
    setup.sim.set_rights(1, admin=False, statistics="none")
    result = await setup.run("replay")
    assert result.code == 1, "parked calls need the operator"
    assert set(setup.sim_calls()) == {"arrived", "half-done"}, "nothing was sent"
    assert setup.sim_calls()["arrived"]["finish_attempts"] == 1
    lines = table_rows(result.out)
    ended = [*setup.expected, "gone-user", "arrived", "half-done"]
    assert all("parked" in lines[leg] for leg in ended) and "parked: 7" in result.out
    reasons = parked_reasons(await setup.run("journal", "--status", "failed", "--json"))
    assert set(reasons) == set(ended)
    assert all("lacks the permission 'Call statistics — View'" in why for why in reasons.values())
    assert all("b24-bridge replay" in why for why in reasons.values()), "the reason says what to do"

    setup.sim.set_rights(1, admin=True)  # the operator makes the app user an admin and replays again
    again = await setup.run("replay")
    calls = setup.sim_calls()  # asserts no EXTERNAL_CALL_ID arrived twice
    assert calls["arrived"]["finish_attempts"] == 1 and "already present" in again.out
    assert all(calls[leg]["status"] == "finished" for leg in [*setup.expected, "half-done"])
    assert "replayed: 5" in again.out


async def test_a_partial_view_trusts_only_the_employees_it_has_seen(setup: Setup) -> None:
    """Not an admin, the app user sees the statistics through its role: a call of an employee none of whose calls it
    has seen there may be hidden from it, so only the operator can say it is missing."""
    setup.sim.set_rights(1, admin=False, statistics="department")
    first = await setup.run("replay")
    assert first.code == 1
    assert set(setup.sim_calls()) == {"arrived", "half-done"}, "nothing was sent"
    lines = table_rows(first.out)
    assert "already present" in lines["arrived"], "a call it can see is found"
    reasons = parked_reasons(await setup.run("journal", "--status", "failed", "--json"))
    assert set(reasons) == {*setup.expected, "gone-user", "half-done"}
    assert "no call of user 12 is visible" in reasons["off-0"] and "not a portal admin" in reasons["off-0"]

    forced = await setup.run("replay", "--force", "--call", "off-0")  # checked by hand in Bitrix24
    assert forced.code == 0, forced.out
    assert setup.sim_calls()["off-0"]["finish"]["USER_ID"] == 12
    after = await setup.run("replay", "--call", "off-3")  # user 12's calls are seen now: its check is trusted
    assert after.code == 0, after.out
    assert setup.sim_calls()["off-3"]["status"] == "finished"
    still = await setup.run("replay", "--call", "off-2")  # user 16: still none seen
    assert still.code == 1 and "off-2" not in setup.sim_calls()


async def test_tables_in_a_pipe_keep_full_ids_on_one_line_and_json_is_there_for_scripts(
    setup: Setup, tmp_path: Path
) -> None:
    long_leg = "1796606028.123456-a-leg-id-long-enough-to-be-cut-in-a-narrow-column.1"
    with Journal.open(setup.journal) as journal:
        offline_call(journal, long_leg, 11, 11, 12, "200", minute=20)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "journal", "--config", str(setup.config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "COLUMNS": "40"},
    )  # fmt: skip
    out, _err = await asyncio.wait_for(child.communicate(), timeout=60)
    listing = out.decode().splitlines()
    assert child.returncode == 0 and listing[0] == "# b24-bridge journal"
    [row] = [line for line in listing if line.startswith(long_leg)]
    assert "register pending; 2 show done" in row and "12 s" in row
    assert len(listing) == 2 + 9, "a header and one line per call, however narrow the terminal says it is"

    dry = await setup.run("replay", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    outcomes = {o["crm_leg"]: o for o in json.loads(dry.out)}
    assert outcomes[long_leg]["status"] == "would send" and outcomes["arrived"]["status"] == "already present"
    assert set(outcomes["off-0"]) == {"crm_leg", "started_at", "status", "detail"}


async def test_a_dry_run_with_the_portal_unreachable_lists_what_would_be_sent(setup: Setup) -> None:
    write_config(setup.config, "http://127.0.0.1:9/rest/1/s3cretwebhookcode/")  # nothing listens on port 9
    result = await setup.run("replay", "--dry-run")
    assert result.code == 0, result.err
    lines = table_rows(result.out)
    for leg in ("off-0", "off-1", "off-2", "off-3", "gone-user", "arrived"):
        assert "would send" in lines[leg] and "not checked: Bitrix24 did not answer" in lines[leg], lines[leg]
    assert "finish user 12 duration 95 s status 200" in lines["off-0"]
    assert "s3cretwebhookcode" not in result.out + result.err
    with Journal.open(setup.journal) as journal:
        assert {c.state for c in journal.calls()} == {"open", "ended", "failed"}, "the journal is untouched"
    sent = await setup.run("replay")
    assert sent.code == 1 and "failed" in sent.out, "a real replay with the portal away fails, and says so"


def test_a_closed_pipe_ends_the_listing_quietly(setup: Setup) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader (``| head``) has gone before anything is written
    import subprocess

    try:
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "journal", "--config", str(setup.config)],
            stdout=write, stderr=subprocess.PIPE, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    assert done.returncode == 141
    assert done.stderr.decode() == ""
