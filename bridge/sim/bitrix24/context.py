"""What every REST method handler receives (the caller) and returns (the reply)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from bridge.sim.bitrix24.params import Params


@dataclass(frozen=True)
class Caller:
    """Who is calling: an OAuth app token or an inbound webhook, acting as ``user_id``."""

    user_id: int
    auth_kind: str  # "oauth" | "webhook"
    app_id: int | None  # REST_APP_ID; None through a webhook, as in CORE-VOX
    access_token: str | None = None
    webhook_code: str | None = None
    in_batch: bool = False

    def inside_batch(self) -> Caller:
        return replace(self, in_batch=True)


@dataclass
class Reply:
    """A method's ``result`` and, for list methods, the top-level ``total``/``next``."""

    result: Any
    total: int | None = None
    next: int | None = None


Handler = Callable[[Caller, Params], Awaitable[Reply]]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    handler: Handler
    app_only: bool = False  # WRONG_AUTH_TYPE through a webhook when the portal forbids webhooks here
    oauth_only: bool = False  # WRONG_AUTH_TYPE through a webhook on every portal (event.*: rest lib/api/event.php)
    scopes: tuple[str, ...] = ()  # insufficient_scope unless the app/webhook has one of them (empty: not checked)
