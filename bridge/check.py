"""``b24-bridge check``: connect to ARI, AMI and Bitrix24 once and say, one line each, whether it works; then which
click-to-call events Bitrix24 will deliver, and where; and which journal (SQLite or PostgreSQL) the bridge uses."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable

import aiohttp
from panoramisk import Manager

from bridge.config import Settings
from bridge.crm.client import Bitrix24Client
from bridge.crm.envelope import rows_of
from bridge.crm.errors import CrmError
from bridge.crm.install import stored_application_token
from bridge.delivery.access import ALL, DENIED, PERMISSION, StatisticsAccess
from bridge.journal import AsyncJournal, JournalError
from bridge.logs import redact_text
from bridge.portal import BOUND_EVENTS

TIMEOUT = 10.0


class CheckWarning(Exception):
    """The component works, but not in every way the operator may expect (``warn``, exit status unchanged)."""


async def check_ari(settings: Settings) -> str:
    a = settings.asterisk
    token = base64.b64encode(f"{a.ari_user}:{a.ari_password.reveal()}".encode()).decode()
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}, timeout=timeout) as session:
        async with session.get(f"{a.ari_url}/ari/asterisk/info") as response:
            if response.status == 401:
                raise RuntimeError(f"ARI refused user {a.ari_user!r}: wrong password (ari.conf)")
            response.raise_for_status()
            info = await response.json()
        async with session.get(f"{a.ari_url}/ari/applications") as response:
            apps = [app.get("name") for app in await response.json()] if response.status == 200 else []
    version = info.get("system", {}).get("version", "?") if isinstance(info, dict) else "?"
    listening = "the app is connected" if a.app in apps else f"app {a.app!r} not registered yet (daemon not running)"
    return f"Asterisk {version} at {a.ari_url}; {listening}"


async def check_ami(settings: Settings) -> str:
    a = settings.asterisk
    manager = Manager(
        host=a.ami_host,
        port=a.ami_port,
        username=a.ami_user,
        secret=a.ami_secret.reveal(),
        events="off",
        ping_delay=3600,
        reconnect_timeout=3600,
        loop=asyncio.get_running_loop(),
    )
    try:
        await asyncio.wait_for(manager.connect(), TIMEOUT)
        reply = await asyncio.wait_for(manager.send_action({"Action": "Ping"}), TIMEOUT)
        if str(reply.get("Response", "")).lower() != "success":
            raise RuntimeError(f"Ping answered {reply.get('Response')!r}: {reply.get('Message', '')}")
    finally:
        manager.close()
    return f"AMI at {a.ami_host}:{a.ami_port}, user {a.ami_user!r} logged in"


async def check_bitrix24(settings: Settings) -> str:
    async with Bitrix24Client(settings.bitrix24, retry_attempts=1) as client:
        lines = await client.call("telephony.externalLine.get")
    count = len(lines) if isinstance(lines, list) else 0
    return f"Bitrix24 answers; telephony scope granted; {count} external line(s) registered for this app"


async def check_events(settings: Settings) -> str:
    """Which click-to-call events are bound, and where (``event.get``, an application's only)."""
    b = settings.bitrix24
    if b.events == "off":
        return 'events = "off": click-to-call and callback requests are not taken'
    if b.webhook_url is not None:
        where = b.events_url or "this daemon's /b24/events"
        raise CheckWarning(
            "webhook mode cannot bind or list event handlers (Bitrix24 allows event.bind/event.get to applications "
            f"only): events arrive only if an outbound webhook posts them to {where}, and Bitrix24 documents "
            "click-to-call (ONEXTERNALCALLSTART) for applications only; use [bitrix24.oauth] for click-to-call"
        )
    async with Bitrix24Client(b, retry_attempts=1) as client:
        info = await client.call("app.info")
        bound = rows_of(await client.call("event.get"))
    offline = b.events == "pull"
    listed = [f"{row.get('event')} -> {'offline queue' if row.get('offline') else row.get('handler')}" for row in bound]
    shown = "; ".join(listed) or "none"
    missing = [e for e in BOUND_EVENTS if not any(_binds(row, e, offline, b.events_url) for row in bound)]
    if missing:
        target = "the offline queue" if offline else b.events_url
        raise RuntimeError(
            f"bound: {shown}; not bound to {target}: {', '.join(missing)} (the daemon binds them at start and after "
            "each install: is it running? see crm.event_bind_failed in its log)"
        )
    if isinstance(info, dict) and info.get("INSTALLED") is False:
        raise RuntimeError(f"bound: {shown}; but the application's installation is not finished: no events are sent")
    if not offline and not b.application_token and not (b.oauth and stored_application_token(b.oauth.token_file)):
        raise RuntimeError(
            f"bound: {shown}; but no application_token yet, so every event would be refused: set the application's "
            f"install path to {b.events_url} and reinstall it (the daemon stores the token it brings)"
        )
    return f"bound: {shown}"


def _binds(row: dict[str, object], event: str, offline: bool, url: str) -> bool:
    if str(row.get("event", "")).upper() != event:
        return False
    return bool(row.get("offline")) if offline else not row.get("offline") and row.get("handler") == url


async def check_statistics(settings: Settings) -> str:
    """Whether ``voximplant.statistic.get`` can tell a replay that a call already arrived (see
    :mod:`bridge.delivery.access`)."""
    access = StatisticsAccess()
    async with Bitrix24Client(settings.bitrix24, retry_attempts=1) as client:
        level = await access.learn(client)
    who = f"app user {access.app_user}"
    if level == ALL:
        return f"voximplant.statistic.get sees every call ({who} is a portal admin)"
    if level == DENIED:
        raise RuntimeError(
            f"voximplant.statistic.get: ACCESS_DENIED: {who} lacks the telephony permission '{PERMISSION}'; "
            "a call that may already be in Bitrix24 is parked, never resent (grant it: Telephony > Access permissions)"
        )
    raise CheckWarning(
        f"{who} is not a portal admin: voximplant.statistic.get lists only the calls its role '{PERMISSION}' covers "
        "(by default its own); a doubtful call of an employee none of whose calls it has seen there is parked, not "
        "resent (make it a portal admin)"
    )


async def check_journal(settings: Settings) -> str:
    """Which backend, and whether it can be used now (PostgreSQL: reached, logged in, schema up to date)."""
    j = settings.journal
    if j.backend == "sqlite":
        return f"SQLite journal {j.path} (this bridge alone sends from it)"
    journal = await AsyncJournal.open_postgres(j.url, password=j.password.reveal() if j.password else None)
    try:
        depth = await journal.depth()
    finally:
        await journal.close()
    return (
        f"PostgreSQL journal {j.url} reached, schema up to date; {depth} pending operation(s); bridge id {j.bridge_id}"
    )


async def _one(name: str, probe: Callable[[Settings], Awaitable[str]], settings: Settings) -> bool:
    try:
        detail = await asyncio.wait_for(probe(settings), TIMEOUT * 2)
    except CheckWarning as warning:
        print(f"warn {name:<9} {redact_text(str(warning))}")
        return True
    except (OSError, TimeoutError, aiohttp.ClientError, CrmError, JournalError, RuntimeError, ValueError) as exc:
        text = str(exc) or type(exc).__name__
        print(f"FAIL {name:<9} {redact_text(text)}")
        return False
    print(f"ok   {name:<9} {detail}")
    return True


async def check(settings: Settings) -> int:
    results = [
        await _one("ari", check_ari, settings),
        await _one("ami", check_ami, settings),
        await _one("bitrix24", check_bitrix24, settings),
        await _one("events", check_events, settings),
        await _one("stats", check_statistics, settings),
        await _one("journal", check_journal, settings),
    ]
    return 0 if all(results) else 1
