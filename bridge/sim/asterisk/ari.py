"""The ARI HTTP server: Basic / ``api_key`` auth, Swagger 1.1 api-docs, the events WebSocket.

``/ari/api-docs/*.json`` are served from ``api_docs/`` with ``basePath`` rewritten to this
server, which is what aioari (aioswagger11) builds its operations from. Each events WebSocket
sends JSON text frames in order through its own queue, and serves REST requests sent on it
(:mod:`bridge.sim.asterisk.ari_requests`); while the simulator is silent it drops
events and does not answer pings, and REST requests wait until it wakes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import WSMsgType, web

from bridge.sim.asterisk import ari_bridges, ari_channels, ari_requests, ari_resources
from bridge.sim.asterisk.ari_http import SIM_KEY, VIA, Params, answer, fail, sim_of

if TYPE_CHECKING:
    from bridge.sim.asterisk.simulator import AsteriskSimulator

log = structlog.get_logger(__name__)

API_DOCS = Path(__file__).with_name("api_docs")


class EventSocket:
    """One ``/ari/events`` WebSocket: events are queued and sent in order by one task."""

    def __init__(self, sim: AsteriskSimulator, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.sim, self.ws, self.request = sim, ws, request
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._send_all())

    def push(self, event: dict[str, Any]) -> None:
        if self.sim.ari_silent:
            return
        self.queue.put_nowait(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    def push_text(self, text: str) -> None:
        if not self.sim.ari_silent:
            self.queue.put_nowait(text)

    async def _send_all(self) -> None:
        while (text := await self.queue.get()) is not None:
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def abort(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        self.queue.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self.task, 1)
        self.task.cancel()


def _authorized(request: web.Request, user: str, password: str) -> bool:
    if request.query.get("api_key") == f"{user}:{password}":
        return True
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return decoded == f"{user}:{password}"
    return False


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    sim = sim_of(request)
    if not _authorized(request, sim.ari_user, sim.ari_password):
        log.warning("sim.ari_unauthorized", method=request.method, path=request.path)
        return web.json_response(
            {"message": "Authentication required"},
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
        )
    await sim.wait_awake_ari()
    params = {k: v for k, v in request.query.items() if k != "api_key"}
    sim.record_request("ari", request.method, request.path, params, request.get(VIA, "http"))
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        log.warning("sim.ari_no_route", method=request.method, path=request.path, status=exc.status)
        return web.json_response({"message": exc.reason}, status=exc.status)
    except Exception:
        log.exception("sim.ari_handler_failed", method=request.method, path=request.path)
        return web.json_response({"message": "Internal Server Error"}, status=500)
    return response


async def events(request: web.Request) -> web.StreamResponse:
    sim = sim_of(request)
    params = await Params.read(request)
    apps = params.items("app")
    if not apps:
        fail(400, "Missing required parameter: app")
    ws = web.WebSocketResponse(autoping=False)
    await ws.prepare(request)
    socket = EventSocket(sim, ws, request)
    sim.sockets.add(socket)
    sim.bus.attach(apps, socket, params.flag("subscribeAll"))
    try:
        async for message in ws:
            if message.type == WSMsgType.PING and not sim.ari_silent:
                await ws.pong(message.data)
            elif message.type == WSMsgType.CLOSE:
                break
            elif message.type == WSMsgType.TEXT and sim.ari_rest_over_websocket:
                answer = await ari_requests.serve(socket, request.app, message.data)
                if sim.bus.app(apps[0]).allows(answer):  # Asterisk filters the answers as events
                    socket.push({**answer, "application": apps[0], "asterisk_id": sim.bus.asterisk_id})
            elif message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                log.warning("sim.ari_client_frame_ignored", apps=apps, size=len(message.data))
    finally:
        sim.bus.detach(socket)
        sim.sockets.discard(socket)
        await socket.close()
    return ws


async def resources_doc(request: web.Request) -> web.Response:
    return _doc(request, "resources")


async def resource_doc(request: web.Request) -> web.Response:
    name = request.match_info["resource"]
    if not name.isidentifier() or not (API_DOCS / f"{name}.json").is_file():
        fail(404, "Resource not found")
    return _doc(request, name)


def _doc(request: web.Request, name: str) -> web.Response:
    doc = json.loads((API_DOCS / f"{name}.json").read_text())
    doc["basePath"] = f"{request.scheme}://{request.host}/ari"
    return answer(doc)


def build_app(sim: AsteriskSimulator) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[SIM_KEY] = sim
    app.router.add_get("/ari/events", events)
    app.router.add_get("/ari/api-docs/resources.json", resources_doc)
    app.router.add_get("/ari/api-docs/{resource}.json", resource_doc)
    app.add_routes(ari_resources.routes)
    app.add_routes(ari_bridges.routes)
    app.add_routes(ari_channels.routes)
    return app
