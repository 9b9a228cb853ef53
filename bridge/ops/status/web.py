"""``/status`` (HTML), ``/status.json`` and ``/status/events`` (Server-Sent Events) on the daemon's HTTP server.

Who may read them: with ``http.status_token`` set, a request must carry the token (``Authorization: Bearer``,
basic auth with the token as password, which a browser asks for, or ``?token=``); without it the page is served
on a loopback listener only and refused (403) elsewhere. The token is compared in constant time and never logged.
"""

from __future__ import annotations

import asyncio
import binascii
import hmac
import json
from base64 import b64decode
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web

from bridge.config.http import HttpSettings
from bridge.ops.status import render

log = structlog.get_logger(__name__)

Snapshot = Callable[[], dict[str, Any]]
PUSH_INTERVAL = 0.25
"""How often a live page's data is looked at; an update is sent only when the page would change."""
KEEPALIVE_SECONDS = 15.0
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css"}
REALM = 'Basic realm="b24-bridge status", charset="UTF-8"'


def status_routes(
    http: HttpSettings, snapshot: Snapshot, *, push_interval: float = PUSH_INTERVAL
) -> list[web.RouteDef]:
    """The page's routes; ``snapshot`` returns :func:`bridge.ops.status.model.status_data`'s output."""
    token = http.status_token.reveal()

    def refused(request: web.Request) -> web.Response | None:
        if not token:
            if http.status_open:
                return None
            log.warning("status.refused", peer=request.remote, reason="no http.status_token on a non-loopback listener")
            return web.json_response(
                {"error": "the status page is off on a non-loopback listener; set http.status_token"}, status=403
            )
        if _carries(request, token):
            return None
        log.warning("status.refused", peer=request.remote, reason="missing or wrong token")
        return web.json_response({"error": "token required"}, status=401, headers={"WWW-Authenticate": REALM})

    async def page(request: web.Request) -> web.Response:
        if (answer := refused(request)) is not None:
            return answer
        given = request.query.get("token", "")
        query = f"?token={quote(given, safe='')}" if given else ""
        return web.Response(text=render.page(snapshot(), token_query=query), content_type="text/html", charset="utf-8")

    async def data(request: web.Request) -> web.Response:
        if (answer := refused(request)) is not None:
            return answer
        return web.json_response(snapshot(), dumps=lambda d: json.dumps(d, ensure_ascii=False))

    async def events(request: web.Request) -> web.StreamResponse:
        if (answer := refused(request)) is not None:
            return answer
        stream = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await stream.prepare(request)
        sent, quiet = "", 0.0
        try:
            while True:
                html = render.body(snapshot())
                if html != sent:
                    await stream.write(_event("status", {"html": html}))
                    sent, quiet = html, 0.0
                elif quiet >= KEEPALIVE_SECONDS:
                    await stream.write(b": keep-alive\n\n")
                    quiet = 0.0
                await asyncio.sleep(push_interval)
                quiet += push_interval
        except ConnectionResetError:
            pass  # the browser went away
        return stream

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = ASSET_TYPES.get(name[name.rfind(".") :]) if "." in name else None
        files = resources.files("bridge.ops.status").joinpath("static")
        if kind is None or "/" in name or not files.joinpath(name).is_file():
            raise web.HTTPNotFound()
        return web.Response(body=files.joinpath(name).read_bytes(), content_type=kind, charset="utf-8")

    return [
        web.get("/status", page),
        web.get("/status.json", data),
        web.get("/status/events", events),
        web.get(render.ASSETS + "/{name}", asset),
    ]


def _event(name: str, data: dict[str, Any]) -> bytes:
    """One SSE event; JSON keeps the data on one line."""
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _carries(request: web.Request, token: str) -> bool:
    """The request carries ``token``: as a Bearer token, as basic auth's password, or as ``?token=``."""
    given = request.query.get("token", "")
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            given = ""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())
