"""``/status``, ``/status.json`` and the live stream over HTTP: who may read them, and that updates arrive."""

from __future__ import annotations

import asyncio
import json
from base64 import b64encode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from bridge.config.http import HttpSettings
from bridge.config.reader import Secret
from bridge.ops.status.web import status_routes

TOKEN = "s3cret-token-0123456789"


class Board:
    """Stands in for the daemon's view: a counter the test moves."""

    def __init__(self) -> None:
        self.calls = 0

    def data(self) -> dict[str, Any]:
        return {
            "generated_at": "now", "links": [], "agents": [], "recent": [],
            "calls": [{"call_id": f"c{i}", "kind": "inbound", "line": "1", "line_name": "", "caller": "2",
                       "caller_name": "<i>x</i>", "state": "ringing", "age_seconds": 0, "ringing": [], "next": "",
                       "next_in_seconds": None, "card_shown_to": [], "talking": None} for i in range(self.calls)],
            "delivery": {"journal_depth": 0, "oldest_pending_seconds": 0, "bucket_level": 0, "bucket_size": 50,
                         "requests_per_minute": 0, "commands_per_minute": 0, "parked": []},
        }  # fmt: skip


@asynccontextmanager
async def serving(http: HttpSettings, board: Board) -> AsyncIterator[TestClient]:
    app = web.Application()
    app.add_routes(status_routes(http, board.data, push_interval=0.02))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


async def test_loopback_without_token_serves_page_data_and_assets() -> None:
    async with serving(HttpSettings(), Board()) as client:
        page = await client.get("/status")
        assert page.status == 200 and page.content_type == "text/html"
        text = await page.text()
        assert "/status/static/status.js" in text and "&lt;i&gt;" not in text  # no calls yet
        assert 'data-stream="/status/events"' in text
        assert (await client.get("/status.json")).status == 200
        js = await client.get("/status/static/status.js")
        assert js.status == 200 and "EventSource" in await js.text()
        assert (await client.get("/status/static/status.css")).status == 200
        assert (await client.get("/status/static/..%2Fweb.py")).status == 404
        assert (await client.get("/status/static/nothing.js")).status == 404


async def test_a_non_loopback_listener_without_token_refuses_the_page() -> None:
    async with serving(HttpSettings(host="0.0.0.0"), Board()) as client:
        for path in ("/status", "/status.json", "/status/events"):
            answer = await client.get(path)
            assert answer.status == 403, path
            assert "http.status_token" in (await answer.json())["error"]


async def test_with_a_token_every_way_of_giving_it_works_and_nothing_else() -> None:
    http = HttpSettings(host="0.0.0.0", status_token=Secret(TOKEN))
    basic = "Basic " + b64encode(f"ops:{TOKEN}".encode()).decode()
    with capture_logs() as logs:
        async with serving(http, Board()) as client:
            refused = await client.get("/status")
            assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
            assert (await client.get("/status.json", headers={"Authorization": "Bearer wrong"})).status == 401
            assert (await client.get("/status.json", headers={"Authorization": "Basic !!"})).status == 401
            assert (await client.get("/status.json", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
            assert (await client.get("/status.json", headers={"Authorization": basic})).status == 200
            page = await client.get("/status", params={"token": TOKEN})
            assert page.status == 200
            assert f'data-stream="/status/events?token={TOKEN}"' in await page.text()
    assert any(e["event"] == "status.refused" for e in logs)
    assert TOKEN not in json.dumps(logs, default=str)


async def test_the_stream_sends_the_page_again_when_it_changes() -> None:
    board = Board()
    async with serving(HttpSettings(), board) as client:
        stream = await client.get("/status/events")
        assert stream.status == 200 and stream.content_type == "text/event-stream"

        async def next_update() -> str:
            event = ""
            while True:
                line = (await stream.content.readline()).decode()
                if line.startswith("event: "):
                    event = line[7:].strip()
                elif line.startswith("data: ") and event == "status":
                    html: str = json.loads(line[6:])["html"]
                    return html

        first = await asyncio.wait_for(next_update(), 5)
        assert "no calls in progress" in first
        board.calls = 1
        second = await asyncio.wait_for(next_update(), 5)
        assert "&lt;i&gt;x&lt;/i&gt;" in second and "<i>x</i>" not in second
        stream.close()
