"""``ONAPPINSTALL``: the local application's install, received by the daemon's event handler.

Bitrix24 posts ``ONAPPINSTALL`` once to the application's *install path* when an administrator saves the local
application (and again on a reinstall). It carries the installing user's token pair and the ``application_token``
that every later event of the application carries (docs: ``api-reference/events/safe-event-handlers.md``). With the
install path set to the daemon's ``events_url`` the operator need not copy any of them by hand.

Trust: a post proves nothing by itself (the handler is public). It is accepted only when its
``auth[access_token]`` works for *our* application at the *configured* portal: ``app.info`` called with that token
at ``[bitrix24.oauth] portal`` (never at the ``client_endpoint`` the post names) must answer ``CODE`` equal to our
``client_id``. A forger would need a live access token of our own application. Then the token pair and the
``application_token`` are written to ``token_file`` (atomically, mode 0600), the event gate takes the new token at
once (unless the config sets ``application_token``: the config wins, with a warning), and the portal set-up runs
again (a reinstall drops the application's event bindings). Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from bridge.config import Bitrix24Settings
from bridge.crm.auth import write_private_json
from bridge.crm.client import Bitrix24Client
from bridge.crm.errors import CrmError
from bridge.crm.inbound import EventGate
from bridge.logs import register_secrets

log = structlog.get_logger(__name__)

APP_INSTALL = "ONAPPINSTALL"


@dataclass(frozen=True)
class InstallAnswer:
    """What the handler answers the post with."""

    status: int
    reason: str


@dataclass(frozen=True)
class _Install:
    access_token: str
    refresh_token: str
    expires_in: int
    application_token: str
    member_id: str


def stored_application_token(path: Path) -> str:
    """The ``application_token`` a previous install left in the token file ("" when none)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return ""
    token = data.get("application_token") if isinstance(data, dict) else None
    return token if isinstance(token, str) else ""


def _parse(payload: Mapping[str, Any]) -> _Install | str:
    auth = payload.get("auth")
    if not isinstance(auth, Mapping):
        return "no auth[...] fields"
    fields = {name: str(auth.get(name, "")).strip() for name in ("access_token", "refresh_token", "application_token")}
    missing = [name for name, value in fields.items() if not value]
    if missing:
        return f"auth[{missing[0]}] missing"
    if any(len(value) > 200 or not value.isprintable() for value in fields.values()):
        return "malformed auth fields"
    expires_in = str(auth.get("expires_in", "3600")).strip()
    return _Install(
        access_token=fields["access_token"],
        refresh_token=fields["refresh_token"],
        expires_in=int(expires_in) if expires_in.isdigit() and len(expires_in) < 7 else 3600,
        application_token=fields["application_token"],
        member_id=str(auth.get("member_id", ""))[:64],
    )


class Installer:
    """Accepts genuine ``ONAPPINSTALL`` posts (OAuth mode only) and stores what they bring."""

    def __init__(
        self,
        settings: Bitrix24Settings,
        client: Bitrix24Client,
        gate: EventGate,
        *,
        on_installed: Callable[[], Awaitable[None]],
    ) -> None:
        if settings.oauth is None:
            raise ValueError("an install needs [bitrix24.oauth]")
        self._oauth = settings.oauth
        self._configured = settings.application_token.reveal()
        self._client = client
        self._gate = gate
        self._on_installed = on_installed
        self._lock = asyncio.Lock()

    async def accept(self, payload: Mapping[str, Any]) -> InstallAnswer:
        parsed = _parse(payload)
        if isinstance(parsed, str):
            return self._refuse(parsed, 400)
        try:
            info = await self._client.call_as("app.info", parsed.access_token)
        except CrmError as exc:
            return self._refuse(f"its access token does not work at the configured portal ({exc.code})", 403)
        code = str(info.get("CODE", "")) if isinstance(info, dict) else ""
        if code != self._oauth.client_id:
            return self._refuse("its access token belongs to another application", 403)
        register_secrets([parsed.access_token, parsed.refresh_token, parsed.application_token])  # genuine only
        async with self._lock:
            try:
                await asyncio.to_thread(self._store, parsed)
            except OSError as exc:
                return self._refuse(f"cannot write token_file {self._oauth.token_file}: {exc.strerror}", 500)
        if self._configured and self._configured != parsed.application_token:
            log.warning(
                "crm.app_installed", token_file=str(self._oauth.token_file), application_token="configured",
                note="bitrix24.application_token in the config differs from the one this install issued and is "
                "still used: remove it from the config so that events of the new install are accepted",
            )  # fmt: skip
        else:
            self._gate.set_token(parsed.application_token)
            log.info("crm.app_installed", token_file=str(self._oauth.token_file), application_token="stored")
        await self._on_installed()
        return InstallAnswer(200, "installed")

    def _store(self, install: _Install) -> None:
        path = self._oauth.token_file
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            current = {}
        merged = current if isinstance(current, dict) else {}
        merged.update(
            access_token=install.access_token,
            refresh_token=install.refresh_token,
            expires=int(time.time()) + install.expires_in,
            application_token=install.application_token,
            member_id=install.member_id,
        )
        write_private_json(path, merged)

    def _refuse(self, reason: str, status: int) -> InstallAnswer:
        log.warning("crm.install_rejected", reason=reason, status=status)
        return InstallAnswer(status, reason)
