"""``/_sim/*``: inspection and control for tests and the demo. No auth, never counted by the bucket."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from bridge.sim.bitrix24.faults import plan_from_json

if TYPE_CHECKING:
    from bridge.sim.bitrix24.simulator import Bitrix24Simulator

log = structlog.get_logger(__name__)

_JsonHandler = Callable[[dict[str, Any]], Awaitable[Any]]


def _error(message: str, status: int = 400) -> web.Response:
    log.warning("sim.control_rejected", reason=message)
    return web.json_response({"error": message}, status=status)


def _json_route(handler: _JsonHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def route(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error("body must be JSON")
        if not isinstance(body, dict):
            return _error("body must be a JSON object")
        try:
            return web.json_response(await handler(body))
        except (ValueError, TypeError, KeyError) as exc:
            return _error(f"{type(exc).__name__}: {exc}")

    return route


def control_routes(sim: Bitrix24Simulator) -> list[web.RouteDef]:
    async def state(request: web.Request) -> web.StreamResponse:
        return web.json_response(sim.state())

    async def reset(body: dict[str, Any]) -> Any:
        sim.reset()
        return {"result": True}

    async def fault(body: dict[str, Any]) -> Any:
        sim.core.faults = plan_from_json(body, sim.core.clock())
        log.info("sim.fault_set", **body)
        return {"result": sim.core.faults.describe(sim.core.clock())}

    async def click_to_call(body: dict[str, Any]) -> Any:
        call_id = await sim.click_to_call(
            int(body["user_id"]),
            str(body["phone"]),
            line=body.get("line"),
            crm_entity_type=str(body.get("crm_entity_type", "CONTACT")),
            crm_entity_id=int(body.get("crm_entity_id", 1)),
            call_list_id=None if body.get("call_list_id") is None else int(body["call_list_id"]),
        )
        return {"CALL_ID": call_id}

    async def callback_request(body: dict[str, Any]) -> Any:
        await sim.callback_request(str(body["phone"]), str(body.get("text", "")), line=body.get("line"))
        return {"result": True}

    async def install_app(body: dict[str, Any]) -> Any:
        return {"status": await sim.install_app(str(body["url"]), int(body.get("user_id", 1)))}

    async def outbound_webhook(body: dict[str, Any]) -> Any:
        events = body.get("events", ["ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"])
        if not isinstance(events, list):
            raise TypeError("events must be a list of event names")
        return {"application_token": sim.add_outbound_webhook(str(body["handler"]), [str(e) for e in events])}

    async def tokens(body: dict[str, Any]) -> Any:
        return sim.issue_tokens(int(body.get("user_id", 1)))

    async def expire_tokens(body: dict[str, Any]) -> Any:
        sim.expire_access_tokens()
        return {"result": True}

    async def rights(body: dict[str, Any]) -> Any:
        admin = body.get("admin")
        statistics = body.get("statistics")
        sim.set_rights(
            int(body["user_id"]),
            admin=None if admin is None else bool(admin),
            statistics=None if statistics is None else str(statistics),
        )
        return {"result": True}

    async def record(request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        content = sim.record_content(call_id)
        if content is None:
            return _error(f"no record for {call_id}", 404)
        name = sim.core.calls.calls[call_id].record.name  # type: ignore[union-attr]
        kind = "audio/mpeg" if name.lower().endswith(".mp3") else "audio/wav"
        return web.Response(body=content, content_type=kind)

    return [
        web.get("/_sim/state", state),
        web.post("/_sim/reset", _json_route(reset)),
        web.post("/_sim/fault", _json_route(fault)),
        web.post("/_sim/click_to_call", _json_route(click_to_call)),
        web.post("/_sim/callback_request", _json_route(callback_request)),
        web.post("/_sim/install_app", _json_route(install_app)),
        web.post("/_sim/outbound_webhook", _json_route(outbound_webhook)),
        web.post("/_sim/tokens", _json_route(tokens)),
        web.post("/_sim/expire_tokens", _json_route(expire_tokens)),
        web.post("/_sim/rights", _json_route(rights)),
        web.get("/_sim/records/{call_id}", record),
    ]
