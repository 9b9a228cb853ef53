"""Event bindings (``event.bind``/``unbind``/``get``, application only), outbound webhooks (made by an administrator
in the portal's UI), the application's install (``ONAPPINSTALL``) and delivery as form-encoded POSTs."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from bridge.sim.bitrix24 import errors
from bridge.sim.bitrix24.context import Caller, MethodSpec, Reply
from bridge.sim.bitrix24.directory import Directory
from bridge.sim.bitrix24.errors import RestError
from bridge.sim.bitrix24.oauth import Identity, TokenStore
from bridge.sim.bitrix24.offline import OfflineQueue
from bridge.sim.bitrix24.params import Params, to_int, to_str

log = structlog.get_logger(__name__)

KNOWN_EVENTS = frozenset(
    {
        "ONEXTERNALCALLSTART",
        "ONEXTERNALCALLBACKSTART",
        "ONVOXIMPLANTCALLINIT",
        "ONVOXIMPLANTCALLSTART",
        "ONVOXIMPLANTCALLEND",
        "ONAPPINSTALL",
        "ONAPPUNINSTALL",
        "ONAPPUPDATE",
        "ONOFFLINEEVENT",
        "ONCRMLEADADD",
        "ONCRMLEADUPDATE",
        "ONCRMCONTACTADD",
        "ONCRMCONTACTUPDATE",
        "ONCRMDEALADD",
        "ONCRMDEALUPDATE",
        "ONUSERADD",
        "ONTASKADD",
    }
)
DELIVERY_TIMEOUT = 5.0


INSTALL_DATA = {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "en"}


@dataclass
class Binding:
    id: int
    event: str
    handler: str
    auth_type: int
    offline: bool
    app_id: int | None
    via_webhook: bool
    """An outbound webhook's (``app_id`` None): its posts carry no tokens, only its own ``application_token``."""
    connector: str = ""
    token: str = ""
    """The outbound webhook's application token (its form shows it)."""

    def row(self) -> dict[str, Any]:
        """As ``event.get`` lists it (rest ``lib/api/event.php`` ``eventGet``)."""
        if self.offline:
            return {"event": self.event, "connector_id": self.connector, "offline": 1}
        return {"event": self.event, "handler": self.handler, "auth_type": str(self.auth_type), "offline": 0}


