"""``Bitrix24Simulator``: the in-process API that tests, the demo and benchmarks code against."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from aiohttp import web

from bridge.sim.bitrix24.control import control_routes
from bridge.sim.bitrix24.errors import RestError
from bridge.sim.bitrix24.faults import FaultPlan, build_plan
from bridge.sim.bitrix24.phone import international, split_extension
from bridge.sim.bitrix24.portal import Portal, PortalConfig
from bridge.sim.bitrix24.seed import load_seed
from bridge.sim.bitrix24.server import RestFront, build_app

log = structlog.get_logger(__name__)


class Bitrix24Simulator:
    """A Bitrix24 portal over real HTTP. ``clock`` drives the bucket, tokens and operating budget;
    ``wall_clock`` drives dates (CALL_START_DATE, the 30-minute dedup window, ``time`` blocks)."""

    def __init__(
        self,
        plan: str = "standard",
        webhook: str = "1/simwebhookcode",
        seed: dict[str, Any] | Path | str | None = None,
        token_lifetime: float = 3600.0,
        rate: float | None = None,
        burst: float | None = None,
        client_id: str = "local.sim",
        client_secret: str = "simsecret",
        application_token: str = "simapptoken",
        webhook_allowed_for_telephony: bool = True,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        operating_limit: float | None = None,
        operating_cost: float | Mapping[str, float] = 0.0,
        empty_error_code_fraction: float = 0.0,
        random_seed: int | None = None,
    ) -> None:
        config = PortalConfig(
            plan=plan,
            webhook=webhook,
            token_lifetime=token_lifetime,
            rate=rate,
            burst=burst,
            client_id=client_id,
            client_secret=client_secret,
            application_token=application_token,
            webhook_allowed_for_telephony=webhook_allowed_for_telephony,
            operating_limit=operating_limit,
            operating_cost=operating_cost,
            empty_error_code_fraction=empty_error_code_fraction,
        )
        self.core = Portal(config, load_seed(seed), clock, wall_clock, random.Random(random_seed))
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = build_app(RestFront(self.core), control_routes(self))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        self.core.identity.base_url = self.url
        log.info("sim.started", url=self.url, plan=self.core.config.plan)

    async def stop(self) -> None:
        await self.core.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("sim.stopped", url=self.url)

    async def __aenter__(self) -> Bitrix24Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/rest/{self.core.webhook_user}/{self.core.webhook_code}/"

    @property
    def oauth_url(self) -> str:
        return f"{self.url}/oauth/token/"

    @property
    def portal(self) -> str:
        return self.url.split("://", 1)[-1]

    def issue_tokens(self, user_id: int = 1) -> dict[str, Any]:
        return self.core.tokens.issue(user_id)

    def issue_auth_code(self, user_id: int = 1) -> str:
        """An authorization code (lives 30 s) for the ``authorization_code`` grant."""
        return self.core.tokens.new_code(user_id)

    async def install_app(self, url: str, user_id: int = 1) -> int:
        """The administrator (``user_id``) saves the local application with ``url`` as its install path: Bitrix24
        posts ONAPPINSTALL there. Returns the handler's HTTP status."""
        if self.core.directory.active_user(user_id) is None:
            raise ValueError(f"user {user_id} is not an active user")
        return await self.core.events.install(url, user_id)

    def add_outbound_webhook(self, handler: str, events: list[str]) -> str:
        """An outbound webhook posting ``events`` to ``handler``; returns its application token."""
        return self.core.events.add_outbound_webhook(handler, events)

    def expire_access_tokens(self) -> None:
        self.core.tokens.expire_access_tokens()

    def set_fault(
        self,
        outage_seconds: float | None = None,
        error_rate: float = 0.0,
        error_kinds: Iterable[str] = ("500", "503", "429"),
        latency: float = 0.0,
        seed: int | None = None,
        outage_mode: str = "close",
    ) -> None:
        """Outage: every REST/OAuth request has its connection closed (or, with ``outage_mode="502"``,
        gets nginx's HTML 502) until it ends. ``error_rate`` of the others get one of ``error_kinds``
        ("500", "502", "503", "429", "401", "close"). ``latency`` delays every request."""
        self.core.faults = build_plan(
            self.core.clock(), outage_seconds, error_rate, error_kinds, latency, seed, outage_mode
        )
        log.info("sim.fault_set", outage_seconds=outage_seconds, error_rate=error_rate, latency=latency)

    def set_rights(self, user_id: int, *, admin: bool | None = None, statistics: str | None = None) -> None:
        """Make ``user_id`` a portal admin or not, and set their "Call statistics — View" level (``none``,
        ``own``, ``department``, ``all``; admins see every call whatever it is)."""
        self.core.directory.set_rights(user_id, admin=admin, statistics=statistics)
        log.info("sim.rights_set", user_id=user_id, admin=admin, statistics=statistics)

    def set_scopes(self, scopes: set[str] | None) -> None:
        """Grant the app only these OAuth scopes (None: every scope), as a site that unticked some would."""
        self.core.config.scopes = None if scopes is None else frozenset(scopes)
        log.info("sim.scopes_set", scopes=sorted(scopes) if scopes is not None else None)

    def deny_scopes(self, *scopes: str) -> None:
        """The app user was not given these scopes (e.g. ``user``, ``user_brief``, ``user_basic``): their methods
        answer 403 ``insufficient_scope`` from now on; ``deny_scopes()`` gives them all back."""
        self.core.config.denied_scopes = frozenset(scopes)
        log.info("sim.scopes_denied", scopes=sorted(scopes))

    def set_presence(self, user_id: int, idle_minutes: float) -> None:
        """``user_id`` was last active in Bitrix24 ``idle_minutes`` ago (``IS_ONLINE`` N after 24 minutes)."""
        self.core.directory.set_presence(user_id, idle_minutes)
        log.info("sim.presence_set", user_id=user_id, idle_minutes=idle_minutes)

    def clear_faults(self) -> None:
        self.core.faults = FaultPlan()

    def reset(self) -> None:
        self.core.reset()

    def record_content(self, call_id: str) -> bytes | None:
        call = self.core.calls.calls.get(call_id)
        return None if call is None or call.record is None else call.record.content

    def state(self) -> dict[str, Any]:
        core = self.core
        calls = core.calls.state()
        return {
            "portal": {"url": self.url, "plan": core.config.plan, "member_id": core.identity.member_id},
            "calls": calls["calls"],
            "cards": calls["cards"],
            "chats": list(core.calls.chats),
            "requests": list(core.requests),
            "counters": {"requests": 0, "commands": 0, "query_limit_exceeded": 0, **core.counters},
            "lines": core.lines.state(),
            "tasks": list(core.workspace.tasks),
            "notifications": list(core.workspace.notifications),
            "leads": core.crm.created_leads(),
            "events": core.events.state(),
            "bucket": {"level": core.bucket.level, "capacity": core.bucket.capacity, "rate": core.bucket.rate},
            "faults": core.faults.describe(core.clock()),
        }

    async def click_to_call(
        self,
        user_id: int,
        phone: str,
        line: str | None = None,
        crm_entity_type: str = "CONTACT",
        crm_entity_id: int = 1,
        call_list_id: int | None = None,
    ) -> str:
        """A user clicks a number in CRM: Bitrix24 registers a TYPE=1 call (CRM_CREATE) itself, then sends
        ONEXTERNALCALLSTART with the number as the CRM holds it (``phone``: "8 (926) 000-00-03", "926-000-00-03
        доб. 12"), its E.164 form when the portal's parser finds it valid (else the same text) and the part after
        ``;``/``#`` as EXTENSION (helper.php ``startCall``). Returns the CALL_ID."""
        core = self.core
        user = core.directory.active_user(user_id)
        if user is None:
            raise ValueError(f"user {user_id} is not an active user")
        app_id = core.identity.app_id
        if line is None:
            lines = core.lines.for_app(app_id)
            line = lines[0].number if lines else ""
        entity_type = crm_entity_type.upper()
        explicit = (entity_type, crm_entity_id) if crm_entity_id > 0 and entity_type else None
        try:
            result = core.telephony.register_call(
                app_id, user, phone, 1, line=line, crm_create=True, explicit=explicit, call_list_id=call_list_id
            )
        except RestError as exc:
            raise ValueError(exc.description) from exc
        call_id: str = result["CALL_ID"]
        data = {
            "PHONE_NUMBER": phone,
            "PHONE_NUMBER_INTERNATIONAL": international(phone),
            "EXTENSION": split_extension(phone)[1],
            "USER_ID": str(user_id),
            "CALL_LIST_ID": str(call_list_id or 0),
            "LINE_NUMBER": line,
            "IS_MOBILE": "0",
            "CALL_ID": call_id,
            "CRM_ENTITY_TYPE": result["CRM_ENTITY_TYPE"],
            "CRM_ENTITY_ID": "" if result["CRM_ENTITY_ID"] is None else str(result["CRM_ENTITY_ID"]),
        }
        log.info("sim.click_to_call", user_id=user_id, b24_call_id=call_id)
        await core.events.fire("ONEXTERNALCALLSTART", data, user_id, key=call_id)
        return call_id

    async def click_to_call_entity(self, user_id: int, crm_entity_type: str, crm_entity_id: int, index: int = 0) -> str:
        """A user clicks the ``index``-th phone of a CRM record, exactly as it is stored there. Returns the CALL_ID."""
        entity = self.core.crm.get(crm_entity_type.upper(), crm_entity_id)
        if entity is None or index >= len(entity.phones):
            raise ValueError(f"{crm_entity_type} {crm_entity_id} has no phone #{index}")
        return await self.click_to_call(user_id, entity.phones[index], None, entity.kind, entity.id)

    async def callback_request(self, phone: str, text: str, line: str | None = None) -> None:
        """A visitor fills the CRM callback form: ONEXTERNALCALLBACKSTART."""
        core = self.core
        found = core.crm.search(phone)
        entity = found[0] if found else core.crm.create_lead(phone, 1, None, True)
        if line is None:
            lines = core.lines.for_app(core.identity.app_id)
            line = lines[0].number if lines else ""
        data = {
            "PHONE_NUMBER": phone,
            "TEXT": text,
            "VOICE": "ruinternalfemale",
            "CRM_ENTITY_TYPE": entity.kind,
            "CRM_ENTITY_ID": str(entity.id),
            "LINE_NUMBER": line,
        }
        log.info("sim.callback_request", crm_entity_type=entity.kind, crm_entity_id=entity.id)
        await core.events.fire("ONEXTERNALCALLBACKSTART", data, 1, key=f"callback:{phone}")
