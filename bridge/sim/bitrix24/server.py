"""HTTP front: ``/rest`` routing (OAuth and inbound webhook), request bodies, auth, envelopes, the bucket
and injected faults; ``/oauth/token/``."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl

import structlog
from aiohttp import web

from bridge.sim.bitrix24 import errors
from bridge.sim.bitrix24.batch import command_count
from bridge.sim.bitrix24.context import Caller, Reply
from bridge.sim.bitrix24.errors import RestError
from bridge.sim.bitrix24.faults import injected_error, pick_failure
from bridge.sim.bitrix24.oauth import token_endpoint
from bridge.sim.bitrix24.params import Params, nest_pairs, upper_keys
from bridge.sim.bitrix24.portal import Portal

log = structlog.get_logger(__name__)

MAX_BODY = 64 * 1024 * 1024
_NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class _Dropped(Exception):
    """The injected fault closed the connection; nothing is sent."""


def _method_name(raw: str) -> str:
    return raw.removesuffix(".json")


async def read_params(request: web.Request) -> tuple[Params, dict[str, bytes]]:
    """Query string plus body (JSON, form, multipart or a bare query string), PHP-nested and upper-cased;
    uploaded files separately. RestError 400 for a body that cannot be read."""
    pairs: list[tuple[str, str]] = list(request.query.items())
    files: dict[str, bytes] = {}
    json_body: dict[str, Any] = {}
    if request.method == "POST" and request.can_read_body:
        content_type = request.content_type
        if content_type == "application/json":
            raw = await request.read()
            try:
                decoded = json.loads(raw) if raw.strip() else {}
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise errors.bad_request("Request body is not valid JSON") from exc
            if not isinstance(decoded, dict):
                raise errors.bad_request("JSON body must be an object")
            json_body = decoded
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    pairs.append((key, value))
                elif isinstance(value, web.FileField):
                    files[key] = value.file.read()
        else:
            text = (await request.read()).decode("utf-8", errors="replace")
            pairs += parse_qsl(text, keep_blank_values=True)
    params = nest_pairs(pairs)
    params.update(json_body)
    return upper_keys(params), files


def envelope(portal: Portal, reply: Reply, time_block: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"result": reply.result}
    if reply.next is not None:
        body["next"] = reply.next
    if reply.total is not None:
        body["total"] = reply.total
    body["time"] = time_block
    return body


class RestFront:
    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", "/rest/{user:\\d+}/{code}/{method}", self.handle),
            web.route("*", "/rest/{method}", self.handle),
            web.route("*", "/oauth/token/", self.oauth),
            web.route("*", "/oauth/token", self.oauth),
        ]

    def authenticate(self, request: web.Request, params: Params) -> Caller:
        portal = self.portal
        if "code" in request.match_info:
            user_id, code = int(request.match_info["user"]), request.match_info["code"]
            if user_id != portal.webhook_user or not secrets.compare_digest(code, portal.webhook_code):
                raise errors.no_auth()
            if portal.directory.active_user(user_id) is None:
                raise errors.no_auth()
            return Caller(user_id, "webhook", None, webhook_code=code)
        token = params.pop("AUTH", None)
        if not isinstance(token, str) or not token:
            raise errors.no_auth()
        user_id = portal.tokens.user_for(token)
        return Caller(user_id, "oauth", portal.identity.app_id, access_token=token)

    async def _apply_faults(self, request: web.Request) -> web.Response | None:
        plan = self.portal.faults
        failure = pick_failure(plan, self.portal.clock())
        if failure is not None and failure.startswith("outage:"):
            self.portal.count("outage_refused")
            return self._refuse(request, failure.split(":", 1)[1])
        if plan.latency:
            await asyncio.sleep(plan.latency)
        if failure is not None:
            self.portal.count("faults_injected")
            return self._refuse(request, failure)
        return None

    def _refuse(self, request: web.Request, kind: str) -> web.Response:
        if kind == "close":
            if request.transport is not None:
                request.transport.close()
            raise _Dropped
        if kind == "502":
            return web.Response(status=502, text=_NGINX_502, content_type="text/html")
        error = injected_error(kind)
        return web.json_response(error.body(), status=error.status)

    async def oauth(self, request: web.Request) -> web.StreamResponse:
        try:
            refused = await self._apply_faults(request)
        except _Dropped:
            return web.Response(status=502)
        return refused or await token_endpoint(request, self.portal.tokens)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        portal = self.portal
        method = _method_name(request.match_info["method"])
        try:
            refused = await self._apply_faults(request)
        except _Dropped:
            portal.log_request(method, 0, 0, "connection closed")
            return web.Response(status=502)  # never reaches the client: the transport is closed
        if refused is not None:
            portal.log_request(method, refused.status, 0, "injected")
            return refused
        started = portal.wall()
        commands = 1
        try:
            if not portal.bucket.try_add():
                portal.count("query_limit_exceeded")
                raise errors.query_limit()
            params, files = await read_params(request)
            if method.lower() == "batch":
                commands = command_count(params)
            caller = self.authenticate(request, params)
            if method.lower() == "upload":
                token = str(params.get("TOKEN", ""))
                content = files.get("file") or files.get("FILE")
                result = portal.records.receive_upload(token, content)
                body = envelope(portal, Reply(result), portal.time_block(started, None))
            else:
                reply, time_block = await portal.invoke(caller, method, params)
                body = envelope(portal, reply, time_block)
        except RestError as exc:
            if exc.code == "expired_token":
                portal.count("expired_token")
            elif exc.status == 401:
                portal.count("auth_errors")
            portal.log_request(method, exc.status, commands, exc.code or exc.description)
            log.info(
                "sim.request_failed", method=method, status=exc.status, error=exc.code, description=exc.description
            )
            return web.json_response(exc.body(), status=exc.status)
        except Exception:  # a simulator bug must still answer like the portal's own internal error
            log.exception("sim.handler_crashed", method=method)
            portal.log_request(method, 500, commands, "INTERNAL_SERVER_ERROR")
            error = errors.internal_error()
            return web.json_response(error.body(), status=error.status)
        portal.log_request(method, 200, commands)
        log.debug("sim.request", method=method, commands=commands)
        return web.json_response(body)


def build_app(front: RestFront, control_routes: list[web.RouteDef]) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app.add_routes(control_routes)
    app.add_routes(front.routes())
    return app
