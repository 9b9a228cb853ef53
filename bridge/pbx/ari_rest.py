"""ARI over aioari 0.10.2 / aioswagger11, with its gaps wrapped (``asterisk.md`` section 3):

* boolean parameters must be strings (``'false'``; a Python bool raises ``TypeError: Invalid variable type``):
  :meth:`AriRest.request` turns every bool into ``"true"``/``"false"``;
* the WebSocket URL is built without escaping the credentials (a password such as ``p&ss#1`` fails the handshake
  with 401): :class:`EscapingHttpClient` percent-escapes every query value; a user name with ``:`` cannot work
  with ARI's ``api_key=user:password`` and is refused with a clear error;
* a failed ``connect()`` leaves an unclosed aiohttp session: :meth:`AriRest.open` closes it;
* HTTP errors surface as aiohttp exceptions: they become :class:`PbxError` with the status and the body.

Once :meth:`AriRest.attach` has the events WebSocket, requests go over it where the PBX can take them
(``asterisk.rest_over_websocket``; :mod:`bridge.pbx.ari_socket` says which stay on HTTP and why, and
:attr:`AriRest.occupied` which channels may be busy playing), with the same parameters, answers and errors as over
HTTP.

Responses come back as plain JSON (dicts and lists) or bytes (recordings), never aioari's model objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus, urlencode, urlsplit

import aioari
import aiohttp
import orjson
import structlog
from aiohttp import web_exceptions
from aioswagger11.http_client import ApiKeyAuthenticator, AsynchronousHttpClient
from yarl import URL

from bridge.config import AsteriskSettings
from bridge.logs import redact_text, register_secrets
from bridge.pbx.ari_socket import CHANNEL_QUEUED, HTTP_ONLY, SocketRest
from bridge.pbx.events import PbxError

log = structlog.get_logger(__name__)

REQUEST_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0


def check_credentials(user: str, password: str) -> None:
    """Refuse credentials ARI's ``api_key=user:password`` cannot carry (raises ValueError, never shows them)."""
    if ":" in user:
        raise ValueError("asterisk.ari_user must not contain ':' (ARI splits api_key=user:password at the first ':')")
    if "\x00" in user or "\x00" in password:
        raise ValueError("asterisk.ari_user / ari_password must not contain NUL characters")


class EscapingHttpClient(AsynchronousHttpClient):  # type: ignore[misc]
    """aioswagger11's client, with every query value of the WebSocket URL percent-escaped."""

    def __init__(self, host: str, user: str, password: str, heartbeat: float | None = None) -> None:
        check_credentials(user, password)
        self.authenticator = ApiKeyAuthenticator(host, f"{user}:{password}")
        self.websockets: set[aiohttp.ClientWebSocketResponse] = set()
        self.session = aiohttp.ClientSession()
        self.heartbeat = heartbeat

    async def ws_connect(self, url: str, params: dict[str, Any] | None = None) -> aiohttp.ClientWebSocketResponse:
        query = dict(params or {})
        if self.authenticator.matches(url):
            self.authenticator.apply(query, query)
        encoded = urlencode({k: str(v) for k, v in query.items()}, quote_via=quote, safe="")
        target = URL(f"{url}?{encoded}" if encoded else url, encoded=True)
        socket = await self.session.ws_connect(target, heartbeat=self.heartbeat)
        lighten_heartbeat(socket)
        self.websockets.add(socket)
        return socket

    async def close(self) -> None:
        for socket in list(self.websockets):
            await socket.close()
        await self.session.close()


HEARTBEAT_INTERNALS = ("_heartbeat", "_heartbeat_when", "_heartbeat_cb", "_pong_response_cb", "_send_heartbeat",
                       "_on_data_received", "_closed", "_closing", "_conn")  # fmt: skip
"""What :func:`lighten_heartbeat` uses of aiohttp's ``ClientWebSocketResponse`` (3.10 to 3.14 at least)."""


