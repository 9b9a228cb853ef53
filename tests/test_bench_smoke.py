"""The benchmark's smallest pieces, so that ``bench/`` cannot rot: real runs at toy sizes, no targets asserted."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from bench.__main__ import parse_args
from bench.chaos_section import chaos_section
from bench.core import core_speed
from bench.document import document, history_section
from bench.load import Saturation, Steady, saturation, steady
from bench.memory import Memory
from bench.naive import OneCommandPerRequest, call_groups, resolve
from bench.portal_index import index_statistics, indexed_key
from bench.probe import percentile
from bench.replay import replay
from bench.report import NOT_REACHED, Results, at_most, markdown_table, rich_table, rows
from bench.sizes import QUICK
from bench.stack import SCALED, STANDARD, Bucket
from bench.stall_sampler import StallSampler
from bench.walk import idle, walk
from bridge.config import Bitrix24Settings
from bridge.config.reader import Secret
from bridge.crm.query import result_ref
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.eventually import eventually

TOY = dataclasses.replace(
    QUICK, core_seconds=0.1, saturation_window=1.0, saturation_warmup=5.0, latency_calls=4, latency_hold=0.8
)


def test_the_core_is_stepped_through_whole_calls() -> None:
    speed = core_speed(0.1)
    assert speed.calls == 7 and speed.steps_per_call >= 4
    assert speed.events >= speed.calls * speed.steps_per_call  # at least one pass over every recorded step
    assert speed.events_per_second > 0


def test_naive_mode_groups_a_calls_commands_behind_its_register() -> None:
    commands: dict[str, tuple[str, dict[str, Any]]] = {
        "r": ("telephony.externalCall.register", {"PHONE_NUMBER": "79160000001"}),
        "s": ("telephony.externalCall.show", {"CALL_ID": result_ref("r", "CALL_ID")}),
        "f": ("telephony.externalCall.finish", {"CALL_ID": result_ref("r", "CALL_ID")}),
        "h": ("telephony.externalCall.hide", {"CALL_ID": "known-call"}),
        "t": ("tasks.task.add", {"fields": {"TITLE": "x"}}),
    }
    assert call_groups(commands) == [["r", "s", "f"], ["h"], ["t"]]
    assert resolve({"CALL_ID": result_ref("r", "CALL_ID"), "X": 1}, {"r": {"CALL_ID": "c1"}}) == {
        "CALL_ID": "c1",
        "X": 1,
    }
    assert resolve({"CALL_ID": result_ref("r", "CALL_ID")}, {}) is None


async def test_naive_client_sends_one_request_per_command() -> None:
    async with Bitrix24Simulator(rate=20.0, burst=50) as sim:
        settings = Bitrix24Settings(webhook_url=Secret(sim.webhook_url), rate=20.0, burst=50)
        async with OneCommandPerRequest(settings, retry_attempts=1) as client:
            ref = result_ref("r", "CALL_ID")
            batch = await client.batch(
                {
                    "r": ("telephony.externalCall.register",
                          {"USER_ID": 11, "PHONE_NUMBER": "79160000001", "TYPE": 2, "SHOW": 0}),
                    "f": ("telephony.externalCall.finish", {"CALL_ID": ref, "USER_ID": 11, "DURATION": 5}),
                }
            )  # fmt: skip
        state = sim.state()
    assert not batch.errors and set(batch.results) == {"r", "f"}
    assert [r["method"] for r in state["requests"]] == [
        "telephony.externalCall.register",
        "telephony.externalCall.finish",
    ]
    (call,) = state["calls"]
    assert call["CALL_ID"] == batch.results["r"]["CALL_ID"] and call["status"] == "finished"


async def test_the_statistics_index_answers_like_the_simulator() -> None:
    assert indexed_key({"EXTERNAL_CALL_ID": "leg-1"}) == "leg-1"
    assert indexed_key({"EXTERNAL_CALL_ID": "12345"}) is None  # numbers compare as numbers: left to the simulator
    assert indexed_key({">=CALL_DURATION": 1}) is None
    async with Bitrix24Simulator(rate=20.0, burst=50) as sim:
        settings = Bitrix24Settings(webhook_url=Secret(sim.webhook_url), rate=20.0, burst=50)
        async with OneCommandPerRequest(settings, retry_attempts=1) as client:
            for leg in ("Leg-A", "leg-b"):
                registered = await client.call(
                    "telephony.externalCall.register",
                    {"USER_ID": 11, "PHONE_NUMBER": "79160000002", "TYPE": 2, "EXTERNAL_CALL_ID": leg},
                )
                await client.call("telephony.externalCall.finish", {"CALL_ID": registered["CALL_ID"], "USER_ID": 11})
            queries = [{"FILTER": {"EXTERNAL_CALL_ID": "leg-a"}}, {"FILTER": {"EXTERNAL_CALL_ID": "nope"}}, {}]
            plain = [await client.call_envelope("voximplant.statistic.get", q) for q in queries]
            index_statistics(sim)
            indexed = [await client.call_envelope("voximplant.statistic.get", q) for q in queries]
    strip = [{k: v for k, v in envelope.items() if k != "time"} for envelope in (*plain, *indexed)]
    assert strip[:3] == strip[3:]
    assert [row["EXTERNAL_CALL_ID"] for row in strip[0]["result"]] == ["Leg-A"]


async def test_replay_of_a_small_journal_never_beats_the_bucket(tmp_path: Path) -> None:
    tiny_bucket = Bucket(rate=20.0, burst=3, scale=10.0)  # so that 100 calls are more than one burst
    result = await replay(tmp_path, "paced", calls=100, budget=20.0, bucket=tiny_bucket)
    assert result.finished and result.replayed == 100
    assert result.requests >= result.min_requests == 5  # 100 calls: 200 commands + 50 checks
    assert result.query_limit_exceeded == 0
    assert result.bound_seconds == 0.1 and result.ratio >= 1.0


async def test_live_installation_measures_latency_cpu_and_saturation(tmp_path: Path) -> None:
    """Every figure is produced and sane whatever the machine's load; whether it meets its target (latency, a
    saturated portal, no 503) is the bench's verdict (``make bench``), not this test's."""
    measured = await steady(tmp_path / "steady", "naive", TOY)  # the daemon with the one-command-per-request client
    assert measured.placed > 0 and measured.samples_ms, "calls were placed and their events reached the portal"
    assert 0 <= measured.p50 <= measured.p99
    assert len(measured.samples_ms) + measured.unmatched <= 2 * measured.placed  # a start and an end per call
    assert 0 <= measured.calls_ended <= measured.placed and all(0 <= n <= measured.placed for n in measured.active)
    assert measured.cpu_seconds >= 0 and measured.requests >= 0
    assert 0 <= measured.query_limit_exceeded <= measured.refused_in_phase
    saturated = await saturation(tmp_path / "saturation", "paced", TOY)  # the daemon as it ships
    assert saturated.placed > 0 and saturated.window > 0
    assert saturated.commands >= saturated.requests >= 0, "every request carries at least one command"
    assert 0 <= saturated.query_limit_exceeded <= saturated.refused_in_phase
    assert saturated.throughput >= 0 and isinstance(saturated.saturated, bool)
    results = Results("toy", saturation={"naive": saturated, "paced": saturated}, steady={"paced": measured,
                      "naive": measured})  # fmt: skip
    table = rows(results)
    figures = [row.figure for row in table]
    assert figures[0] == "commands per request (portal saturated)" and any("p99" in f for f in figures)
    cells = [cell for row in table for cell in (row.ours, row.naive)]
    assert all(cells) and not any("nan" in cell or "n/a" in cell for cell in cells), cells
    verdicts = ("pass", "FAIL", NOT_REACHED)  # toy sizes may fall short of their load: the table says so
    assert all(row.verdict in verdicts for row in table if row.target is not None), "a verdict per target"
    text = markdown_table(results)
    assert text.count("\n") == len(figures) + 1
    assert rich_table(results).row_count == len(figures)
    assert "## Machine" in document(results, {"CPU": "test"}, 1.0, "python -m bench")


def test_targets_and_percentiles() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    target = at_most(20, "<= 20 ms")
    assert target.check(20.0) is True and target.check(20.5) is False and target.check(float("nan")) is None


def test_the_full_chaos_run_is_reported_when_recorded(tmp_path: Path) -> None:
    path = tmp_path / "chaos-figures.json"
    assert "`make chaos` records one" in "\n".join(chaos_section(path))
    run = {
        "run_at": "2026-11-22 08:00 UTC",
        "machine": {"cores": 2, "python": "3.11.7", "os": "Linux"},
        "plan": {"calls": 1000, "lanes": 25, "error_rate": 0.1, "outage_seconds": 60.0, "ring_seconds": 1.0,
                 "disconnects": [[0.3, True, True]]},
        "figures": {"calls": 1000, "offline_calls": 519, "drain_seconds": 39.0, "broken_invariants": {}},
    }  # fmt: skip
    path.write_text(json.dumps(run), encoding="utf-8")
    text = "\n".join(chaos_section(path))
    assert "every invariant held" in text and "1,000 calls on 25 lines" in text
    assert "| calls mirrored offline (register not through within `register_timeout`) | 519 |" in text
    run["figures"]["broken_invariants"] = {"duration": 3}  # type: ignore[index]
    path.write_text(json.dumps(run), encoding="utf-8")
    assert "broken invariants: {'duration': 3}" in "\n".join(chaos_section(path))


async def test_the_walk_rings_the_first_member_and_the_second_answers(tmp_path: Path) -> None:
    """Each call of the walk goes to a pair of its own; Bitrix24 sees it answered by the pair's second member."""
    sizes = dataclasses.replace(TOY, latency_calls=3, latency_hold=4.0)
    measured = await walk(tmp_path / "walk", sizes)
    assert measured.workload == "walk" and measured.placed > 0 and measured.skipped == 0
    assert measured.answered_second > 0, "calls were answered by the second member after the first one's ring"
    assert measured.answered_second <= measured.placed and measured.cpu_seconds >= 0
    assert measured.whole_cpu_seconds >= measured.cpu_seconds, "the whole run holds the window (and drained)"
    results = Results("toy", walk=measured)
    (walk_row,) = (row for row in rows(results) if row.figure == "CPU per call, walk")
    assert walk_row.target is not None and walk_row.verdict in ("pass", "FAIL")
    assert "answered by the second member" in document(results, {"CPU": "test"}, 1.0, "python -m bench")


