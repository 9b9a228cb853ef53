"""Which ways of receiving click-to-call events can work with which kind of Bitrix24 access.

Bitrix24 lets only an application (OAuth) call ``event.bind``, ``event.get`` and ``event.offline.*``: through an
inbound webhook they answer ``WRONG_AUTH_TYPE`` (rest module ``lib/api/event.php``: ``getAuthType() !== OAuth``).
So:

* webhook + ``pull`` cannot work: ``event.offline.get`` is refused, the daemon would poll for nothing;
* webhook + ``push`` works only through an *outbound webhook* the administrator creates by hand; its form shows the
  ``application_token``. Bitrix24 documents ``ONEXTERNALCALLBACKSTART`` for outbound webhooks and
  ``ONEXTERNALCALLSTART`` (click-to-call) for applications only, so click-to-call may never arrive;
* OAuth + ``push`` needs ``events_url``, the address Bitrix24's servers post to (the cloud refuses local and
  private addresses); its ``application_token`` comes with ``ONAPPINSTALL`` and is captured by the daemon;
* OAuth + ``pull`` needs no public address, but offline events need a portal administrator's token.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from bridge.config.reader import Secret

PULL_NEEDS_APP = (
    'events = "pull" cannot work with an inbound webhook: Bitrix24 refuses event.offline.get and event.bind to '
    "webhooks (WRONG_AUTH_TYPE), so no click-to-call would ever arrive. Use a local application ([bitrix24.oauth]) "
    'with events = "pull", or keep the webhook with events = "push" and an outbound webhook (see the README)'
)
PUSH_NEEDS_URL = (
    'required with [bitrix24.oauth] and events = "push": the public https address at which Bitrix24 reaches this '
    "daemon's /b24/events (e.g. https://bridge.example.com/b24/events behind your proxy); "
    'without one set events = "pull"'
)
WEBHOOK_PUSH_NEEDS_TOKEN = (
    "missing: with a webhook, events come from an outbound webhook; copy the application token its form shows "
    "(set application_token, application_token_env or application_token_file)"
)


def event_mode_problems(
    webhook: bool, events: str, events_url: str, application_token: Secret | None
) -> list[tuple[str, str]]:
    """(key, problem) for a combination of auth mode and event mode that cannot work."""
    problems: list[tuple[str, str]] = []
    if events_url and not http_url(events_url):
        problems.append(("events_url", f"must be an http(s) URL, got {events_url[:80]!r}"))
    if webhook and events == "pull":
        problems.append(("events", PULL_NEEDS_APP))
    if webhook and events == "push" and application_token is None:
        problems.append(("application_token", WEBHOOK_PUSH_NEEDS_TOKEN))
    if not webhook and events == "push" and not events_url:
        problems.append(("events_url", PUSH_NEEDS_URL))
    return problems


def event_mode_warnings(webhook: bool, events: str, events_url: str) -> list[str]:
    """What may not work although the configuration is valid, one sentence each, naming the key."""
    warnings: list[str] = []
    if webhook and events == "push":
        warnings.append(
            "bitrix24.webhook_url: webhook mode cannot bind events; they arrive only from an outbound webhook you "
            "create in Bitrix24, and Bitrix24 documents click-to-call (ONEXTERNALCALLSTART) for applications only, "
            "so clicks in the CRM may never reach the bridge. Use a local application ([bitrix24.oauth]) for "
            "click-to-call"
        )
    if not webhook and events == "push" and events_url and _local(events_url):
        warnings.append(
            f"bitrix24.events_url: {urlsplit(events_url).hostname} is a local or private address; Bitrix24's cloud "
            "does not post events there (only an on-premise portal in the same network can). Use a public address "
            'or events = "pull"'
        )
    return warnings


def http_url(url: str) -> bool:
    """An http(s) URL with a host and, if any, a valid port (``urlsplit`` raises on ``[::1`` or ``:99999``)."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _local(url: str) -> bool:
    """A loopback, private or link-local IP; ``localhost``; a name without a dot or under a local suffix."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or "." not in host or host.endswith(_LOCAL_SUFFIXES)
    return address.is_private or address.is_loopback or address.is_link_local or address.is_unspecified


_LOCAL_SUFFIXES = (".localhost", ".local", ".lan", ".internal", ".home.arpa")