class EventHub:
    def __init__(
        self,
        identity: Identity,
        tokens: TokenStore,
        directory: Directory,
        wall_clock: Callable[[], float],
        session: Callable[[], Awaitable[aiohttp.ClientSession]],
        count: Callable[[str], None],
    ) -> None:
        self._identity = identity
        self._tokens = tokens
        self._directory = directory
        self._wall = wall_clock
        self._session = session
        self._count = count
        self.bindings: list[Binding] = []
        self.offline = OfflineQueue(wall_clock, count)
        self.deliveries: list[dict[str, Any]] = []
        self.installs: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._background: set[asyncio.Task[None]] = set()

    def reset(self) -> None:
        self.offline.records.clear()
        self.deliveries.clear()

    def state(self) -> dict[str, Any]:
        return {
            "bindings": [b.row() | {"id": b.id, "via_webhook": b.via_webhook} for b in self.bindings],
            "installs": list(self.installs),
            "deliveries": list(self.deliveries),
            "offline_queue": self.offline.state(),
        }

    async def fire(self, event: str, data: dict[str, str], user_id: int, key: str) -> None:
        """Deliver to every online binding (once, no retries) and queue once per app for offline ones."""
        online = [b for b in self.bindings if b.event == event and not b.offline]
        queued_apps: set[int | None] = set()
        for binding in self.bindings:
            if binding.event == event and binding.offline and binding.app_id not in queued_apps:
                queued_apps.add(binding.app_id)
                self.offline.enqueue(binding.app_id, event, data, key)
        await asyncio.gather(*(self._deliver(binding, data, user_id) for binding in online))

    def fire_later(self, event: str, data: dict[str, str], user_id: int, key: str) -> None:
        task = asyncio.get_running_loop().create_task(self.fire(event, data, user_id, key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background deliveries (used on stop)."""
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def add_outbound_webhook(self, handler: str, events: list[str]) -> str:
        """What an administrator does in *Developer resources > Outbound webhook*: one handler for ``events``;
        returns the application token the form shows."""
        names = [event.strip().upper() for event in events]
        if not handler.lower().startswith(("http://", "https://")) or not names:
            raise ValueError("an outbound webhook needs an http(s) handler and at least one event")
        if unknown := [name for name in names if name not in KNOWN_EVENTS]:
            raise ValueError(f"unknown event {unknown[0]}")
        token = secrets.token_hex(16)
        for name in names:
            self.bindings.append(Binding(next(self._ids), name, handler, 0, False, None, True, token=token))
        log.info("sim.outbound_webhook_added", handler=handler, events=names)
        return token

    async def install(self, url: str, user_id: int) -> int:
        """An administrator saves the local application with ``url`` as its install path: the application's event
        handlers are dropped (re-installing removes them), a reinstall issues a new application token, and
        ONAPPINSTALL is posted to ``url`` with the installing user's token pair. Returns the HTTP status."""
        ident = self._identity
        self.bindings = [b for b in self.bindings if b.app_id != ident.app_id]
        if self.installs:
            ident.application_token = secrets.token_hex(16)
        pair = self._tokens.issue(user_id)
        fields = {
            "access_token": pair["access_token"], "expires": str(pair["expires"]),
            "expires_in": str(pair["expires_in"]), "scope": pair["scope"], "user_id": str(user_id),
            "refresh_token": pair["refresh_token"], "status": "L", **self._portal_fields(),
        }  # fmt: skip
        form = [("event", "ONAPPINSTALL"), *((f"data[{k}]", v) for k, v in INSTALL_DATA.items())]
        form += [("ts", str(int(self._wall()))), *((f"auth[{k}]", v) for k, v in fields.items())]
        status = 0
        try:
            session = await self._session()
            async with session.post(url, data=form, timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT)) as answer:
                status = answer.status
                await answer.read()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("sim.install_failed", url=url, error=type(exc).__name__)
        self.installs.append({"url": url, "user_id": user_id, "status": status, "at": self._wall()})
        log.info("sim.app_installed", url=url, status=status)
        return status

    def _portal_fields(self) -> dict[str, str]:
        ident = self._identity
        return {
            "domain": ident.domain,
            "client_endpoint": ident.client_endpoint,
            "server_endpoint": f"{ident.base_url}/rest/",
            "member_id": ident.member_id,
            "application_token": ident.application_token,
        }

    def _auth_fields(self, binding: Binding, user_id: int) -> dict[str, str]:
        fields: dict[str, str] = {}
        if not binding.via_webhook:
            pair = self._tokens.issue(binding.auth_type or user_id)
            fields.update(
                access_token=pair["access_token"],
                expires_in=str(pair["expires_in"]),
                scope=pair["scope"],
                user_id=str(pair["user_id"]),
                status="L",
            )
        fields.update(self._portal_fields())
        if binding.via_webhook:
            fields["application_token"] = binding.token
        return fields

    async def _deliver(self, binding: Binding, data: dict[str, str], user_id: int) -> None:
        pairs = [("event", binding.event), ("event_handler_id", str(binding.id))]
        pairs += [(f"data[{name}]", value) for name, value in data.items()]
        pairs.append(("ts", str(int(self._wall()))))
        pairs += [(f"auth[{name}]", value) for name, value in self._auth_fields(binding, user_id).items()]
        entry: dict[str, Any] = {
            "event": binding.event,
            "handler": binding.handler,
            "handler_id": binding.id,
            "at": self._wall(),
            "status": None,
        }
        try:
            session = await self._session()
            timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT)
            async with session.post(binding.handler, data=pairs, timeout=timeout) as response:
                entry["status"] = response.status
                await response.read()
            entry["ok"] = response.status == 200
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            entry.update(ok=False, error=type(exc).__name__)
        self.deliveries.append(entry)
        if entry["ok"]:
            self._count("events_delivered")
            log.info("sim.event_delivered", event_name=binding.event, handler=binding.handler)
        else:
            self._count("events_failed")  # the queue server logs and never resends
            log.warning(
                "sim.event_failed",
                event_name=binding.event,
                handler=binding.handler,
                status=entry["status"],
                error=entry.get("error"),
            )

    def methods(self) -> list[MethodSpec]:
        return [
            MethodSpec("event.bind", self._bind, oauth_only=True),
            MethodSpec("event.unbind", self._unbind, oauth_only=True),
            MethodSpec("event.get", self._get, oauth_only=True),
            *self.offline.methods(),
        ]

    def _mine(self, caller: Caller) -> list[Binding]:
        return [b for b in self.bindings if b.app_id == caller.app_id]

    async def _bind(self, caller: Caller, params: Params) -> Reply:
        event = to_str(params.get("EVENT")).strip().upper()
        if event not in KNOWN_EVENTS:
            raise RestError("Event not found", "ERROR_EVENT_NOT_FOUND", 400)
        offline = to_str(params.get("EVENT_TYPE")).lower() == "offline"
        handler = to_str(params.get("HANDLER")).strip()
        auth_type = to_int(params.get("AUTH_TYPE"), 0)
        user = self._directory.users.get(caller.user_id)
        is_admin = user is not None and user.admin
        if (offline or auth_type not in (0, caller.user_id)) and not is_admin:
            raise errors.access_denied()
        if not offline and not handler.lower().startswith(("http://", "https://")):
            raise RestError("Argument 'HANDLER' is null or empty", "ERROR_ARGUMENT", 400)
        handler = "" if offline else handler
        for b in self._mine(caller):
            if (b.event, b.handler, b.auth_type, b.offline) == (event, handler, auth_type, offline):
                raise RestError("Handler already binded", "", 400)
        binding = Binding(
            next(self._ids),
            event,
            handler,
            auth_type,
            offline,
            caller.app_id,
            False,
            to_str(params.get("AUTH_CONNECTOR")),
        )
        self.bindings.append(binding)
        log.info("sim.event_bound", event_name=event, handler=handler, offline=offline)
        return Reply(True)

    async def _unbind(self, caller: Caller, params: Params) -> Reply:
        event = to_str(params.get("EVENT")).strip().upper()
        if not event:
            raise RestError("Argument 'EVENT' is null or empty", "ERROR_ARGUMENT", 400)
        handler = to_str(params.get("HANDLER")).strip()
        offline = to_str(params.get("EVENT_TYPE")).lower() == "offline"
        gone = [
            b
            for b in self._mine(caller)
            if b.event == event
            and b.offline == offline
            and (not handler or b.handler == handler)
            and ("AUTH_TYPE" not in params or b.auth_type == to_int(params["AUTH_TYPE"], 0))
        ]
        self.bindings = [b for b in self.bindings if b not in gone]
        return Reply({"count": len(gone)})

    async def _get(self, caller: Caller, params: Params) -> Reply:
        return Reply([b.row() for b in self._mine(caller)])