async def test_the_idle_daemon_polls_for_its_events(tmp_path: Path) -> None:
    quiet = await idle(tmp_path / "idle", dataclasses.replace(TOY, idle_seconds=2.5))
    assert quiet.requests >= 1, "pull mode: event.offline.get at least once in 2.5 s at poll_interval 2 s"
    assert quiet.seconds >= 2.5 and quiet.cpu_seconds >= 0 and quiet.ms_per_second >= 0
    (row,) = (row for row in rows(Results("toy", idle=quiet)) if row.figure.startswith("idle CPU"))
    assert row.ours.endswith("ms/s") and row.verdict in ("pass", "FAIL")


def test_a_phase_short_of_its_load_reads_not_reached() -> None:
    """A steady phase with 30 of 200 calls up, an unsaturated portal, 10 of 2,000 calls in memory: no verdict."""
    short = Steady("paced", SCALED, target_calls=200, active=(28, 30), samples_ms=[5.0, 9.0], calls_ended=20,
                   cpu_seconds=0.4)  # fmt: skip
    full = Steady("naive", SCALED, target_calls=200, active=(185, 199), samples_ms=[5.0], calls_ended=20)
    unsaturated = Saturation("paced", STANDARD, 30.0, 45.0, requests=90, commands=4000, query_limit_exceeded=0,
                             saturated=False)  # fmt: skip
    memory = Memory("paced", SCALED, target_calls=2000, active=10, baseline_kib=1000, loaded_kib=1100, settled=True)
    results = Results("toy", saturation={"paced": unsaturated, "naive": unsaturated},
                      steady={"paced": short, "naive": full}, memory={"paced": memory})  # fmt: skip
    table = {row.figure: row for row in rows(results)}
    p99 = table["p99 PBX event -> request on the wire, 200 calls"]
    assert p99.verdict == NOT_REACHED and p99.ours.startswith("NOT REACHED (28 of 200 calls in progress)")
    assert NOT_REACHED not in p99.naive, "the naive run reached its load"
    assert table["CPU per call, everybody"].verdict == NOT_REACHED
    saturated = table["commands per request (portal saturated)"]
    assert saturated.verdict == NOT_REACHED and "bucket never filled" in saturated.ours
    (rss,) = (row for row in table.values() if row.figure.startswith("RSS per active call"))
    assert rss.verdict == NOT_REACHED and "10 of 2,000 calls up" in rss.ours
    assert NOT_REACHED in markdown_table(results)
    reached = Results("toy", steady={"paced": full, "naive": full})
    assert all(row.verdict != NOT_REACHED for row in rows(reached))


