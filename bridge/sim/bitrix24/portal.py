"""One simulated portal: all state, the method table, and method invocation with its limits."""

from __future__ import annotations

import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp

from bridge.sim.bitrix24 import errors
from bridge.sim.bitrix24.batch import run_batch
from bridge.sim.bitrix24.bucket import PLAN_LIMITS, LeakyBucket, OperatingBudget
from bridge.sim.bitrix24.calls import APP_NAME, CallRegistry
from bridge.sim.bitrix24.context import Caller, MethodSpec, Reply
from bridge.sim.bitrix24.crm import Crm
from bridge.sim.bitrix24.directory import Directory
from bridge.sim.bitrix24.events import EventHub
from bridge.sim.bitrix24.faults import FaultPlan
from bridge.sim.bitrix24.lines import LineRegistry
from bridge.sim.bitrix24.oauth import SCOPE, Identity, TokenStore
from bridge.sim.bitrix24.params import Params
from bridge.sim.bitrix24.records import Records
from bridge.sim.bitrix24.seed import Seed
from bridge.sim.bitrix24.statistic import Statistic
from bridge.sim.bitrix24.telephony import Telephony
from bridge.sim.bitrix24.timefmt import iso
from bridge.sim.bitrix24.workspace import Workspace

Clock = Callable[[], float]
MAX_LOGGED_REQUESTS = 10_000


SCOPE_OF = {"crm": "crm", "im": "im", "tasks": "task", "timeman": "timeman", "calendar": "calendar"}
"""A method's first name part -> the OAuth scope it needs (those a site may leave out of the app's)."""


@dataclass
class PortalConfig:
    plan: str = "standard"
    webhook: str = "1/simwebhookcode"
    token_lifetime: float = 3600.0
    rate: float | None = None
    burst: float | None = None
    client_id: str = "local.sim"
    client_secret: str = "simsecret"
    application_token: str = "simapptoken"
    webhook_allowed_for_telephony: bool = True
    operating_limit: float | None = None
    operating_cost: float | Mapping[str, float] = 0.0
    empty_error_code_fraction: float = 0.0
    scopes: frozenset[str] | None = None
    """The app's granted scopes (None: all): a method of another scope gets ``insufficient_scope``."""
    denied_scopes: frozenset[str] = frozenset()
    """Scopes the app (and the inbound webhook) were not given: their methods answer ``insufficient_scope``."""

    def webhook_parts(self) -> tuple[int, str]:
        """``"1/code"`` -> (1, "code"); ValueError with a readable message otherwise."""
        user, _, code = self.webhook.strip("/").partition("/")
        if not user.isdigit() or not code or "/" in code:
            raise ValueError("webhook must look like USER_ID/CODE, e.g. 1/simwebhookcode")
        return int(user), code


