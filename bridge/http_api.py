"""The daemon's HTTP surface: ``/healthz``, ``/metrics`` and the Bitrix24 event handler ``/b24/events``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from bridge.crm.inbound import CallbackRequest, ClickToCall, EventGate, Rejected, nest_form
from bridge.crm.install import APP_INSTALL, InstallAnswer
from bridge.metrics import CONTENT_TYPE, Metrics

log = structlog.get_logger(__name__)

EVENTS_PATH = "/b24/events"
MAX_EVENT_BYTES = 64 * 1024
NO_APPLICATION = "webhook mode: no local application is configured to install"


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


HealthProbe = Callable[[], Mapping[str, Health]]
EventSink = Callable[[ClickToCall | CallbackRequest], Awaitable[None]]
InstallSink = Callable[[Mapping[str, Any]], Awaitable[InstallAnswer]]


def build_app(
    *,
    health: HealthProbe,
    metrics: Metrics,
    gate: EventGate,
    on_event: EventSink,
    on_install: InstallSink | None = None,
) -> web.Application:
    """``on_install`` takes ``ONAPPINSTALL`` posts (OAuth mode); without it they are refused."""
    app = web.Application(client_max_size=MAX_EVENT_BYTES)

    async def healthz(_request: web.Request) -> web.Response:
        parts = health()
        body = {name: {"ok": h.ok, "detail": h.detail} for name, h in parts.items()}
        ok = all(h.ok for h in parts.values())
        reasons = [f"{name}: {h.detail}" for name, h in parts.items() if not h.ok]
        return web.json_response({"ok": ok, "components": body, "reasons": reasons}, status=200 if ok else 503)

    async def metrics_view(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def events(request: web.Request) -> web.Response:
        try:
            form = await request.post()
        except (ValueError, LookupError, web.HTTPRequestEntityTooLarge) as exc:  # LookupError: unknown charset
            return _reject(metrics, f"unreadable form: {type(exc).__name__}", 400, request)
        payload = nest_form({k: v for k, v in form.items() if isinstance(v, str)})
        if str(payload.get("event", "")).upper() == APP_INSTALL:
            answer = await on_install(payload) if on_install else InstallAnswer(403, NO_APPLICATION)
            if on_install is None:
                log.warning("crm.install_rejected", reason=answer.reason, status=answer.status, peer=request.remote)
            body = {"result": True} if answer.status == 200 else {"error": answer.reason}
            return web.json_response(body, status=answer.status)
        parsed = gate.accept(payload)
        if isinstance(parsed, Rejected):
            return _reject(metrics, parsed.reason, parsed.status, request)
        metrics.clicktocall.labels(result="accepted").inc()
        await on_event(parsed)
        return web.json_response({"result": True})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_post(EVENTS_PATH, events)
    return app


def _reject(metrics: Metrics, reason: str, status: int, request: web.Request) -> web.Response:
    metrics.clicktocall.labels(result="rejected").inc()
    log.warning("clicktocall.rejected", reason=reason, status=status, peer=request.remote)
    return web.json_response({"error": reason}, status=status)
