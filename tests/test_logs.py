"""Structured logs: JSON lines with the call's context, secrets replaced wherever they appear."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


def _same_lines_both_ways(monkeypatch: pytest.MonkeyPatch, emit: Callable[[Any], None], level: str = "debug") -> str:
    """What ``emit`` writes through a HotLogger and through structlog's own bound logger, at the same moment."""
    import time

    monkeypatch.setattr(time, "time_ns", lambda: 1_796_676_939_123_456_789)
    outputs = []
    for log in (logs.HotLogger("bridge.dispatch.dispatcher"), structlog.get_logger("bridge.dispatch.dispatcher")):
        out = io.StringIO()
        logs.configure(json=True, stream=out, level=level)
        emit(log)
        outputs.append(out.getvalue())
    hot, chain = outputs
    assert hot == chain
    return hot


def test_a_hot_logger_writes_the_bytes_the_configured_chain_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import dataclass
    from datetime import UTC, datetime
    from enum import Enum
    from http import HTTPStatus

    class Reason(Enum):
        TIMEOUT = "timeout"

    class Ext(str):
        pass

    @dataclass
    class Leg:
        ext: str

    logs.register_secrets(["https://portal.example/rest/1/abcdefsecretcode/", "ari-p&ss#1", 'amipass"12'])
    try:
        raise RuntimeError("login failed for ari-p&ss#1")
    except RuntimeError as error:
        failure = error

    def emit(log: Any) -> None:
        with logs.bind_call("1796676939.1", "1796676939.0", "74952000001"):
            log.info("call.transition", on="LegAnswered", **{"from": "ringing", "to": "talking"}, leg="l-2", ext="30")
            log.warning("crm.retry", url="https://portal.example/rest/1/abcdefsecretcode/x.json", attempt=2)
            log.info("crm.delivered", op=17, b24_call_id="code abcdefsecretcode", note=None, line="74950000000")
            log.info("pbx.login", secret='amipass"12', ok=True, pause=0.25, nested={"password": "ari-p&ss#1"})
        log.info("call.started", caller_name="Иван", at=datetime(2026, 1, 2, tzinfo=UTC), leg=Leg("1001"),
                 huge=2**70, raw=b"ari-p&ss#1", seen={"a"}, steps=("ringing",), why=Reason.TIMEOUT)  # fmt: skip
        log.error("pbx.disconnected", exc_info=failure, error=failure, status=HTTPStatus.OK, ext=Ext("30"))
        try:
            raise ValueError('amipass"12 refused')
        except ValueError:
            log.exception("dispatch.error", level="overwritten")
        log.warn("journal.slow_sync")
        log.msg("daemon.started")
        log.debug("crm.request")
        log.critical("daemon.refused")
        log.fatal("daemon.refused")
        log.info("call.warning %s of %d", "one", 2)
        log.info(None)

    text = _same_lines_both_ways(monkeypatch, emit)
    assert "abcdefsecretcode" not in text and "ari-p&ss#1" not in text and 'amipass\\"12' not in text
    written = lines(io.StringIO(text))
    assert [line["event"] for line in written[:4]] == ["call.transition", "crm.retry", "crm.delivered", "pbx.login"]
    transition = written[0]
    keys = list(transition)
    assert keys[:6] == ["on", "from", "to", "leg", "ext", "event"] and keys[-2:] == ["level", "timestamp"]
    assert sorted(keys[6:-2]) == ["call_id", "line", "linkedid"]  # in the order of their first binding in the process
    assert transition["timestamp"] == "2026-12-07T20:55:39.123456Z"
    assert written[2]["line"] == "74950000000" and written[2]["b24_call_id"] == "code ***"
    assert written[3]["secret"] == "***" and written[3]["nested"] == {"password": "***"}
    assert "***" in written[5]["exception"] and written[5]["error"] == "RuntimeError('login failed for ***')"
    assert written[5]["status"] == 200 and written[6]["level"] == "error"
    assert [line["level"] for line in written[7:12]] == ["warning", "info", "debug", "critical", "critical"]
    assert written[12]["event"] == "call.warning one of 2" and "event" not in written[13]


def test_a_hot_logger_filters_levels_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    def emit(log: Any) -> None:
        log.debug("crm.request")
        log.info("call.started")
        log.warning("crm.retry")
        log.exception("dispatch.error")
        log.log(logging.INFO, "call.ended")
        log.log(logging.ERROR, "crm.failed")

    text = _same_lines_both_ways(monkeypatch, emit, level="warning")
    assert [(line["event"], line["level"]) for line in lines(io.StringIO(text))] == [
        ("crm.retry", "warning"),
        ("dispatch.error", "error"),
        ("crm.failed", "error"),
    ]


def test_a_hot_logger_passes_bound_loggers_and_other_methods_to_structlog() -> None:
    out = io.StringIO()
    logs.configure(json=True, stream=out)
    log = logs.HotLogger("bridge.dispatch.dispatcher")
    log.bind(peer="ari").info("pbx.connected")
    log.new(peer="ami").info("pbx.connected")
    assert [line["peer"] for line in lines(out)] == ["ari", "ami"]


def test_a_hot_logger_writes_through_other_processors_and_the_console_renderer() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    logs.configure(stream=out)
    log = logs.HotLogger("bridge.dispatch.dispatcher")
    log.info("call.started", caller="79161234567")
    assert "call.started" in out.getvalue() and not out.getvalue().startswith("{")
    json_out = io.StringIO()
    logs.configure(stream=json_out)
    structlog.get_config()["processors"].insert(0, lambda _l, _n, event_dict: {**event_dict, "host": "pbx-1"})
    log.info("call.started")
    structlog.get_config()["processors"].pop(0)
    log.info("call.ended")
    started, ended = lines(json_out)
    assert started["host"] == "pbx-1" and "host" not in ended


def test_a_hot_logger_keeps_each_threads_lines_whole_and_its_own_context(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "daemon.log"
    log = logs.HotLogger("bridge.journal.durability")
    with path.open("w", encoding="utf-8") as stream:
        logs.configure(json=True, stream=stream)

        def work(call: str) -> None:
            with logs.bind_call(call):
                for step in range(200):
                    log.info("call.transition", to=str(step))

        with logs.bind_call("main.1"):
            threads = [threading.Thread(target=work, args=(f"thread.{n}",)) for n in range(4)]
            for thread in threads:
                thread.start()
            log.info("call.started")
            for thread in threads:
                thread.join()
    written = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(written) == 801
    by_call = {call: [line["to"] for line in written if line["call_id"] == call] for call in {"thread.0", "thread.3"}}
    assert by_call == {"thread.0": [str(n) for n in range(200)], "thread.3": [str(n) for n in range(200)]}
    assert [line["event"] for line in written if line["call_id"] == "main.1"] == ["call.started"]


def test_keys_of_a_call_for_a_line_outside_its_binding() -> None:
    assert logs.call_keys("1796676939.1", "1796676939.0") == {
        "call_id": "1796676939.1",
        "linkedid": "1796676939.0",
        "line": "",
    }
    assert logs.call_keys("") == {}