def lighten_heartbeat(socket: aiohttp.ClientWebSocketResponse) -> bool:
    """Have the heartbeat of ``socket`` follow the data at one Python call a read instead of five; False (aiohttp's
    own left in place) when the socket lacks the internals this relies on (:data:`HEARTBEAT_INTERNALS`).

    aiohttp resets the heartbeat on every read of the connection through ``_on_data_received``, a ``call_soon`` of
    ``_flush_heartbeat_reset``, then ``_reset_heartbeat``, ``_cancel_pong_response_cb`` and
    ``calculate_timeout_when``: a fifth of aiohttp's Python calls on a busy events socket. The callback put in its
    place on the connection's protocol does the same at once: the next ping is due ``heartbeat`` seconds after the
    last data (rounded up to the second past aiohttp's threshold, as aiohttp does), any data cancels the wait for a
    PONG, and a heartbeat that has fired (a ping sent) is armed again. aiohttp's own timer, ping and PONG deadline
    are untouched."""
    heartbeat = getattr(socket, "_heartbeat", None)
    connection = getattr(getattr(socket, "_response", None), "connection", None)
    protocol: Any = getattr(connection, "protocol", None)
    if (
        heartbeat is None
        or not all(hasattr(socket, name) for name in HEARTBEAT_INTERNALS)
        or getattr(protocol, "_data_received_cb", None) != socket._on_data_received
    ):
        return False
    loop = asyncio.get_running_loop()
    connector = getattr(socket._conn, "_connector", None)
    rounded = heartbeat > getattr(connector, "_timeout_ceil_threshold", 5)
    send = socket._send_heartbeat

    def data_received() -> None:
        when = loop.time() + heartbeat
        socket._heartbeat_when = math.ceil(when) if rounded else when
        pong = socket._pong_response_cb
        if pong is not None:
            pong.cancel()
            socket._pong_response_cb = None
        if socket._heartbeat_cb is None and not (socket._closed or socket._closing):
            socket._heartbeat_cb = loop.call_at(socket._heartbeat_when, send)

    protocol._data_received_cb = data_received
    return True