class Portal:
    def __init__(
        self, config: PortalConfig, seed: Seed, clock: Clock, wall_clock: Clock, rng: random.Random | None = None
    ) -> None:
        if config.plan not in PLAN_LIMITS:
            raise ValueError(f"plan must be one of {sorted(PLAN_LIMITS)}")
        self.config = config
        self.webhook_user, self.webhook_code = config.webhook_parts()
        self.clock, self.wall = clock, wall_clock
        rate, burst = PLAN_LIMITS[config.plan]
        self.bucket = LeakyBucket(config.rate or rate, config.burst or burst, clock)
        self.budget = OperatingBudget(config.operating_limit, clock)
        self.faults = FaultPlan()
        self.counters: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None
        self.identity = Identity(
            secrets.token_hex(16), config.application_token, config.client_id, config.client_secret
        )
        self.tokens = TokenStore(self.identity, clock, wall_clock, config.token_lifetime)
        self.directory = Directory(seed, wall_clock)
        self.crm = Crm(seed, wall_clock())
        self.crm.directory = self.directory
        self.lines = LineRegistry()
        self.calls = CallRegistry(self.crm, self.lines, wall_clock)
        self.events = EventHub(self.identity, self.tokens, self.directory, wall_clock, self.session, self.count)
        self.telephony = Telephony(
            self.directory,
            self.crm,
            self.calls,
            self.events,
            wall_clock,
            rng or random.Random(),
            config.empty_error_code_fraction,
        )
        self.records = Records(self.calls, self.identity, self.session, self.count)
        self.workspace = Workspace(self.directory, wall_clock)
        specs = [
            *self.directory.methods(),
            *self.crm.methods(),
            *self.lines.methods(),
            *self.telephony.methods(),
            *Statistic(self.calls, self.directory).methods(),
            *self.records.methods(),
            *self.events.methods(),
            *self.workspace.methods(),
            MethodSpec("app.info", self._app_info),
            MethodSpec("scope", self._scope),
            MethodSpec("batch", partial(run_batch, self.invoke)),
        ]
        self.methods: dict[str, MethodSpec] = {spec.name.lower(): spec for spec in specs}

    def count(self, name: str) -> None:
        self.counters[name] += 1

    async def session(self) -> aiohttp.ClientSession:
        """The client session for event delivery and RECORD_URL downloads (created on first use)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        await self.events.drain()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def log_request(self, method: str, status: int, commands: int, error: str | None = None) -> None:
        entry: dict[str, Any] = {"method": method, "http_status": status, "commands": commands, "at": self.wall()}
        if error is not None:
            entry["error"] = error
        self.requests.append(entry)
        del self.requests[:-MAX_LOGGED_REQUESTS]
        self.count("requests")
        if status >= 400:
            self.count("errors")

    def reset(self) -> None:
        """Forget calls, cards, requests and what calls created; keep seed, lines, bindings and tokens."""
        self.calls.reset()
        self.crm.reset()
        self.workspace.reset()
        self.events.reset()
        self.records.uploads.clear()
        self.requests.clear()
        self.counters.clear()
        self.bucket.reset()
        self.budget.reset()

    def _cost(self, method: str) -> float:
        cost = self.config.operating_cost
        if isinstance(cost, Mapping):
            return float(cost.get(method, cost.get(method.lower(), 0.0)))
        return float(cost)

    def time_block(self, started: float, method: str | None) -> dict[str, Any]:
        finished = self.wall()
        operating = self.budget.used(method) if method else 0.0
        reset_in = self.budget.seconds_to_reset(method) if method else 600.0
        return {
            "start": started,
            "finish": finished,
            "duration": finished - started,
            "processing": finished - started,
            "date_start": iso(started),
            "date_finish": iso(finished),
            "operating_reset_at": int(finished + reset_in),
            "operating": operating,
        }

    async def invoke(self, caller: Caller, method: str, params: Params) -> tuple[Reply, dict[str, Any]]:
        """Run one method (also one batch command): auth-type rule, operating budget, handler."""
        spec = self.methods.get(method.lower())
        if spec is None:
            raise errors.method_not_found()
        if caller.auth_kind == "webhook" and (
            spec.oauth_only or (spec.app_only and not self.config.webhook_allowed_for_telephony)
        ):
            raise errors.wrong_auth_type()
        scope = SCOPE_OF.get(spec.name.split(".")[0])
        if self.config.scopes is not None and scope is not None and scope not in self.config.scopes:
            raise errors.RestError(
                "The request requires higher privileges than provided by the access token", "insufficient_scope", 401
            )
        if spec.scopes and all(scope in self.config.denied_scopes for scope in spec.scopes):
            raise errors.insufficient_scope()
        is_batch = spec.name == "batch"
        if not is_batch:
            self.count("commands")
            if self.budget.blocked(spec.name):
                self.count("operation_time_limit")
                raise errors.operation_time_limit()
        started_wall, started = self.wall(), time.perf_counter()
        try:
            reply = await spec.handler(caller, params)
        finally:
            if not is_batch:
                self.budget.charge(spec.name, time.perf_counter() - started + self._cost(spec.name))
        return reply, self.time_block(started_wall, None if is_batch else spec.name)

    async def _scope(self, caller: Caller, params: Params) -> Reply:
        """The scopes granted to the app (or the webhook); ``full=true``: every scope there is (docs scope.md)."""
        everything = SCOPE.split(",")
        granted = everything if self.config.scopes is None else sorted(self.config.scopes)
        full = str(params.get("FULL", "")).lower() in ("true", "1", "y")
        return Reply(everything if full else granted)

    async def _app_info(self, caller: Caller, params: Params) -> Reply:
        if caller.app_id is None:  # docs app-info.md: a webhook has no application context
            raise errors.RestError("Access denied! Application context required", "ACCESS_DENIED", 400)
        return Reply(
            {
                "ID": self.identity.app_id,
                "CODE": self.identity.client_id,
                "VERSION": 1,
                "STATUS": "L",
                "INSTALLED": True,
                "PAYMENT_EXPIRED": "N",
                "DAYS": None,
                "LICENSE": "ru_project",
                "NAME": APP_NAME,
            }
        )
