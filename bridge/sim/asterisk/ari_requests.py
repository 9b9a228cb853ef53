"""REST requests on the events WebSocket (``RESTRequest`` in, ``RESTResponse`` out), as Asterisk 20.20.1 serves them.

The request runs through the same aiohttp handlers (and the auth/record middleware) as over HTTP, in process: the
socket's upgrade request lends its ``Authorization`` header and ``api_key`` (``res/ari/ari_websocket_requests.c``
appends the socket's ``api_key`` to every request). Frames are served one at a time in arrival order, and each
answer is queued among the socket's events. What the real PBX answers (checked on 20.20.1):

* a frame that is not JSON: 400 ``Failed to parse request message JSON`` with empty ids and no body;
* a missing or other ``type``, missing ``uri``, unknown ``method``, ``message_body`` without ``content_type``:
  400 ``Bad request`` with ``{"message": ...}``;
* a ``uri`` with a leading ``/``: 405 ``{"message":"Invalid method"}``; an unknown path: 404 ``Resource not found``;
* a file answer (a stored recording): 406 ``Not Acceptable.  Use HTTP GET``;
* the answer's ``uri`` is the request's without its query string; ``content_type``/``message_body`` only when there
  is a body; ``application``, ``timestamp`` and ``asterisk_id`` as on events.

``AsteriskSimulator.ari_rest_over_websocket = False`` models a PBX older than 20.14: it reads such frames and
ignores them, answering nothing.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from multidict import CIMultiDict

from bridge.sim.asterisk.ari_http import VIA

if TYPE_CHECKING:
    from bridge.sim.asterisk.ari import EventSocket

METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")
BODY_TYPES = ("application/json", "application/x-www-form-urlencoded")


async def serve(socket: EventSocket, app: web.Application, text: str) -> dict[str, Any]:
    """Carry out one client frame; returns the RESTResponse (without the event stamps)."""
    try:
        message = json.loads(text)
    except ValueError:
        return _response("", "", 400, "Failed to parse request message JSON", "")
    if not isinstance(message, dict):
        message = {}
    request_id, transaction_id = _text(message, "request_id"), _text(message, "transaction_id")

    def bad(why: str, uri: str = "") -> dict[str, Any]:
        return _response(transaction_id, request_id, 400, "Bad request", uri, {"message": why})

    if not _text(message, "type"):
        return bad("No 'type' property.")
    if message["type"] != "RESTRequest":
        return bad("Unknown request type.")
    uri = _text(message, "uri")
    if not uri:
        return bad("Empty or missing 'uri' property.")
    path, _, query_text = uri.partition("?")
    method = _text(message, "method").upper()
    if method not in METHODS:
        return bad("Unknown or missing 'method' property.")
    query = parse_qsl(query_text, keep_blank_values=True)
    for item in message.get("query_strings") or []:
        if not isinstance(item, dict) or "name" not in item:
            return bad("Unable to parse 'query_strings' array.")
        query.append((str(item["name"]), str(item.get("value", ""))))
    body, content_type = _text(message, "message_body"), _text(message, "content_type")
    if body and not content_type:
        return bad("No 'content_type' for 'message_body'.")
    if body and content_type not in BODY_TYPES:
        return bad("Unknown content type.")
    if body and content_type == BODY_TYPES[1]:
        query += parse_qsl(body, keep_blank_values=True)
        body = ""
    if path.startswith("/"):
        return _response(transaction_id, request_id, 405, "Method Not Allowed", path, {"message": "Invalid method"})
    status, reason, answer = await _invoke(socket, app, method, path, query, body)
    return _response(transaction_id, request_id, status, reason, path, answer)


async def _invoke(
    socket: EventSocket, app: web.Application, method: str, path: str, query: list[tuple[str, str]], body: str
) -> tuple[int, str, str | None]:
    """Run the handler ``/ari/{path}`` resolves to, with the socket's credentials; (status, reason, JSON text)."""
    api_key = socket.request.query.get("api_key")
    if api_key is not None:
        query = [*query, ("api_key", api_key)]
    original = socket.request
    headers = {"Host": original.host, "Authorization": original.headers.get("Authorization", "")}
    payload: StreamReader = EMPTY_PAYLOAD
    if body:
        data = body.encode()
        headers |= {"Content-Type": "application/json", "Content-Length": str(len(data))}
        payload = StreamReader(original.protocol, 2**16, loop=asyncio.get_running_loop())
        payload.feed_data(data)
        payload.feed_eof()
    target = f"/ari/{path}" + (f"?{urlencode(query)}" if query else "")
    request = original.clone(method=method, rel_url=target, headers=CIMultiDict(headers))
    request._payload = payload  # a request of its own on the socket's connection, as Asterisk serves it
    request[VIA] = "websocket"
    match = await app.router.resolve(request)
    if match.http_exception is not None:
        status = match.http_exception.status
        why = "Resource not found" if status == 404 else "Invalid method"
        return status, match.http_exception.reason, json.dumps({"message": why})
    request._match_info = match  # what aiohttp's server does once it has resolved the route
    match.add_app(app)
    handler = match.handler
    for middleware in reversed(app.middlewares):
        handler = _wrap(middleware, handler)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        return exc.status, exc.reason, exc.text or None
    if not isinstance(response, web.Response):
        return 500, "Internal Server Error", None
    if response.status < 400 and response.content_type != "application/json" and response.body:
        return 406, "Not Acceptable.  Use HTTP GET", None
    return response.status, response.reason, (response.text or None) if response.body else None


def _wrap(middleware: Any, handler: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await middleware(request, handler)  # type: ignore[no-any-return]

    return wrapped


def _response(
    transaction_id: str, request_id: str, status: int, reason: str, uri: str, body: dict[str, Any] | str | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "RESTResponse", "transaction_id": transaction_id, "request_id": request_id, "status_code": status,
        "reason_phrase": reason, "uri": uri,
    }  # fmt: skip
    if body is not None:
        message["content_type"] = "application/json"
        message["message_body"] = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    message["timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return message


def _text(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    return value if isinstance(value, str) else ""