def ari_value(value: object) -> object:
    """A parameter as aioswagger11 can send it: bools as ``"true"``/``"false"``, whole floats as ints."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return ",".join(str(ari_value(item)) for item in value)
    return value


class AriRest:
    """One ARI client session: swagger docs loaded, REST operations, the events WebSocket."""

    def __init__(self, settings: AsteriskSettings) -> None:
        self.settings = settings
        password = settings.ari_password.reveal()
        check_credentials(settings.ari_user, password)
        register_secrets([password, quote(password, safe=""), f"{settings.ari_user}:{password}"])
        self.http: EscapingHttpClient | None = None
        self.client: Any = None
        self.over_socket: SocketRest | None = None
        """REST over the events WebSocket, while one is attached (see :meth:`attach`)."""
        self.occupied: Callable[[str], bool] = _maybe
        """Whether a channel may be playing a prompt or recording (its queued operations then keep to HTTP, see
        :mod:`bridge.pbx.ari_socket`); by default every channel may."""
        self._routes: dict[tuple[str, str], _Route] = {}

    async def open(self) -> None:
        """Load the API docs; on any failure close the HTTP session again (aioari leaves it open)."""
        base = self.settings.ari_url.rstrip("/") + "/"
        host = urlsplit(base).hostname or ""
        http = EscapingHttpClient(host, self.settings.ari_user, self.settings.ari_password.reveal(),
                                  heartbeat=self.settings.ping_interval)  # fmt: skip
        try:
            client = aioari.Client(base, http)
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await client.init()
        except web_exceptions.HTTPException as exc:
            await http.close()
            raise PbxError(exc.status, _body(exc), action="load api-docs") from None
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            await http.close()
            raise PbxError(0, _describe(exc), action="load api-docs") from None
        except BaseException:
            await http.close()
            raise
        self.http, self.client = http, client
        self._routes.clear()  # this PBX's API docs make them

    async def close(self) -> None:
        self.detach("ARI connection closed")
        http, self.http, self.client = self.http, None, None
        if http is not None:
            await http.close()

    async def attach(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """Send requests over the events ``socket`` from now on (``on``), or once the PBX answered a probe
        (``auto``); ``off`` keeps to HTTP. The socket's reader hands every RESTResponse to :meth:`take`."""
        mode = self.settings.rest_over_websocket
        if mode == "off":
            return
        self.over_socket = SocketRest(socket, ready=mode == "on")
        if mode == "on":
            log.info("pbx.rest_over_websocket", link="ari", mode=mode)
            return
        with contextlib.suppress(ConnectionError, RuntimeError):  # closed already: the socket's reader sees it
            await self.over_socket.probe()

    def take(self, message: dict[str, Any]) -> bool:
        """True when the decoded RESTResponse ``message`` was taken (a socket carries requests)."""
        return self.over_socket is not None and self.over_socket.take(message)

    def detach(self, reason: str) -> None:
        """The events socket is gone: requests pending on it fail with :class:`PbxError`; later ones use HTTP."""
        over_socket, self.over_socket = self.over_socket, None
        if over_socket is not None:
            over_socket.fail_all(reason)

    async def events(self, app: str) -> aiohttp.ClientWebSocketResponse:
        """Open the events WebSocket of ``app``."""
        return await self.request("events", "eventWebsocket", app=app)  # type: ignore[no-any-return]

    async def request(self, resource: str, operation: str, **params: object) -> Any:
        """One ARI operation by its swagger nickname (``channels``, ``originateWithId``); JSON, bytes or None."""
        over_socket = self.over_socket
        if over_socket is not None and over_socket.ready:
            route = self._routes.get((resource, operation)) or self._route(resource, operation)
            if route.socket and (route.queued is None or self._free(params.get(route.queued))):
                uri, query, body = route.fill(params)
                try:
                    answer = await over_socket.request(route.method, uri, query, body, route.action, REQUEST_TIMEOUT)
                except TimeoutError:
                    raise PbxError(0, "no answer over the ARI WebSocket", action=route.action) from None
                return _answer(answer, route.action)
        op = self._operation(resource, operation)
        args = {name: ari_value(value) for name, value in params.items() if value is not None}
        return await self._over_http(f"{resource}.{operation}", lambda: op(**args))

    def _route(self, resource: str, operation: str) -> _Route:
        route = self._routes[resource, operation] = _Route.of(self._operation(resource, operation), resource, operation)
        return route

    def _free(self, channels: object) -> bool:
        """No channel of ``channels`` (an id, a comma-separated or a list of them) may be playing or recording."""
        occupied = self.occupied
        if channels.__class__ is str and "," not in channels:  # one channel: most requests
            return not occupied(channels)
        listed = channels if isinstance(channels, list | tuple) else str(channels or "").split(",")
        return not any(occupied(str(channel)) for channel in listed)

    def _operation(self, resource: str, operation: str) -> Any:
        """aioswagger11's operation by resource and nickname, as the PBX's API docs describe it."""
        if self.client is None:
            raise PbxError(0, "ARI not connected", action=f"{resource}.{operation}")
        api = self.client.swagger.get_resource(resource)
        op = api.get_operation(operation) if api is not None else None
        if op is None:
            raise PbxError(0, "no such ARI operation", action=f"{resource}.{operation}")
        return op

    async def filter_events(self, app: str, types: Iterable[str]) -> None:
        """Have the PBX send ``app`` only messages of these ``types`` (``PUT /applications/{app}/eventFilter``, Asterisk
        13.26+/16.3+; it filters the socket's RESTResponses and ``ApplicationReplaced`` too).

        Over HTTP with the filter as the body itself (``{"allowed": [{"type": ...}]}``): aioswagger11 sends a body
        parameter wrapped in an object of its name (``{"filter": {...}}``), which Asterisk reads as a filter that names
        neither list and leaves both as they were, answering 200 (``res/stasis/app.c``)."""
        op = self._operation("applications", "filter")
        http: Any = self.http  # opened with the client that found the operation
        url = op.uri.replace("{applicationName}", quote(app, safe=""))
        body = orjson.dumps({"allowed": [{"type": kind} for kind in sorted(types)]})
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        await self._over_http("applications.filter", lambda: http.request("PUT", url, {}, body, headers))

    async def _over_http(self, action: str, send: Callable[[], Awaitable[Any]]) -> Any:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):  # not wait_for: on 3.11 it can swallow a cancellation
                response = await send()
            if isinstance(response, aiohttp.ClientWebSocketResponse):
                return response
            body = await response.read()
            response.release()
        except web_exceptions.HTTPException as exc:
            raise PbxError(exc.status, _body(exc), action=action) from None
        except aiohttp.WSServerHandshakeError as exc:
            raise PbxError(exc.status, "WebSocket handshake refused", action=action) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PbxError(0, _describe(exc), action=action) from None
        except RuntimeError as exc:  # aiohttp: "Session is closed" when the link closed it under the request
            raise PbxError(0, _describe(exc), action=action) from None
        if not body:
            return None
        if response.content_type == "application/json":
            try:
                return json.loads(body)
            except ValueError:
                raise PbxError(response.status, "answer is not JSON", action=action) from None
        return body


