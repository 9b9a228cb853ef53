"""Structured logs: JSON lines with the call's context, secrets replaced wherever they appear."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from bridge import logs


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    logs.clear_secrets()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(x) for x in stream.getvalue().splitlines()]


def test_json_lines_carry_the_bound_call_context() -> None:
    out = io.StringIO()
    logs.configure(json=True, stream=out)
    log = structlog.get_logger("t")
    with logs.bind_call("1795306061.1", linkedid="1795306061.0", line="74951112233"):
        log.info("call.transition", to="ringing")
    log.info("daemon.started")
    first, second = lines(out)
    assert first["event"] == "call.transition" and first["to"] == "ringing"
    assert (first["call_id"], first["linkedid"], first["line"]) == ("1795306061.1", "1795306061.0", "74951112233")
    assert first["level"] == "info" and "timestamp" in first
    assert "call_id" not in second


def test_secrets_are_redacted_everywhere() -> None:
    out = io.StringIO()
    logs.configure(json=True, stream=out)
    logs.register_secrets(["https://portal.bitrix24.ru/rest/1/abcdef123456/", "ari-p&ss#1", "", "x"])
    log = structlog.get_logger("t")
    log.warning(
        "crm.retry",
        url="https://portal.bitrix24.ru/rest/1/abcdef123456/telephony.externalCall.finish.json",
        nested={"password": "ari-p&ss#1", "list": ["code abcdef123456 leaked"]},
    )
    try:
        raise RuntimeError("login failed for ari-p&ss#1")
    except RuntimeError:
        log.exception("pbx.disconnected")
    text = out.getvalue()
    assert "abcdef123456" not in text and "ari-p&ss#1" not in text
    first, second = lines(out)
    assert first["nested"]["password"] == "***"
    assert first["url"].startswith("https://portal.bitrix24.ru/rest/1/***/")
    assert "***" in second["exception"]


def test_console_renderer_on_request() -> None:
    out = io.StringIO()
    logs.configure(json=False, stream=out)
    structlog.get_logger("t").info("call.started", caller="79161234567")
    text = out.getvalue()
    assert "call.started" in text and "79161234567" in text and not text.startswith("{")


def test_library_logs_go_through_the_same_redacting_chain() -> None:
    import logging

    out = io.StringIO()
    logs.configure(json=True, stream=out)
    logs.register_secrets(["ami-s3cret-value"])
    logging.getLogger("panoramisk.manager").warning("Login failed: Secret: %s", "ami-s3cret-value")
    logging.getLogger("aiohttp.client").debug("noise that must not show")
    [line] = lines(out)
    assert line["event"] == "Login failed: Secret: ***" and line["level"] == "warning"
    assert line["logger"] == "panoramisk.manager"


def test_any_value_renders_as_one_json_line_and_names_stay_readable() -> None:
    from dataclasses import dataclass
    from datetime import UTC, datetime

    @dataclass
    class Leg:
        ext: str

    out = io.StringIO()
    logs.configure(json=True, stream=out)
    logs.register_secrets(["s3cret-token"])
    log = structlog.get_logger("t")
    log.info("call.started", caller_name="Иван", at=datetime(2026, 1, 2, tzinfo=UTC), leg=Leg("1001"), huge=2**70,
             ids={1: "a"}, steps=("ringing", "talking"), token="Bearer s3cret-token")  # fmt: skip
    [line] = lines(out)
    assert "Иван" in out.getvalue()  # UTF-8 as it is, not \u escapes
    assert line["caller_name"] == "Иван" and line["huge"] == 2**70 and line["ids"] == {"1": "a"}
    assert line["at"].startswith("datetime.datetime(2026, 1, 2") and line["leg"].endswith("Leg(ext='1001')")
    assert line["steps"] == ["ringing", "talking"] and line["token"] == "Bearer ***"


def test_a_call_bound_inside_another_gives_the_outer_one_back() -> None:
    out = io.StringIO()
    logs.configure(json=True, stream=out)
    log = structlog.get_logger("t")
    with logs.bind_call("outer.1", "outer.0", "74951112233"):
        with logs.bind_call("inner.1"):
            log.info("call.started")
        log.info("call.ended")
    log.info("daemon.stopped")
    inner, outer, none = lines(out)
    assert (inner["call_id"], inner["linkedid"], inner["line"]) == ("inner.1", "", "")
    assert (outer["call_id"], outer["linkedid"], outer["line"]) == ("outer.1", "outer.0", "74951112233")
    assert "call_id" not in none and "line" not in none


def test_each_line_carries_its_level_and_a_utc_timestamp_to_the_microsecond() -> None:
    from datetime import UTC, datetime, timedelta

    out = io.StringIO()
    logs.configure(json=True, stream=out, level="debug")
    log = structlog.get_logger("t")
    log.warn("journal.slow_sync")
    log.debug("crm.request")
    before = datetime.now(UTC)
    log.info("call.started")
    warned, debugged, started = lines(out)
    assert (warned["level"], debugged["level"], started["level"]) == ("warning", "debug", "info")
    assert started["timestamp"].endswith("Z") and len(started["timestamp"]) == len("2026-12-07T10:00:00.000000Z")
    stamped = datetime.fromisoformat(started["timestamp"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) < stamped < before + timedelta(seconds=5)


async def test_lines_logged_on_the_event_loop_are_in_the_file_once_the_loops_turn_is_over(tmp_path: Path) -> None:
    path = tmp_path / "daemon.log"
    with path.open("w", encoding="utf-8") as stream:
        logs.configure(json=True, stream=stream)
        log = structlog.get_logger("t")
        log.info("call.started")
        log.info("call.transition", to="ringing")
        await asyncio.sleep(0)
        assert [json.loads(x)["event"] for x in path.read_text().splitlines()] == ["call.started", "call.transition"]
        log.info("call.ended")
        await asyncio.sleep(0)
        assert json.loads(path.read_text().splitlines()[-1])["event"] == "call.ended"


def test_lines_logged_off_the_event_loop_are_in_the_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "daemon.log"
    with path.open("w", encoding="utf-8") as stream:
        logs.configure(json=True, stream=stream)
        structlog.get_logger("t").info("journal.opened")
        assert json.loads(path.read_text())["event"] == "journal.opened"


def test_a_hot_logger_follows_every_new_configuration() -> None:
    from structlog.testing import capture_logs

    log = logs.HotLogger("bridge.dispatch.dispatcher")
    first, second = io.StringIO(), io.StringIO()
    logs.configure(json=True, stream=first)
    log.info("call.started")
    log.debug("call.unknown")
    logs.configure(json=True, stream=second, level="debug")
    log.debug("call.unknown")
    with capture_logs() as captured:
        log.info("call.ended", status="200")
    structlog.reset_defaults()
    with capture_logs() as after_reset:
        log.debug("call.ignored")
    assert [line["event"] for line in lines(first)] == ["call.started"]
    assert [line["event"] for line in lines(second)] == ["call.unknown"]
    assert captured == [{"event": "call.ended", "status": "200", "log_level": "info"}]
    assert [entry["event"] for entry in after_reset] == ["call.ignored"]


def test_keys_bound_through_structlog_reach_the_line_and_the_lines_own_keys_win() -> None:
    out = io.StringIO()
    logs.configure(json=True, stream=out)
    log = structlog.get_logger("t")
    with structlog.contextvars.bound_contextvars(peer="ari", call_id="outer.1"):
        with logs.bind_call("inner.1", "inner.0"):
            log.info("call.started", peer="ami")
        log.info("pbx.resynced")
    log.info("daemon.stopped")
    started, resynced, stopped = lines(out)
    assert (started["peer"], started["call_id"], started["linkedid"]) == ("ami", "inner.1", "inner.0")
    assert (resynced["peer"], resynced["call_id"]) == ("ari", "outer.1") and "linkedid" not in resynced
    assert "peer" not in stopped and "call_id" not in stopped
