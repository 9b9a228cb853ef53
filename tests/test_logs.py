"""Structured logs: JSON lines with the call's context, secrets replaced wherever they appear."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

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