def _answer(answer: dict[str, Any], action: str) -> Any:
    """A RESTResponse as :meth:`AriRest.request` returns it: the body's JSON, None, or :class:`PbxError`."""
    status = answer.get("status_code")
    text = answer.get("message_body")
    text = text if isinstance(text, str) else ""
    if not isinstance(status, int) or status >= 400:
        reason = _message(text) or redact_text(str(answer.get("reason_phrase") or ""))[:500]
        raise PbxError(status if isinstance(status, int) else 0, reason, action=action)
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise PbxError(status, "answer is not JSON", action=action) from None


class _Route:
    """How one swagger operation becomes a RESTRequest: method, ``uri`` template, where each parameter goes, and
    whether the socket may carry it (:data:`HTTP_ONLY`; :data:`CHANNEL_QUEUED` names the channel parameter)."""

    __slots__ = ("action", "kinds", "method", "queued", "required", "socket", "template")

    def __init__(self, key: tuple[str, str], method: str, template: str, params: list[tuple[str, str, bool]]) -> None:
        self.action, self.method, self.template = ".".join(key), method, template
        self.kinds = {name: kind for name, kind, _ in params}
        self.required = tuple(name for name, _, required in params if required)
        self.socket = key not in HTTP_ONLY
        self.queued = CHANNEL_QUEUED.get(key)

    @classmethod
    def of(cls, op: Any, resource: str, operation: str) -> _Route:
        path = urlsplit(op.uri).path.rpartition("/ari/")[2]  # relative: Asterisk refuses a leading "/"
        params = [(p["name"], p["paramType"], bool(p.get("required"))) for p in op.json.get("parameters", [])]
        return cls((resource, operation), op.json["httpMethod"], path, params)

    def fill(self, params: dict[str, object]) -> tuple[str, list[dict[str, str]], dict[str, Any] | None]:
        """Like aioswagger11's ``Operation.__call__``: a missing required or an unknown parameter is a TypeError;
        values as :func:`ari_value` makes them, None left out."""
        for name in self.required:
            if params.get(name) is None:
                raise TypeError(f"Missing required parameter '{name}'")
        uri, query, body, kinds = self.template, [], None, self.kinds
        for name, value in params.items():
            if value is None:
                continue
            kind = kinds.get(name)
            if kind is None:
                unknown = sorted(name for name, value in params.items() if value is not None and name not in kinds)
                raise TypeError(f"unknown parameters {unknown}")
            if value.__class__ is not str:
                value = ari_value(value)
            if kind == "path":
                text = str(value)  # Asterisk decodes each path segment
                uri = uri.replace(f"{{{name}}}", text if PLAIN.fullmatch(text) else quote_plus(text))
            elif kind == "query":
                query.append({"name": name, "value": str(value)})
            else:
                if body is None:
                    body = {}
                body[name] = value
        return uri, query, body


PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")
"""What ``quote_plus`` leaves as it is."""


def _maybe(channel: str) -> bool:
    return True


def _message(text: str) -> str:
    """``{"message": ...}`` or ``{"error": ...}`` of an error body, redacted and cut short."""
    try:
        body = json.loads(text)
        message = body.get("message") or body.get("error")
    except (ValueError, AttributeError):
        message = None
    return redact_text(str(message) if message else text)[:500]


def _body(exc: web_exceptions.HTTPException) -> str:
    """The error body ARI sent, e.g. ``{"message":"Channel not found"}`` -> ``Channel not found`` (a 500 says
    ``{"error":"Allocation failed"}``)."""
    return _message(exc.text or "")


def _describe(exc: BaseException) -> str:
    return redact_text(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:300]
