"""The ``[journal]`` section: the outbox in an SQLite file (``path``, the default) or on PostgreSQL (``url``),
shared by several bridges; the password comes like every secret (``password_env``, ``password_file``)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from bridge.config.reader import Reader, Secret, is_relative

SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class JournalSettings:
    path: Path = Path("b24-bridge.db")
    relative: bool = False
    """Written as a relative path: under the systemd unit it went into the StateDirectory."""
    url: str = ""
    """``postgresql://user@host[:port]/database``: the journal is on PostgreSQL (several bridges may share it), not
    in ``path``. It never holds the password (that is :attr:`password`)."""
    password: Secret | None = None
    bridge_id: str = ""
    """This bridge's name in a shared journal (default: the machine's hostname and its PBX's host)."""

    @property
    def backend(self) -> str:
        return "postgres" if self.url else "sqlite"

    @property
    def where(self) -> str:
        """The journal, for messages (the url has no password in it)."""
        return self.url or str(self.path)


class PbxSettings(Protocol):
    @property
    def ari_url(self) -> str: ...


def url_problem(url: str) -> str | None:
    """What is wrong with a ``[journal] url`` (None: nothing). Never repeats a password written into it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a URL (postgresql://user@host[:port]/database)"
    if parts.scheme not in SCHEMES:
        return f"must start with postgresql:// (got {parts.scheme or 'no scheme'}://)"
    if parts.password is not None:
        return "has a password in it: give it as journal.password_env or journal.password_file, not in the url"
    if not parts.hostname:
        return "names no host (postgresql://user@host[:port]/database)"
    if not parts.username:
        return "names no user (postgresql://user@host[:port]/database)"
    if not parts.path.strip("/"):
        return "names no database (postgresql://user@host[:port]/database)"
    if port == 0:
        return "port 0 is not a port"
    return None


def default_bridge_id(ari_url: str) -> str:
    """``<hostname>/<PBX host>``: unique per bridge as long as one machine runs one bridge per PBX."""
    try:
        pbx = urlsplit(ari_url).hostname or "pbx"
    except ValueError:
        pbx = "pbx"
    return f"{socket.gethostname()}/{pbx}"


def parse_journal(r: Reader, data: dict[str, Any], asterisk: PbxSettings) -> JournalSettings:
    r.unknown(data, "journal.", {"path", "url", "password", "password_env", "password_file", "bridge_id"})
    url = r.get(data, "journal.", "url", str, "")
    password = r.secret(data, "journal.", "password", required=False)
    bridge_id = r.get(data, "journal.", "bridge_id", str, "") or default_bridge_id(asterisk.ari_url)
    if url:
        if "path" in data:
            r.problem("journal.path", "give either journal.path (SQLite) or journal.url (PostgreSQL), not both")
        problem = url_problem(url)
        if problem is not None:
            r.problem("journal.url", problem)
            url = ""
        return JournalSettings(url=url, password=password, bridge_id=bridge_id)
    if password is not None:
        r.problem("journal.password", "only a PostgreSQL journal (journal.url) has a password")
    journal_path = r.get(data, "journal.", "path", str, "b24-bridge.db")
    return JournalSettings(
        path=r.state_path(journal_path, "journal.path"), relative=is_relative(journal_path), bridge_id=bridge_id
    )
