"""Fuzzing the log redaction: whatever shape a secret is logged in, and whatever a hostile peer echoes back, the
lines the daemon writes (JSON, through ``bridge.logs``) never show a registered secret.

Covered: values of any type holding the secret (text, bytes, containers, keys, URLs, exceptions and their
tracebacks), an AMI server that refuses the login and echoes the secret back, and a Bitrix24 portal whose errors
quote the webhook URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import string
from collections import namedtuple
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import pytest
import structlog
from aiohttp import web
from aiolimiter import AsyncLimiter
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from bridge.config import AsteriskSettings, Bitrix24Settings, Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.errors import CrmError
from bridge.logs import HotLogger, bind_call, register_secrets
from bridge.pbx.ami import AmiLink
from tests.eventually import eventually
from tests.fuzz.capture import LogCapture
from tests.fuzz.strategies import fuzz_settings, json_values, odd_text, secret_texts, webhook_codes

log = structlog.get_logger("tests.fuzz.secrets")
hot_log = HotLogger("tests.fuzz.secrets")
"""The daemon's hot modules log through this one: the JSON chain's line written in one step, not structlog's."""


Pair = namedtuple("Pair", "left right")


class Holder:
    """An object whose repr shows what it holds (as a careless library's object would)."""

    def __init__(self, inside: str) -> None:
        self.inside = inside

    def __repr__(self) -> str:
        return f"Holder({self.inside!r})"


def shapes(secret: str, noise: str) -> dict[str, Any]:
    """The secret inside every kind of value a log call may be given."""
    text = f"{noise}{secret}{noise}"
    return {
        "text": text,
        "quoted": repr(text),
        "bytes": text.encode(),
        "list": [noise, text],
        "tuple": (text,),
        "namedtuple": Pair(noise, text),
        "set": {text},
        "frozenset": frozenset({text}),
        "nested": {"a": {"b": [text]}},
        "keys": {text: 1},
        "object": Holder(text),
        "error": RuntimeError(f"login failed for {text}"),
        "error_args": ValueError("bad", text),
    }


@fuzz_settings(150)
@given(secret=secret_texts(), noise=odd_text(8))
def test_a_secret_in_any_logged_value_is_redacted(capture: LogCapture, secret: str, noise: str) -> None:
    capture.clear()
    register_secrets([secret])
    values = shapes(secret, noise)
    for logger in (log, hot_log):
        for name, value in values.items():
            logger.warning("test.value", shape=name, value=value)
        logger.warning(f"event naming {secret}")
        try:
            raise ConnectionError(f"could not log in with {secret!r}")
        except ConnectionError:
            logger.exception("test.failed", during=secret)
    assert len(capture.lines()) == 2 * (len(values) + 2)
    assert capture.leaks(secret) == []


@fuzz_settings(150)
@given(
    secret=secret_texts(),
    noise=odd_text(8),
    shape=st.sampled_from(sorted(shapes("secret", "noise"))),
    others=st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=6), json_values(6), max_size=4),
)
def test_a_hot_logger_writes_the_line_structlog_writes(
    capture: LogCapture, secret: str, noise: str, shape: str, others: dict[str, Any]
) -> None:
    capture.clear()
    register_secrets([secret])
    fields = {**others, "value": shapes(secret, noise)[shape]}
    fields.pop("event", None)
    with mock.patch("time.time_ns", return_value=1_796_676_939_123_456_789), bind_call(noise, secret, "7495"):
        hot_log.info("test.same", **fields)
        log.info("test.same", **fields)
    hot_line, chain_line = capture.stream.getvalue().split("\n")[:2]
    assert hot_line == chain_line
    assert capture.leaks(secret) == []


@fuzz_settings(100)
@given(code=webhook_codes(), tail=st.sampled_from(["", "/", "/user.get.json", "/user.get.json?x=1"]))
def test_a_webhook_code_is_redacted_wherever_its_url_is_logged(capture: LogCapture, code: str, tail: str) -> None:
    capture.clear()
    webhook = f"https://portal.bitrix24.ru/rest/7/{code}/"
    register_secrets([webhook])
    url = webhook.rstrip("/") + tail
    log.warning("crm.retry", url=url, parsed=URL(url), error=OSError(f"cannot reach {url}"))
    assert capture.leaks(code) == []
    assert "portal.bitrix24.ru" in capture.stream.getvalue(), "the portal's name stays readable"


