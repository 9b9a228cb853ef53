"""The ``[http]`` section: the daemon's listeners and who may read its status page."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from bridge.config.reader import Reader, Secret

DEFAULT_LISTEN = "127.0.0.1:8480"


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8480
    events_host: str | None = None
    """``events_listen``: ``/b24/events`` on a listener of its own (then not on the main one), so that publishing
    the event URL does not publish ``/status`` or ``/metrics``."""
    events_port: int = 0
    status_token: Secret = field(default_factory=lambda: Secret(""))
    """Needed to read ``/status`` (Bearer, ``?token=`` or the password of basic auth); without it the page is
    served on a loopback listener only."""

    @property
    def status_open(self) -> bool:
        """Whether ``/status`` may be served at all: a token is set, or the main listener is loopback only."""
        return bool(self.status_token) or is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """``host`` (a listener's address) accepts connections from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _address(r: Reader, data: dict[str, Any], name: str, default: str | None) -> tuple[str, int] | None:
    raw = r.get(data, "http.", name, str, default)
    if raw is None:
        return None
    host, _, port = raw.rpartition(":")
    if not host or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 <= int(port) < 65536:
        r.problem(f"http.{name}", f"must be HOST:PORT, got {raw!r}")
        return None
    return host.strip("[]"), int(port)


def parse_http(r: Reader, data: dict[str, Any]) -> HttpSettings:
    r.unknown(data, "http.", {"listen", "events_listen", "status_token", "status_token_env", "status_token_file"})
    main = _address(r, data, "listen", DEFAULT_LISTEN) or ("127.0.0.1", 8480)
    events = _address(r, data, "events_listen", None)
    token = r.secret(data, "http.", "status_token", required=False) or Secret("")
    if token and len(token.reveal()) < 16:
        r.problem("http.status_token", "must be at least 16 characters (value not shown); e.g. openssl rand -hex 16")
    if events is not None and events == main and main[1] != 0:
        r.problem("http.events_listen", "must differ from http.listen (or leave it out to serve /b24/events there)")
    return HttpSettings(
        host=main[0], port=main[1], events_host=events[0] if events else None, events_port=events[1] if events else 0,
        status_token=token,
    )  # fmt: skip


def http_warnings(http: HttpSettings) -> list[str]:
    """What a valid ``[http]`` will not do that its author may expect."""
    if http.status_open:
        return []
    return [
        f"http.listen: {http.host} is not a loopback address and http.status_token is not set, so /status is "
        "refused (403); set http.status_token to read it over the network"
    ]
