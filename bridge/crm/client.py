"""The Bitrix24 REST client: auth (inbound webhook or OAuth app), pacing, retries, batch, paging.

Every request is a JSON POST to ``<webhook_url><method>.json`` or ``<portal>/rest/<method>.json`` (with ``auth``
in the body), paced by the portal's shared leaky bucket (:mod:`bridge.crm.pacing`) and retried while the failure
is transient. A limit (503 ``QUERY_LIMIT_EXCEEDED``, 429 ``OPERATION_TIME_LIMIT``) only slows the pace: the portal
(or that one method) waits one drain interval, ``1/rate`` s, and the retry follows at once (a refused request never
ran, so it gets ``LIMIT_RETRIES`` such tries even with ``retry_attempts=1``); any other transient failure (network,
5xx) is retried after a short jittered exponential back-off, capped at ``retry_max_wait``.
Errors leave as :mod:`bridge.crm.errors`; library exceptions are translated here, and no message or log line
carries the webhook code or a token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential
from tenacity.wait import wait_base
from yarl import URL

from bridge import __version__
from bridge.config import Bitrix24Settings
from bridge.crm.auth import OAuthTokens
from bridge.crm.envelope import BatchResult, as_dict, as_int, error_of
from bridge.crm.errors import (
    NETWORK,
    ExpiredTokenError,
    PermanentCrmError,
    TransientCrmError,
    classify,
)
from bridge.crm.http11 import HttpError, LeanHttp
from bridge.crm.pacing import CrmStats, SharedPace, fill_bucket, limiter_for
from bridge.crm.query import php_query
from bridge.logs import HotLogger, redact_text, register_secrets

log = HotLogger(__name__)

USER_AGENT = f"b24-bridge/{__version__}"
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json", "Content-Type": "application/json"}
MAX_BATCH = 50
BACKOFF_MULTIPLIER = 0.5
"""Seconds: the n-th retry after a network error or a 5xx waits a random time up to ``0.5 * 2**(n-1)``."""
LIMIT_RETRIES = 2
"""Tries a limit refusal gets on top of ``retry_attempts``. A refused request did not run at all, so trying it again
is safe even for a client built not to retry (Delivery's): it costs a drain interval, not a statistics check."""
MAX_PAGES = 2000


def _json_body(payload: Mapping[str, Any]) -> bytes:
    """The request body: orjson (UTF-8 as it is), the standard encoder for what orjson refuses (an integer beyond 64
    bits, a key that is not a string, a lone surrogate), which raises for what JSON has no form for, as before."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME)
    except TypeError:
        return json.dumps(payload).encode()


def _json_answer(raw: bytes) -> Any:
    """The answer's JSON; None when it is not JSON. Bytes that are not UTF-8 are read as U+FFFD, as before."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError:
        return None


def _portal_base(portal: str) -> str:
    portal = portal.strip().rstrip("/")
    return portal if portal.startswith(("http://", "https://")) else f"https://{portal}"


class Bitrix24Client:
    """One portal, one auth; safe for concurrent use by many tasks."""

    def __init__(
        self,
        settings: Bitrix24Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        limiter: AsyncLimiter | None = None,
        budget: SharedPace | None = None,
        retry_attempts: int = 4,
        retry_max_wait: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (settings.webhook_url is None) == (settings.oauth is None):
            raise ValueError("set exactly one of webhook_url and oauth")
        self.settings = settings
        self._session = session
        self._own_session = session is None
        self._limiter = limiter
        self._budget = budget
        """The portal's budget shared with other bridges (PostgreSQL journal), asked after the local limiter."""
        self._retry_attempts = max(1, retry_attempts)
        self._retry_max_wait = retry_max_wait
        self._backoff: wait_base = wait_random_exponential(multiplier=BACKOFF_MULTIPLIER, max=retry_max_wait)
        self._clock = clock
        self._lean = LeanHttp(HEADERS)
        """The REST POSTs' keep-alive connections (aiohttp's session serves the uploads and the token refresh)."""
        self._urls: dict[str, URL] = {}
        """Per method, its endpoint, parsed once."""
        self._paused_until: dict[str, float] = {}
        """Per method (and ``""`` for the whole portal): not before this ``clock()`` time."""
        self.stats = CrmStats(limiter=limiter)
        if settings.webhook_url is not None:
            webhook = settings.webhook_url.reveal()
            register_secrets([webhook])
            self._base = webhook if webhook.endswith("/") else webhook + "/"
            self._rest = self._base
            self._tokens: OAuthTokens | None = None
        else:
            assert settings.oauth is not None
            self._base = _portal_base(settings.oauth.portal)
            self._rest = self._base + "/rest/"
            self._tokens = OAuthTokens(settings.oauth, timeout=settings.request_timeout)
        parts = urlsplit(self._base)
        self.portal = (parts.netloc or parts.path).lower()
        """Host (and port) of the portal: the key of its shared leaky bucket."""

    # --- plumbing ----------------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # no cookie jar: the REST API sets none that matter, and a jar is consulted on every request
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT}, cookie_jar=aiohttp.DummyCookieJar()
            )
            self._own_session = True
        return self._session

    def _bucket(self) -> AsyncLimiter:
        if self._limiter is None:
            self._limiter = limiter_for(self.portal, self.settings.rate, self.settings.burst)
            self.stats.limiter = self._limiter
        return self._limiter

    async def _pace(self) -> None:
        """Wait for room in this process's bucket, then (several bridges) for a slot in the portal's shared one."""
        await self._bucket().acquire()
        if self._budget is not None:
            await self._budget.take()

    def bucket_level(self) -> float:
        return self.stats.bucket_level()

    def assume_bucket_full(self) -> None:
        """Another sender may just have spent the portal's budget (a delivery leader that took over does not know
        how full the portal's bucket is): start from full, sending at the drain rate until it has leaked. With a
        shared budget there is nothing to assume: its bucket counted every bridge's requests."""
        if self._budget is None:
            fill_bucket(self._bucket())

    async def close(self) -> None:
        await self._lean.close()
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> Bitrix24Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _wait_pauses(self, method: str) -> None:
        while True:
            until = max(self._paused_until.get("", 0.0), self._paused_until.get(method, 0.0))
            delay = until - self._clock()
            if delay <= 0:
                return
            await asyncio.sleep(delay)

    def _pause(self, key: str, seconds: float) -> None:
        self._paused_until[key] = max(self._paused_until.get(key, 0.0), self._clock() + seconds)

    def _url(self, method: str) -> URL:
        url = self._urls.get(method)
        if url is None:
            url = self._urls[method] = URL(f"{self._rest}{method}.json")
        return url

    async def _post_once(self, method: str, body: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        """One paced HTTP request; the envelope on success, one of our errors otherwise."""
        payload = {**body, "auth": token} if token is not None else body if type(body) is dict else dict(body)
        await self._wait_pauses(method)
        await self._pace()
        self.stats.requests += 1
        started = self._clock()
        try:
            status, raw, location = await self._lean.post(
                self._url(method), _json_body(payload), self.settings.request_timeout
            )
        except (HttpError, OSError) as exc:  # OSError: refused, reset, TLS, name lookup; the deadline (TimeoutError)
            self.stats.errors += 1
            detail = redact_text(f"{type(exc).__name__}: {exc}").replace(self._base, "<portal>/")
            raise TransientCrmError(method, NETWORK, detail) from exc
        if location is not None and 300 <= status < 400:
            self.stats.errors += 1  # 307/308 were followed; another redirect would turn the POST into a GET
            moved_to = redact_text(location).replace(self._base, "<portal>/")
            raise PermanentCrmError(
                method, "ERROR_REDIRECT", f"the portal moved this address to {moved_to}: configure that one", status
            )
        log.debug("crm.request", method=method, status=status, duration=round(self._clock() - started, 3))
        envelope = _json_answer(raw)
        if not isinstance(envelope, dict):
            self.stats.errors += 1
            error = classify(method, "ERROR_UNEXPECTED_ANSWER", "the portal did not answer JSON", status)
            if status < 400:
                raise TransientCrmError(method, error.code, error.description, status)
            raise error
        if "error" in envelope or "error_description" in envelope or status >= 400:
            self.stats.errors += 1
            error = error_of(method, envelope, status)
            if isinstance(error, TransientCrmError) and error.rate_limited:
                self._slow_down(error)
            raise error
        return envelope

    async def _authorised(self, method: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One attempt, with at most one token refresh in it."""
        if self._tokens is None:
            try:
                return await self._post_once(method, body, None)
            except ExpiredTokenError as exc:
                raise PermanentCrmError(method, exc.code, exc.description, exc.status) from exc
        token = self._tokens.access_token()
        try:
            return await self._post_once(method, body, token)
        except ExpiredTokenError:
            pass
        fresh = await self._tokens.refresh(self._http(), rejected=token)
        self.stats.token_refreshes = self._tokens.refreshes
        try:
            return await self._post_once(method, body, fresh)
        except ExpiredTokenError as exc:
            raise PermanentCrmError(method, exc.code, "token rejected right after a refresh", exc.status) from exc

    def _slow_down(self, error: TransientCrmError) -> None:
        """A limit was hit: hold back the portal (bucket overflow) or the one method (its time budget) for one
        drain interval, so the retry, and every other request, follows at the pace the portal accepts."""
        drain = 1.0 / self.settings.rate
        if error.query_limit:
            self.stats.query_limit_exceeded += 1
            fill_bucket(self._bucket())  # every client of this portal now waits for the next drained slot
            if self._budget is not None:
                self._budget.overflowed()  # and every bridge of the shared budget
            self._pause("", drain)
        else:
            self._pause(error.method, drain)
        log.warning(
            "crm.limited", method=error.method, code=error.code, status=error.status, pause=round(drain, 3),
            scope="portal" if error.query_limit else "method",
        )  # fmt: skip

    def _retry_stop(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        limited = isinstance(error, TransientCrmError) and error.rate_limited
        return state.attempt_number >= self._retry_attempts + (LIMIT_RETRIES if limited else 0)

    def _retry_wait(self, state: RetryCallState) -> float:
        """Tenacity's wait: nothing extra after a limit (the pause and the bucket already hold the retry back by
        one drain interval), a jittered exponential back-off after anything else."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientCrmError) and error.rate_limited:
            return 0.0
        return float(self._backoff(state))

    def _log_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "crm.retry",
            method=getattr(error, "method", ""),
            code=getattr(error, "code", ""),
            attempt=state.attempt_number,
            wait=round(state.upcoming_sleep, 3),
        )

    async def _request(self, method: str, body: Mapping[str, Any], commands: int = 1) -> dict[str, Any]:
        """The request, retried by tenacity while it fails transiently. Most requests succeed at once: the first
        try goes without building tenacity's machinery (about 20 µs a request); a transient failure hands it over
        as the loop's first attempt, so the stop, wait and log rules see exactly what they saw before."""
        self.stats.commands += commands
        try:
            return await self._authorised(method, body)
        except TransientCrmError as exc:
            first: TransientCrmError | None = exc
        retrying = AsyncRetrying(
            stop=self._retry_stop,
            wait=self._retry_wait,
            retry=retry_if_exception_type(TransientCrmError),
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first is not None:
                    failed, first = first, None
                    raise failed
                return await self._authorised(method, body)
        raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover

    # --- public API --------------------------------------------------------------------------------

    async def call_envelope(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The whole answer of ``method``: ``result`` plus ``total``/``next``/``time`` when present."""
        return await self._request(method, dict(params or {}))

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """The ``result`` of ``method``."""
        return (await self.call_envelope(method, params)).get("result")

    async def call_as(self, method: str, access_token: str, params: Mapping[str, Any] | None = None) -> Any:
        """The ``result`` of ``method`` called once with a given OAuth access token (no refresh, no retry): to test
        a token someone hands us (an install's) at the configured portal. OAuth mode only."""
        if self._tokens is None:
            raise ValueError("call_as needs OAuth mode")
        self.stats.commands += 1
        return (await self._post_once(method, dict(params or {}), access_token)).get("result")

    async def batch(self, commands: Mapping[str, tuple[str, Mapping[str, Any]]], *, halt: bool = False) -> BatchResult:
        """Up to 50 commands in one request; later ones may use ``$result[key][FIELD]`` of earlier ones."""
        if len(commands) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} commands, got {len(commands)}")
        if not commands:
            return BatchResult()
        cmd: dict[str, str] = {}
        for key, (method, params) in commands.items():  # batch_command's text, two Python calls a command fewer
            cmd[key] = f"{method}?{php_query(params)}"
        envelope = await self._request("batch", {"halt": 1 if halt else 0, "cmd": cmd}, commands=len(commands))
        return BatchResult.parse(envelope.get("result"), commands)

    async def upload(self, method: str, url: str, field_name: str, filename: str, content: bytes) -> Any:
        """POST a file as multipart ``field_name`` to a one-off upload URL that ``method`` handed out.

        The URL carries a token, so it is treated as a secret; the answer's ``result`` is returned.
        """
        register_secrets([url, *url.split("?", 1)[1:]])
        form = aiohttp.FormData()
        form.add_field(field_name, content, filename=filename, content_type="application/octet-stream")
        await self._pace()
        self.stats.requests += 1
        try:
            async with self._http().post(
                url,
                data=form,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout),
            ) as response:
                status = response.status
                text = await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.errors += 1
            raise TransientCrmError(method, NETWORK, f"upload failed: {type(exc).__name__}") from exc
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if status >= 400 or not isinstance(body, dict) or "error" in body:
            self.stats.errors += 1
            error = error_of(method, body if isinstance(body, dict) else {}, status)
            raise (
                error
                if not isinstance(error, ExpiredTokenError)
                else PermanentCrmError(method, error.code, "the upload URL has expired", status)
            )
        return body.get("result")

    async def list_all(self, method: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every row of a list method, page by page (50 a page, following ``next``)."""
        rows: list[Any] = []
        start = 0
        for _ in range(MAX_PAGES):
            envelope = await self.call_envelope(method, {**(params or {}), "start": start})
            page = envelope.get("result")
            rows.extend(page if isinstance(page, list) else as_dict(page).values())
            following = as_int(envelope.get("next"))
            if following is None or following <= start:
                return rows
            start = following
        raise PermanentCrmError(method, "TOO_MANY_PAGES", f"more than {MAX_PAGES} pages")