# --- an AMI server that refuses the login and echoes the secret ------------------------------------------------


@contextlib.asynccontextmanager
async def echoing_ami() -> AsyncIterator[int]:
    """An AMI peer that answers every action with an error quoting all the action's fields."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                action = (await reader.readuntil(b"\r\n\r\n")).decode("utf-8", "replace")
                fields = dict(line.split(": ", 1) for line in action.split("\r\n") if ": " in line)
                quoted = " ".join(f"{key}={value}" for key, value in fields.items())
                reply = f"Response: Error\r\nActionID: {fields.get('ActionID', '')}\r\nMessage: refused {quoted}\r\n"
                writer.write(reply.encode() + b"\r\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@fuzz_settings(40)
@given(secret=secret_texts("abcdefXYZ0123456789!#%&*+-=?@^_~"))
async def test_a_refused_ami_login_never_logs_the_secret(capture: LogCapture, secret: str) -> None:
    capture.clear()
    async with echoing_ami() as port:
        settings = AsteriskSettings(ami_port=port, ami_secret=Secret(secret), ping_interval=5.0)
        link = AmiLink(settings, asyncio.Queue())
        running = asyncio.create_task(link.run())
        try:
            await eventually(lambda: capture.events("pbx.connect_failed"), timeout=5.0)
        finally:
            await link.stop()
            await running
    [failed] = capture.events("pbx.connect_failed")
    assert "login refused" in failed["error"]
    assert capture.leaks(secret) == []


# --- a portal whose errors quote the webhook URL ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def echoing_portal() -> AsyncIterator[str]:
    """A Bitrix24 portal that answers each request with an error quoting the path it was asked for."""

    async def answer(request: web.Request) -> web.Response:
        kind = request.match_info["method"]
        if kind.startswith("user.text"):
            return web.Response(text=f"500 at {request.url}", status=500)
        if kind.startswith("user.limit"):
            return web.json_response(
                {"error": "QUERY_LIMIT_EXCEEDED", "error_description": request.path_qs}, status=503
            )
        body = {"error": "INVALID_CREDENTIALS", "error_description": f"no webhook at {request.path_qs} ({request.url})"}
        return web.json_response(body, status=401)

    app = web.Application()
    app.router.add_post("/rest/{user}/{code}/{method}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def client_of(settings: Bitrix24Settings) -> Bitrix24Client:
    return Bitrix24Client(settings, limiter=AsyncLimiter(1000, 1), retry_attempts=2, retry_max_wait=0.01)


@fuzz_settings(60)
@given(code=webhook_codes(), method=st.sampled_from(["user.json.get", "user.text.get", "user.limit.get"]))
async def test_a_portal_quoting_the_webhook_url_in_its_errors_never_gets_it_logged(
    capture: LogCapture, code: str, method: str
) -> None:
    capture.clear()
    async with echoing_portal() as portal:
        settings = Bitrix24Settings(webhook_url=Secret(f"{portal}/rest/1/{code}/"), rate=1000.0, request_timeout=5.0)
        async with client_of(settings) as client:
            with pytest.raises(CrmError) as caught:
                await client.call(method, {"FILTER": {"ID": code}})
    log.warning("crm.failed", error=str(caught.value), detail=caught.value)
    assert code not in str(caught.value)
    assert capture.events("crm.failed") and capture.leaks(code) == []
    if not method.startswith("user.json"):
        assert capture.events("crm.retry"), "a transient error is retried (and logged)"


async def test_an_unreachable_portal_does_not_get_the_webhook_logged(capture: LogCapture) -> None:
    async with echoing_portal() as portal:
        pass  # the port is closed again: connections are refused
    code = "zq9unreachable0123"
    settings = Bitrix24Settings(webhook_url=Secret(f"{portal}/rest/1/{code}/"), request_timeout=2.0)
    async with client_of(settings) as client:
        with pytest.raises(CrmError) as caught:
            await client.call("user.get")
    log.warning("crm.failed", error=str(caught.value), detail=caught.value)
    assert capture.leaks(code) == []
