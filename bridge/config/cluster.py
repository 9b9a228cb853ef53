"""``[cluster]``: this bridge among others that share one PostgreSQL journal.

With a PostgreSQL journal, delivery always goes through the portal's one delivery leader (a bridge that is not the
leader only journals). ``standby = true`` makes the bridge compete for its PBX with the other bridges of the same
``pbx_id``: one holds it (ARI application, AMI session, recovery), the others wait and take over when it stops or
dies. Each bridge names itself with ``[journal] bridge_id``. Both need the shared journal: on SQLite every bridge
has its own outbox and a standby could not see the calls it takes over, so the section is refused there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bridge.config.reader import Reader


@dataclass(frozen=True)
class ClusterSettings:
    standby: bool = False
    """Compete for the PBX: hold it, or wait on standby for the bridge that holds it."""
    pbx_id: str = ""
    """The PBX the bridges of one standby pair share; default: the ARI URL's host:port and the app name."""


def is_postgres(url: str) -> bool:
    try:
        return urlsplit(url).scheme in ("postgresql", "postgres")
    except ValueError:  # a malformed url: [journal] reports it
        return False


def default_pbx_id(ari_url: str, app: str) -> str:
    try:
        parts = urlsplit(ari_url)
        return f"{parts.hostname or ''}:{parts.port or ''}/{app}"
    except ValueError:  # a malformed ari_url: [asterisk] reports it
        return f"pbx/{app}"


def parse_cluster(r: Reader, data: dict[str, Any], *, journal_url: str, ari_url: str, app: str) -> ClusterSettings:
    k = "cluster."
    r.unknown(data, k, {"standby", "pbx_id"})
    standby = r.get(data, k, "standby", bool, False)
    pbx_id = r.get(data, k, "pbx_id", str, "") or default_pbx_id(ari_url, app)
    if data and not is_postgres(journal_url):
        r.problem(
            "cluster",
            'needs a PostgreSQL journal ([journal] url = "postgresql://..."): bridges on SQLite journals share no '
            "outbox, so neither shared delivery nor a standby can work",
        )
    return ClusterSettings(standby=standby, pbx_id=pbx_id)
