"""OAuth tokens of a Bitrix24 local application: read from the token file, refreshed once on expiry.

Bitrix24's advice is followed literally: call with the stored access token; on ``expired_token`` refresh
through ``<oauth_host>/oauth/token/?grant_type=refresh_token`` and retry the same call. Never refresh on a timer.
The new pair replaces the old one in the token file atomically (temp file in the same directory, fsync,
mode 0600, ``os.replace``). Concurrent callers that hit the expiry together share one refresh.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from bridge.config import OAuthSettings
from bridge.crm.errors import NETWORK, PermanentCrmError, TransientCrmError
from bridge.logs import redact_text, register_secrets

log = structlog.get_logger(__name__)

REFRESH = "oauth.refresh"
"""The ``method`` name our errors carry for a failed token refresh."""


def token_endpoint(oauth_host: str) -> str:
    host = oauth_host.rstrip("/")
    return host + "/" if host.endswith("/oauth/token") else host + "/oauth/token/"


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` atomically; the file is readable by its owner only."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            json.dump(data, tmp, ensure_ascii=False, indent=2)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class OAuthTokens:
    """The current token pair of one application installation."""

    def __init__(self, settings: OAuthSettings, *, timeout: float = 30.0) -> None:
        self._settings = settings
        self._timeout = timeout
        self._data: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0
        register_secrets([settings.client_secret.reveal()])

    @property
    def path(self) -> Path:
        return self._settings.token_file

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise PermanentCrmError(REFRESH, "NO_TOKEN_FILE", f"token file {self.path} does not exist") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PermanentCrmError(REFRESH, "BAD_TOKEN_FILE", f"token file {self.path} is unreadable") from exc
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in _PAIR):
            raise PermanentCrmError(
                REFRESH, "BAD_TOKEN_FILE", f"token file {self.path} lacks access_token/refresh_token"
            )
        register_secrets([data["access_token"], data["refresh_token"]])
        return data

    def access_token(self) -> str:
        """The stored access token (read from the token file the first time)."""
        if self._data is None:
            self._data = self._load()
        return str(self._data["access_token"])

    async def refresh(self, session: aiohttp.ClientSession, rejected: str) -> str:
        """Get a new pair unless another caller already replaced the ``rejected`` access token."""
        async with self._lock:
            current = self.access_token()
            if current != rejected:
                return current
            # another client of this file (or an install) may have stored a newer pair: its refresh token is the
            # live one (ours was spent by that refresh), and its access token may already work
            self._data = on_disk = await asyncio.to_thread(self._load)
            if on_disk["access_token"] != rejected:
                return str(on_disk["access_token"])
            data = await self._exchange(session, str(on_disk["refresh_token"]))
            merged = {**on_disk, **data}
            merged.setdefault("expires", int(time.time()) + int(data.get("expires_in", 3600) or 3600))
            await asyncio.to_thread(write_private_json, self.path, merged)
            self._data = merged
            self.refreshes += 1
            log.info("crm.token_refreshed", expires=merged.get("expires"))
            return str(merged["access_token"])

    async def _exchange(self, session: aiohttp.ClientSession, refresh_token: str) -> dict[str, Any]:
        query = {
            "grant_type": "refresh_token",
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret.reveal(),
            "refresh_token": refresh_token,
        }
        try:
            async with session.get(
                token_endpoint(self._settings.oauth_host),
                params=query,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                status = response.status
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientCrmError(REFRESH, NETWORK, redact_text(f"{type(exc).__name__}: {exc}")) from exc
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            kind = TransientCrmError if status >= 500 or status == 429 else PermanentCrmError
            raise kind(REFRESH, "ERROR_UNEXPECTED_ANSWER", "the OAuth server did not answer JSON", status)
        error = str(data.get("error") or "")
        if error == "invalid_grant":
            raise PermanentCrmError(
                REFRESH, error, "the refresh token was rejected: re-authorise the application", status
            )
        if error or not all(isinstance(data.get(k), str) and data[k] for k in _PAIR):
            kind = TransientCrmError if status >= 500 or status == 429 else PermanentCrmError
            description = str(data.get("error_description") or "the OAuth server gave no token pair")
            raise kind(REFRESH, error or "ERROR_UNEXPECTED_ANSWER", description, status)
        register_secrets([data["access_token"], data["refresh_token"]])
        return data


_PAIR = ("access_token", "refresh_token")
