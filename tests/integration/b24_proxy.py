"""A recording HTTP proxy in front of the Bitrix24 simulator, on 127.0.0.1:0.

It logs every REST request it forwards (method and body) and can lose answers: the request reaches the portal
and is carried out, but the connection is closed before the answer gets back, as a dropped link would do.
It reads a request whole before forwarding it, so a client that dies mid-request still gets it carried out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import aiohttp
from aiohttp import web

from bridge.sim.bitrix24 import Bitrix24Simulator


@dataclass
class Forwarded:
    method: str
    body: dict[str, Any]
    answered: bool = True

    def commands(self) -> list[tuple[str, str, dict[str, str]]]:
        """A batch's commands in order as ``(key, method, flat params)``; a plain call as one command."""
        if self.method != "batch":
            flat = {k: str(v) for k, v in self.body.items() if not isinstance(v, dict | list)}
            return [("", self.method, flat)]
        out = []
        for key, text in (self.body.get("cmd") or {}).items():
            method, _, query = text.partition("?")
            out.append((key, method, {unquote_plus(k): v for k, v in parse_qsl(query, keep_blank_values=True)}))
        return out


@dataclass
class LossRule:
    """Lose the answer of the next ``count`` requests for which ``matches`` is true."""

    matches: Callable[[Forwarded], bool]
    count: int = 1


@dataclass
class B24Proxy:
    sim: Bitrix24Simulator
    log: list[Forwarded] = field(default_factory=list)

    @property
    def sends(self) -> list[Forwarded]:
        """The log without the request in which delivery learns what the statistics show it (once, before its
        first check: ``bridge.delivery.access``)."""
        return [r for r in self.log if not any(method == "profile" for _k, method, _p in r.commands())]

    losses: list[LossRule] = field(default_factory=list)
    answer_delay: float = 0.0
    """Seconds between the portal's answer and passing it on: the request is carried out, the client waits."""
    url: str = ""
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def webhook_url(self) -> str:
        return self.sim.webhook_url.replace(self.sim.url, self.url)

    def lose_answer(self, matches: Callable[[Forwarded], bool], count: int = 1) -> LossRule:
        rule = LossRule(matches, count)
        self.losses.append(rule)
        return rule

    async def __aenter__(self) -> B24Proxy:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        raw = await request.read()
        method = request.path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")
        try:
            body = json.loads(raw) if raw and request.content_type == "application/json" else {}
        except ValueError:
            body = {}
        entry = Forwarded(method, body if isinstance(body, dict) else {})
        self.log.append(entry)
        async with self._session.request(
            request.method, self.sim.url + request.path_qs, data=raw, headers={"Content-Type": request.content_type}
        ) as answer:
            payload = await answer.read()
            status = answer.status
            content_type = answer.content_type
        for rule in self.losses:
            if rule.count > 0 and rule.matches(entry):
                rule.count -= 1
                entry.answered = False
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=502)  # never reaches the client: the connection is gone
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return web.Response(body=payload, status=status, content_type=content_type)