def test_only_cpu_runs_the_cpu_phases() -> None:
    assert parse_args(["--only", "cpu"]).phases == ["steady", "walk", "idle"]
    assert parse_args(["--only", "load"]).phases == ["saturation", "steady"]
    assert parse_args(["--only", "core,idle"]).phases == ["core", "idle"]


def test_the_history_is_carried_into_every_written_document(tmp_path: Path) -> None:
    assert history_section(tmp_path / "missing.md") == []
    kept = tmp_path / "history.md"
    kept.write_text("- walk 76.2 -> 40.1 ms per call: device news recorded without a whole step\n", encoding="utf-8")
    assert history_section(kept)[:3] == ["## History", "", "- walk 76.2 -> 40.1 ms per call: device news recorded "
                                         "without a whole step"]  # fmt: skip
    assert "## History" in document(Results("toy"), {"CPU": "test"}, 1.0, "python -m bench")


async def test_the_stall_sampler_names_what_held_the_event_loop(tmp_path: Path) -> None:
    found = tmp_path / "stalls.jsonl"
    beating = asyncio.create_task(StallSampler(found, threshold=0.02).beat())
    await asyncio.sleep(0.05)

    def hold_the_loop() -> None:
        started = time.thread_time()
        while time.thread_time() - started < 0.1:  # 100 ms of this thread's CPU, however busy the machine
            pass

    def held() -> list[dict[str, Any]]:
        lines = found.read_text(encoding="utf-8").splitlines() if found.exists() else []
        stalls = [json.loads(line) for line in lines]
        return [s for s in stalls if any("hold_the_loop" in f for _, stack in s["stacks"] for f in stack)]

    hold_the_loop()
    stall = (await eventually(held))[0]
    beating.cancel()
    assert stall["wall_ms"] >= 100 and stall["cpu_ms"] >= 50
