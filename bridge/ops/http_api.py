"""The daemon's HTTP surface: health (``/livez``, ``/readyz``, ``/healthz``), ``/metrics``, the status page
(``bridge.ops.status``) and the Bitrix24 event handler ``/b24/events`` (on the main listener, or on its own).

* ``/livez``: the process works (its vital tasks run, its event queue moves). Only this one should make an
  orchestrator restart the daemon: a PBX reconnect or a Bitrix24 backlog never fails it.
* ``/readyz``: the links are up (ARI, AMI, the journal): calls can be taken now.
* ``/healthz``: every component with its detail, 503 with the reasons when any is not ok (for people and alerts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from bridge.crm.inbound import CallbackRequest, ClickToCall, EventGate, Rejected, nest_form
from bridge.crm.install import APP_INSTALL, InstallAnswer
from bridge.ops.metrics import CONTENT_TYPE, Metrics

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


@dataclass(frozen=True)
class Probes:
    """The three health answers, each a set of named components."""

    live: HealthProbe
    ready: HealthProbe
    health: HealthProbe


def health_answer(parts: Mapping[str, Health]) -> web.Response:
    """200 when every component is ok, else 503 with the reasons."""
    body = {name: {"ok": h.ok, "detail": h.detail} for name, h in parts.items()}
    ok = all(h.ok for h in parts.values())
    reasons = [f"{name}: {h.detail}" for name, h in parts.items() if not h.ok]
    return web.json_response({"ok": ok, "components": body, "reasons": reasons}, status=200 if ok else 503)


def build_app(
    *,
    probes: Probes,
    metrics: Metrics,
    events: list[web.RouteDef],
) -> web.Application:
    """The main listener's application, with ``events`` (:func:`event_routes`; none when the handler has a listener
    of its own, ``http.events_listen``)."""
    app = web.Application(client_max_size=MAX_EVENT_BYTES)

    def answering(probe: HealthProbe) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def view(_request: web.Request) -> web.Response:
            return health_answer(probe())

        return view

    async def metrics_view(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/livez", answering(probes.live))
    app.router.add_get("/readyz", answering(probes.ready))
    app.router.add_get("/healthz", answering(probes.health))
    app.router.add_get("/metrics", metrics_view)
    app.add_routes(events)
    return app


def events_app(routes: list[web.RouteDef]) -> web.Application:
    """The listener of ``http.events_listen``: ``/b24/events`` and nothing else."""
    app = web.Application(client_max_size=MAX_EVENT_BYTES)
    app.add_routes(routes)
    return app


def event_routes(
    *,
    metrics: Metrics,
    gate: EventGate,
    on_event: EventSink,
    on_install: InstallSink | None = None,
) -> list[web.RouteDef]:
    """``/b24/events``. ``on_install`` takes ``ONAPPINSTALL`` posts (OAuth mode); without it they are refused."""

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

    return [web.post(EVENTS_PATH, events)]


def _reject(metrics: Metrics, reason: str, status: int, request: web.Request) -> web.Response:
    metrics.clicktocall.labels(result="rejected").inc()
    log.warning("clicktocall.rejected", reason=reason, status=status, peer=request.remote)
    return web.json_response({"error": reason}, status=status)
