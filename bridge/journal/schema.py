"""The journal's schema, for SQLite and PostgreSQL, as one ordered list of migrations.

Append a new migration to :data:`MIGRATIONS` to change the schema; never edit one that has shipped. A statement
is written once, in SQLite's words, and :func:`postgres_ddl` spells its types for PostgreSQL; a statement that
only one backend needs is a :class:`Only`. SQLite counts the migrations applied in ``PRAGMA user_version``,
PostgreSQL in the table ``journal_schema`` (bridges that start together on one database migrate one at a time).
Times are unix seconds (REAL, wall clock) except ``calls.started_at``, which keeps the call's start as ISO-8601
with its offset because that is what ``CALL_START_DATE`` must carry.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Only:
    """A statement for one backend (``sqlite`` or ``postgres``) only."""

    dialect: str
    sql: str


MIGRATIONS: list[list[str | Only]] = [
    [
        """
        CREATE TABLE calls (
            crm_leg     TEXT PRIMARY KEY,           -- EXTERNAL_CALL_ID of the leg
            line        TEXT NOT NULL DEFAULT '',
            phone       TEXT NOT NULL DEFAULT '',   -- the caller's (client's) number
            linkedid    TEXT NOT NULL DEFAULT '',
            pbx_call    TEXT NOT NULL DEFAULT '',
            call_type   INTEGER,                    -- Bitrix24 TYPE
            started_at  TEXT,
            started_ts  REAL,
            answered_at REAL,
            ended_at    REAL,
            user_id     INTEGER,                    -- registered for; after the end: the employee who talked
            duration    INTEGER,
            status_code TEXT,
            recording   TEXT,
            call_id     TEXT,                       -- Bitrix24 CALL_ID once known
            mode        TEXT NOT NULL DEFAULT 'online' CHECK (mode IN ('online', 'offline')),
            state       TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'ended', 'done', 'failed')),
            created_at  REAL NOT NULL,
            updated_at  REAL NOT NULL
        )
        """,
        """
        CREATE TABLE operations (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            crm_leg         TEXT REFERENCES calls (crm_leg),  -- NULL: belongs to no call (tasks, notices)
            seq             INTEGER NOT NULL,                 -- order within the leg, from 1
            kind            TEXT NOT NULL,
            command         TEXT NOT NULL,                    -- the domain command as JSON (codec.py)
            state           TEXT NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'sent', 'done', 'failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,       -- times it was (possibly) sent
            last_error      TEXT NOT NULL DEFAULT '',
            note            TEXT NOT NULL DEFAULT '',         -- how it ended: delivered, skipped, ...
            result          TEXT,                             -- Bitrix24's answer as JSON
            next_attempt_at REAL NOT NULL,
            created_at      REAL NOT NULL,
            done_at         REAL,
            UNIQUE (crm_leg, seq)
        )
        """,
        "CREATE INDEX operations_open ON operations (crm_leg, seq) WHERE state IN ('pending', 'sent')",
        "CREATE INDEX calls_started ON calls (started_ts)",
        "CREATE INDEX calls_state ON calls (state)",
    ],
    [
        # what may be sent next, kept per call so that finding it does not read the whole backlog
        # head_op: the leg's first operation not yet done or failed; head_due: when it may go (NULL: it is in
        # flight, or waits for a CALL_ID or for the call's end); tries: times it was tried, for the back-off
        # (attempts counts only the tries that may have reached Bitrix24)
        "ALTER TABLE calls ADD COLUMN head_op INTEGER",
        "ALTER TABLE calls ADD COLUMN head_due REAL",
        "ALTER TABLE operations ADD COLUMN tries INTEGER NOT NULL DEFAULT 0",
        "UPDATE operations SET tries = attempts",
        "CREATE INDEX calls_head_due ON calls (head_due, head_op) WHERE head_due IS NOT NULL",
        "CREATE INDEX calls_online_open ON calls (created_at) WHERE mode = 'online' AND state IN ('open', 'ended')",
        "CREATE INDEX operations_loose_due ON operations (next_attempt_at, id)"
        " WHERE crm_leg IS NULL AND state = 'pending'",
        Only(
            "sqlite",  # fills what existing rows lack; a PostgreSQL journal is new, and its empty tables have nothing
            """
        UPDATE calls SET
            head_op = (SELECT o.id FROM operations o WHERE o.crm_leg = calls.crm_leg AND o.state IN ('pending', 'sent')
                       ORDER BY o.seq LIMIT 1),
            head_due = (SELECT CASE WHEN o.state = 'pending' AND CASE
                                    WHEN o.kind = 'register' THEN calls.mode = 'online' OR calls.ended_at IS NOT NULL
                                    WHEN o.kind IN ('show', 'hide', 'finish', 'attach_record')
                                        THEN calls.call_id IS NOT NULL
                                    ELSE 1 END
                               THEN o.next_attempt_at END
                        FROM operations o WHERE o.crm_leg = calls.crm_leg AND o.state IN ('pending', 'sent')
                        ORDER BY o.seq LIMIT 1)
        """,
        ),
    ],
    [
        # who sends from this journal: the boot (of the machine) its sender started in, removed on a clean close
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
    [
        # live legs' heads apart, so that they go ahead of an offline backlog without reading it
        "CREATE INDEX calls_online_due ON calls (head_due, head_op) WHERE head_due IS NOT NULL AND mode = 'online'",
    ],
    [
        # an operation of no leg (a missed-call task, a notice) still belongs to a call: named in its log lines
        "ALTER TABLE operations ADD COLUMN of_call TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE operations ADD COLUMN of_linkedid TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE operations ADD COLUMN of_line TEXT NOT NULL DEFAULT ''",
    ],
    [
        # several bridges may share one (PostgreSQL) journal: who journaled each call and operation, who sent it
        "ALTER TABLE calls ADD COLUMN bridge TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE operations ADD COLUMN bridge TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE operations ADD COLUMN sent_by TEXT NOT NULL DEFAULT ''",
    ],
    [
        # what distribution remembers across a restart (bridge/journal/tallies.py): per extension the calls it
        # answered on ``day`` (scope 'answered', for evenly), per lead distribution the leads each manager got
        # (scope 'lead:<id>'; the latest ``updated_at`` is whom round robin gave the last one)
        """
        CREATE TABLE tallies (
            scope      TEXT NOT NULL,
            member     TEXT NOT NULL,
            day        TEXT NOT NULL DEFAULT '',
            count      INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL,
            PRIMARY KEY (scope, member)
        )
        """,
    ],
    [
        # the PBX of each call ([cluster] pbx_id) in a shared journal: recovery reads its own PBX's calls only
        "ALTER TABLE calls ADD COLUMN pbx TEXT NOT NULL DEFAULT ''",
    ],
    [
        # the portal's leaky bucket shared by every bridge of the database (bridge/leadership/budget.py)
        Only(
            "postgres",
            """
            CREATE TABLE portal_budget (
                portal  TEXT PRIMARY KEY,             -- the portal's host (and port)
                level   DOUBLE PRECISION NOT NULL,    -- requests in the bucket at ``at``; above the size: reserved
                at      TIMESTAMPTZ NOT NULL          -- the server's clock when ``level`` was written
            )
            """,
        ),
        Only(
            "postgres",
            """
            CREATE TABLE budget_takers (
                portal  TEXT NOT NULL,
                bridge  TEXT NOT NULL,                -- [journal] bridge_id
                seen    TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (portal, bridge)
            )
            """,
        ),
    ],
    [
        # a portal event every bridge receives (a click-to-call's CALL_ID) is taken by one: the first row wins
        """
        CREATE TABLE claims (
            event      TEXT PRIMARY KEY,
            bridge     TEXT NOT NULL,
            pbx        TEXT NOT NULL,
            claimed_at REAL NOT NULL
        )
        """,
        # the system name (asterisk.conf systemname) of the PBX each bridge holds: two PBXs on one journal need two
        """
        CREATE TABLE pbx_systems (
            bridge      TEXT PRIMARY KEY,
            pbx         TEXT NOT NULL,
            system_name TEXT NOT NULL,
            seen_at     REAL NOT NULL
        )
        """,
    ],
    [
        # the tallies per PBX ([cluster] pbx_id; '' on SQLite): two offices may both have an extension 1001
        """
        CREATE TABLE tallies_per_pbx (
            pbx        TEXT NOT NULL DEFAULT '',
            scope      TEXT NOT NULL,
            member     TEXT NOT NULL,
            day        TEXT NOT NULL DEFAULT '',
            count      INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL,
            PRIMARY KEY (pbx, scope, member)
        )
        """,
        "INSERT INTO tallies_per_pbx (pbx, scope, member, day, count, updated_at)"
        " SELECT '', scope, member, day, count, updated_at FROM tallies ORDER BY updated_at",
        "DROP TABLE tallies",
        "ALTER TABLE tallies_per_pbx RENAME TO tallies",
    ],
    [
        # fewer pages written per commit: an index costs a page at every change of a row it holds. No query has read
        # calls_online_open since the online legs' queries name calls_online_due (a program that still did refuses
        # this schema: see _too_new). IF EXISTS: a journal whose index an operator dropped by hand migrates too
        "DROP INDEX IF EXISTS calls_online_open",
        # a live leg's head was in two indexes (calls_head_due held every leg's, calls_online_due the live ones'):
        # the offline legs' heads apart now, every head in one of the two
        "CREATE INDEX IF NOT EXISTS calls_offline_due ON calls (head_due, head_op)"
        " WHERE head_due IS NOT NULL AND mode = 'offline'",
        "DROP INDEX IF EXISTS calls_head_due",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(Exception):
    pass


def statements(number: int, dialect: str) -> list[str]:
    """Migration ``number`` (from 0) as ``dialect`` runs it."""
    out: list[str] = []
    for step in MIGRATIONS[number]:
        if isinstance(step, Only):
            if step.dialect == dialect:
                out.append(step.sql)
        else:
            out.append(step if dialect == "sqlite" else postgres_ddl(step))
    return out


_PG_TYPES = [
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
]


def postgres_ddl(sql: str) -> str:
    """SQLite's column types in PostgreSQL's words (the rest of our DDL is the same in both)."""
    for pattern, spelled in _PG_TYPES:
        sql = pattern.sub(spelled, sql)
    return sql


def _too_new(version: int) -> SchemaError:
    return SchemaError(
        f"the journal has schema version {version}, newer than this program's {SCHEMA_VERSION}; upgrade b24-bridge"
    )


def migrate_sqlite(conn: sqlite3.Connection) -> int:
    """Apply the migrations the database has not seen, each in its own transaction; returns the version."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise _too_new(version)
    for number in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements(number, "sqlite"):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return SCHEMA_VERSION


class PgConnection(Protocol):
    """The part of ``psycopg.AsyncConnection`` the migration uses (in a transaction of its own)."""

    async def execute(self, query: Any, params: Any = None) -> Any: ...

    def transaction(self) -> Any: ...


MIGRATION_LOCK = 0x6232_3462_7269_6467
"""The advisory lock key (``b24bridg``) that makes bridges starting together migrate one at a time."""


async def migrate_postgres(conn: PgConnection) -> int:
    """Like :func:`migrate_sqlite`, on PostgreSQL: all pending migrations in one transaction, under an advisory
    lock, so a second bridge starting at the same moment waits and then finds the schema up to date."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS journal_schema (version INTEGER NOT NULL)")
        row = await (await conn.execute("SELECT version FROM journal_schema")).fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise _too_new(version)
        for number in range(version, SCHEMA_VERSION):
            for statement in statements(number, "postgres"):
                await conn.execute(statement)
        if row is None:
            await conn.execute("INSERT INTO journal_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        else:
            await conn.execute("UPDATE journal_schema SET version = %s", (SCHEMA_VERSION,))
    return SCHEMA_VERSION
