"""Shared pieces for the Bitrix24 simulator tests: a fake clock, a small REST client, fixtures."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web

from bridge.sim.bitrix24 import Bitrix24Simulator


class FakeClock:
    """A clock the test moves by hand (for the bucket, token expiry and the operating budget)."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Rest:
    """Calls the simulator over HTTP the way clients do; returns (HTTP status, decoded JSON)."""

    def __init__(self, session: aiohttp.ClientSession, sim: Bitrix24Simulator) -> None:
        self.session = session
        self.sim = sim

    async def _send(self, url: str, payload: dict[str, Any] | None, form: bool) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"data": payload} if form else {"json": payload or {}}
        async with self.session.post(url, **kwargs) as response:
            return response.status, await response.json(content_type=None)

    async def call(self, method: str, payload: dict[str, Any] | None = None, *, form: bool = False) -> tuple[int, Any]:
        """Through the inbound webhook, ``<method>.json``."""
        return await self._send(f"{self.sim.webhook_url}{method}.json", payload, form)

    async def result(self, method: str, payload: dict[str, Any] | None = None, *, form: bool = False) -> Any:
        status, body = await self.call(method, payload, form=form)
        assert status == 200, body
        return body["result"]

    async def oauth(self, method: str, token: str, payload: dict[str, Any] | None = None) -> tuple[int, Any]:
        return await self._send(f"{self.sim.url}/rest/{method}", {**(payload or {}), "auth": token}, False)

    async def as_app(self, method: str, payload: dict[str, Any] | None = None) -> Any:
        """The ``result`` of a call with the application's OAuth token, acting as the portal admin (user 1)."""
        if not hasattr(self, "_admin_token"):
            self._admin_token = str(self.sim.issue_tokens(user_id=1)["access_token"])
        status, body = await self.oauth(method, self._admin_token, payload)
        assert status == 200, body
        return body["result"]

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        async with self.session.get(f"{self.sim.url}{path}", params=params) as response:
            return response.status, await response.json(content_type=None)

    async def control(self, path: str, payload: dict[str, Any] | None = None) -> tuple[int, Any]:
        async with self.session.post(f"{self.sim.url}/_sim/{path}", json=payload or {}) as response:
            return response.status, await response.json(content_type=None)

    async def register(self, **fields: Any) -> str:
        payload = {"USER_ID": 12, "PHONE_NUMBER": "+7 916 123-45-67", "TYPE": 2, **fields}
        result = await self.result("telephony.externalCall.register", payload)
        call_id: str = result["CALL_ID"]
        return call_id

    async def finish(self, call_id: str, **fields: Any) -> tuple[int, Any]:
        return await self.call("telephony.externalCall.finish", {"CALL_ID": call_id, "USER_ID": 12, **fields})


@pytest_asyncio.fixture(name="sim")
async def sim_fixture() -> AsyncIterator[Bitrix24Simulator]:
    async with Bitrix24Simulator() as simulator:
        yield simulator


@pytest_asyncio.fixture(name="rest")
async def rest_fixture(sim: Bitrix24Simulator) -> AsyncIterator[Rest]:
    async with aiohttp.ClientSession() as session:
        yield Rest(session, sim)


@contextlib.asynccontextmanager
async def local_server(routes: list[web.RouteDef]) -> AsyncIterator[str]:
    """A throwaway aiohttp server on 127.0.0.1:0 (event handlers, record hosts); yields its base URL."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
