"""The OAuth 2 side: access/refresh tokens, authorization codes, and ``/oauth/token/``.

In the cloud the token endpoint lives on ``oauth.bitrix.info``; here the simulator itself is the
OAuth host (``sim.oauth_url``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from bridge.sim.bitrix24 import errors
from bridge.sim.bitrix24.params import nest_pairs

log = structlog.get_logger(__name__)

REFRESH_LIFETIME = 180 * 24 * 3600.0
CODE_LIFETIME = 30.0
SCOPE = "telephony,user,user_brief,crm,department,timeman,task,im,calendar,placement"


@dataclass
class Identity:
    """How the portal names itself in tokens and events; ``base_url`` is known once the server runs."""

    member_id: str
    application_token: str
    client_id: str
    client_secret: str
    app_id: int = 1
    base_url: str = "http://127.0.0.1:0"

    @property
    def domain(self) -> str:
        return self.base_url.split("://", 1)[-1]

    @property
    def client_endpoint(self) -> str:
        return f"{self.base_url}/rest/"


@dataclass
class _Grant:
    user_id: int
    expires_at: float  # on the simulator clock


class OAuthError(Exception):
    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.code, self.description, self.status = code, description, status


class TokenStore:
    def __init__(
        self, identity: Identity, clock: Callable[[], float], wall_clock: Callable[[], float], lifetime: float
    ) -> None:
        self._identity = identity
        self._clock = clock
        self._wall = wall_clock
        self.lifetime = lifetime
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._codes: dict[str, _Grant] = {}

    def issue(self, user_id: int = 1) -> dict[str, Any]:
        """A fresh pair, shaped like the documented refresh response."""
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        now = self._clock()
        self._access[access] = _Grant(user_id, now + self.lifetime)
        self._refresh[refresh] = _Grant(user_id, now + REFRESH_LIFETIME)
        ident = self._identity
        return {
            "access_token": access,
            "expires": int(self._wall() + self.lifetime),
            "expires_in": int(self.lifetime),
            "scope": SCOPE,
            "domain": ident.domain,
            "server_endpoint": f"{ident.base_url}/rest/",
            "status": "L",
            "client_endpoint": ident.client_endpoint,
            "member_id": ident.member_id,
            "user_id": user_id,
            "refresh_token": refresh,
        }

    def new_code(self, user_id: int = 1) -> str:
        code = secrets.token_hex(16)
        self._codes[code] = _Grant(user_id, self._clock() + CODE_LIFETIME)
        return code

    def user_for(self, access_token: str) -> int:
        """The user an access token acts for; RestError 401 when unknown or expired."""
        grant = self._access.get(access_token)
        if grant is None:
            raise errors.no_auth()
        if self._clock() >= grant.expires_at:
            raise errors.expired_token()
        return grant.user_id

    def expire_access_tokens(self) -> None:
        now = self._clock()
        for grant in self._access.values():
            grant.expires_at = min(grant.expires_at, now)

    def _check_client(self, client_id: str, client_secret: str) -> None:
        ident = self._identity
        if not secrets.compare_digest(client_id, ident.client_id) or not secrets.compare_digest(
            client_secret, ident.client_secret
        ):
            raise OAuthError("invalid_client", "Invalid client credentials", 401)

    def grant(self, params: dict[str, Any]) -> dict[str, Any]:
        """The token endpoint: ``refresh_token`` (old refresh token dies) or ``authorization_code``."""
        grant_type = str(params.get("grant_type", ""))
        if grant_type not in ("refresh_token", "authorization_code"):
            raise OAuthError("invalid_request", "Unsupported or missing grant_type")
        self._check_client(str(params.get("client_id", "")), str(params.get("client_secret", "")))
        store, key = (self._refresh, "refresh_token") if grant_type == "refresh_token" else (self._codes, "code")
        value = str(params.get(key, ""))
        if not value:
            raise OAuthError("invalid_request", f"Missing {key}")
        grant = store.pop(value, None)
        if grant is None or self._clock() >= grant.expires_at:
            raise OAuthError("invalid_grant", "Invalid grant")
        return self.issue(grant.user_id)


async def token_endpoint(request: web.Request, store: TokenStore) -> web.Response:
    """``GET/POST /oauth/token/``; errors are ``{"error", "error_description"}`` and never echo secrets."""
    pairs = list(request.query.items())
    if request.method == "POST" and request.can_read_body:
        form = await request.post()
        pairs += [(key, value) for key, value in form.items() if isinstance(value, str)]
    params = nest_pairs(pairs)
    try:
        body = store.grant(params)
    except OAuthError as exc:
        log.warning("sim.oauth_refused", error=exc.code, grant_type=str(params.get("grant_type", "")))
        return web.json_response({"error": exc.code, "error_description": exc.description}, status=exc.status)
    log.info("sim.oauth_granted", grant_type=params.get("grant_type"), user_id=body["user_id"])
    return web.json_response(body)
