"""The journal's longer SQL statements, kept apart so that ``store.py`` reads as the rules."""

from __future__ import annotations

import functools

from bridge.journal.rows import NEEDS_CALL_ID

OPEN = "('pending', 'sent')"
OUTBOX_CHANNEL = "b24_outbox"
NOTIFY_APPENDED = f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')"
"""PostgreSQL only: every append's transaction notifies the channel at its commit (a delivery leader listens)."""
IN_LIST = 500
"""The most values one statement's ``IN (...)`` list is given (the backends limit a statement's parameters)."""
NAMES_CALL_ID = "(" + ", ".join(f"'{kind}'" for kind in sorted(NEEDS_CALL_ID)) + ")"

READY_LIVE_HEADS = """
SELECT o.*, c.call_id, c.mode, c.state AS call_state, c.ended_at, c.head_due AS due,
       c.pbx_call, c.linkedid, c.line
FROM calls c INDEXED BY calls_online_due JOIN operations o ON o.id = c.head_op
WHERE c.head_due <= :now AND c.head_due IS NOT NULL AND c.mode = 'online' AND o.state = 'pending'
ORDER BY c.head_due, c.head_op
LIMIT :limit
"""
"""Per leg mirrored live (its card is on someone's screen, or is about to be) its head, when it may go now (see
``HEAD_DUE``), the longest due first: these go first."""

READY_OFFLINE_HEADS = """
SELECT o.*, c.call_id, c.mode, c.state AS call_state, c.ended_at, c.head_due AS due,
       c.pbx_call, c.linkedid, c.line
FROM calls c INDEXED BY calls_offline_due JOIN operations o ON o.id = c.head_op
WHERE c.head_due <= :now AND c.head_due IS NOT NULL AND c.mode = 'offline' AND o.state = 'pending'
ORDER BY c.head_due, c.head_op
LIMIT :limit
"""
"""The same for the other legs (a leg is ``online`` or ``offline``: every leg's head is in one of the two)."""

READY_LOOSE = """
SELECT o.*, CAST(NULL AS TEXT) AS call_id, CAST(NULL AS TEXT) AS mode, CAST(NULL AS TEXT) AS call_state,
       CAST(NULL AS REAL) AS ended_at, o.next_attempt_at AS due,
       o.of_call AS pbx_call, o.of_linkedid AS linkedid, o.of_line AS line
FROM operations o INDEXED BY operations_loose_due
WHERE o.crm_leg IS NULL AND o.state = 'pending' AND o.next_attempt_at <= :now
ORDER BY o.next_attempt_at, o.id
LIMIT :limit
"""
"""Operations that belong to no call (tasks, notices): each goes on its own."""

DUE_HEADS = f"""
SELECT 1 AS part, live.* FROM ({READY_LIVE_HEADS}) live
UNION ALL SELECT 2 AS part, legs.* FROM ({READY_OFFLINE_HEADS}) legs
UNION ALL SELECT 3 AS part, loose.* FROM ({READY_LOOSE}) loose
"""
"""The three in one statement (``part`` says which; each part's order is restored by the reader)."""

# INDEXED BY: without statistics (no ANALYZE) SQLite would pick a wider index and read the whole backlog.

# A head in flight is no longer due: SQLite's claim leaves its head_due as it was (see ``mark_sent``), so what reads
# the due heads looks at the operation's state too (PostgreSQL's claim clears the head_due as well).
NEXT_LIVE_DUE = """
SELECT c.head_due FROM calls c INDEXED BY calls_online_due JOIN operations o ON o.id = c.head_op
WHERE c.head_due IS NOT NULL AND c.mode = 'online' AND o.state = 'pending' ORDER BY c.head_due LIMIT 1
"""
NEXT_OFFLINE_DUE = """
SELECT c.head_due FROM calls c INDEXED BY calls_offline_due JOIN operations o ON o.id = c.head_op
WHERE c.head_due IS NOT NULL AND c.mode = 'offline' AND o.state = 'pending' ORDER BY c.head_due LIMIT 1
"""
NEXT_LOOSE_DUE = """
SELECT MIN(next_attempt_at) FROM operations INDEXED BY operations_loose_due WHERE crm_leg IS NULL AND state = 'pending'
"""

CLAIM = """
WITH claimed AS (
    SELECT id FROM operations WHERE id = ANY(?) AND state = 'pending' ORDER BY id FOR UPDATE SKIP LOCKED
), marked AS (
    UPDATE operations o SET state = 'sent', attempts = o.attempts + 1, tries = o.tries + 1, sent_by = ?
    FROM claimed WHERE o.id = claimed.id
    RETURNING o.id, o.crm_leg
), in_flight AS (
    UPDATE calls c SET head_due = NULL FROM marked WHERE c.crm_leg = marked.crm_leg AND c.head_op = marked.id
)
SELECT id FROM marked
"""
"""PostgreSQL only: of these operations, those no other sender holds or has claimed (see ``mark_sent``), marked
``sent`` and no longer due as their legs' heads: one statement (one round trip, atomic by itself)."""

_UPSERT = """
INSERT INTO calls (crm_leg, linkedid, pbx_call, line, created_at, updated_at, bridge{columns})
VALUES (?, ?, ?, ?, ?, ?, ?{values})
ON CONFLICT (crm_leg) DO UPDATE SET
    linkedid = CASE WHEN excluded.linkedid != '' THEN excluded.linkedid ELSE calls.linkedid END,
    pbx_call = CASE WHEN excluded.pbx_call != '' THEN excluded.pbx_call ELSE calls.pbx_call END,
    line = CASE WHEN calls.line = ''{line} THEN excluded.line ELSE calls.line END{updates}
"""

UPSERT_CALL = _UPSERT.format(columns="", values="", line="", updates="")
"""A leg's call row, created or given the bridge's call's names (a name already known stays unless a new one is
given; a line, only while it has none): one statement."""

_ORIGIN = """
RETURNING mode, ended_at, (
    SELECT o.state FROM operations o WHERE o.crm_leg = calls.crm_leg AND o.kind IN ('register', 'adopt')
    ORDER BY o.seq LIMIT 1) AS origin_state
"""
"""What an operation naming the CALL_ID needs to know of its leg, read by the upsert itself: the call row's mode and
end, and the state of its first register (or adoption)."""

UPSERT_CALL_ORIGIN = UPSERT_CALL.rstrip() + _ORIGIN


def _upsert_origin(columns: tuple[str, ...], line: str, returning: str = "") -> str:
    """``UPSERT_CALL_ORIGIN`` that also writes ``columns`` (one more ``?`` each, after the call's names); ``line``:
    what more lets the given line replace the row's (SQL, with its own parameters); ``returning``: more it returns."""
    return (
        _UPSERT.format(
            columns="".join(f", {c}" for c in columns),
            values=", ?" * len(columns),
            line=line,
            updates="".join(f",\n    {c} = excluded.{c}" for c in columns),
        ).rstrip()
        + _ORIGIN.rstrip()
        + returning
    )


UPSERT_REGISTER = _upsert_origin(("phone", "call_type", "started_at", "started_ts", "user_id"), " OR ? != ''")
"""``UPSERT_CALL`` for a register, with what it says about the call (its own line, when it names one, wins; the
parameters end with that line once more)."""

UPSERT_FINISH = _upsert_origin(
    ("user_id", "duration", "status_code", "ended_at", "answered_at"),
    "",
    """, EXISTS (
    SELECT 1 FROM operations o WHERE o.crm_leg = calls.crm_leg AND o.state = 'pending' AND o.kind = 'show'
) AS shows_waiting
""",
)
"""``UPSERT_CALL_ORIGIN`` for a finish, with the call's end; it also tells whether a show of the leg waits to be sent
(``SKIP_PENDING_SHOWS`` has nothing to do when none does: most calls' cards went out long before their end)."""

ORIGIN_ERROR = """
SELECT last_error FROM operations WHERE crm_leg = ? AND kind IN ('register', 'adopt') ORDER BY seq LIMIT 1
"""
"""Why a leg's first register failed (read only when it did)."""

CLAIM_SQLITE = """
UPDATE operations SET state = 'sent', attempts = attempts + 1, tries = tries + 1, sent_by = ? WHERE id IN ({ids})
"""
"""SQLite: operations marked ``sent`` (``{ids}``: one ``?`` per operation), one statement committed by itself. Their
legs' ``head_due`` stays as it was until the leg's next refresh: the readers of due heads skip a head that is not
``pending`` (a second statement that cleared it cost more than what reads skip: a few heads in flight at most)."""

LATER_OPEN_OPS = f"SELECT id, kind FROM operations WHERE crm_leg = ? AND seq > ? AND state IN {OPEN} ORDER BY seq"

DOUBT_UNSETTLED = f"""
UPDATE operations SET attempts = 1
WHERE state IN {OPEN} AND kind IN ('register', 'finish') AND attempts = 0
"""
"""After the machine restarted under a sender: any register or finish not yet done may have been sent (its
``sent`` mark may be what the power cut took), so it is checked before it goes out."""

SKIP_PENDING_SHOWS = """
UPDATE operations SET state = 'done', note = ?, done_at = ?
WHERE crm_leg = ? AND state = 'pending' AND kind = 'show'
"""

# A leg's register is its first operation: while it is pending it is the leg's head, and an online leg's pending
# head is due, so the live legs' due heads (calls_online_due: the few with something to send, not every call in
# progress) hold every online register still waiting.
WAITING_REGISTERS = """
SELECT c.crm_leg, o.created_at FROM calls c INDEXED BY calls_online_due JOIN operations o ON o.id = c.head_op
WHERE c.head_due IS NOT NULL AND c.mode = 'online' AND c.state IN ('open', 'ended')
  AND o.kind = 'register' AND o.state = 'pending'
"""
"""The online legs whose register waits to be sent (a few: those not sent yet, or waiting for a retry), with when
each was journaled."""

OLDEST_ONLINE_REGISTER = """
SELECT MIN(o.created_at) FROM calls c INDEXED BY calls_online_due JOIN operations o ON o.id = c.head_op
WHERE c.head_due IS NOT NULL AND c.mode = 'online' AND c.state IN ('open', 'ended')
  AND o.kind = 'register' AND o.state = 'pending'
"""

NEXT_DUE = f"""
SELECT ({NEXT_LIVE_DUE.strip()}), ({NEXT_OFFLINE_DUE.strip()}), ({NEXT_LOOSE_DUE.strip()}),
       ({OLDEST_ONLINE_REGISTER.strip()})
"""
"""The four times ``next_due`` weighs, in one statement (the delivery asks before every wait)."""

_FIRST_OPEN = f"FROM operations o WHERE o.crm_leg = calls.crm_leg AND o.state IN {OPEN} ORDER BY o.seq LIMIT 1"

HEAD_OP = f"(SELECT o.id {_FIRST_OPEN})"

HEAD_DUE = f"""(SELECT CASE WHEN o.state = 'pending' AND CASE
        WHEN o.kind = 'register' THEN calls.mode = 'online' OR calls.ended_at IS NOT NULL
        WHEN o.kind IN {NAMES_CALL_ID} THEN calls.call_id IS NOT NULL
        ELSE 1 = 1 END
    THEN o.next_attempt_at END {_FIRST_OPEN})"""
"""When the leg's head may go: it is ``pending`` (not in flight; a claim on SQLite leaves the value until the next
refresh, see ``CLAIM_SQLITE``), and a register of an offline call waits for the
call's end, anything naming the CALL_ID for the CALL_ID. NULL when it may not go yet."""

REFRESH_HEADS = f"UPDATE calls SET head_op = {HEAD_OP}, head_due = {HEAD_DUE} WHERE state IN ('open', 'ended')"
"""Every unsettled leg's head at once (after a bulk change of operations: a restart, Bitrix24 back)."""

_REFRESH = f"""
UPDATE calls SET updated_at = {{now}}, head_op = {HEAD_OP}, head_due = {HEAD_DUE}, state = CASE
    WHEN ended_at IS NULL THEN 'open'
    WHEN EXISTS (SELECT 1 FROM operations WHERE crm_leg = calls.crm_leg AND state IN {OPEN}) THEN 'ended'
    WHEN EXISTS (SELECT 1 FROM operations WHERE crm_leg = calls.crm_leg AND state = 'failed'
                 AND kind NOT IN ('show', 'hide')) THEN 'failed'
    ELSE 'done' END
"""
_STAYS_OPEN = "ended_at IS NULL AND state = 'open'"
"""A leg whose state the refresh leaves as it is (``open`` until its end is journaled)."""
_REFRESH_HEAD = (  # by the primary key: SQLite would rather read every open call through calls_state
    f"UPDATE calls INDEXED BY sqlite_autoindex_calls_1 SET updated_at = {{now}}, head_op = {HEAD_OP},"
    f" head_due = {HEAD_DUE}\n"
)

REFRESH_CALL = _REFRESH.format(now=":now") + "WHERE crm_leg = :leg"
"""The leg's head (see ``HEAD_DUE``) and state: ``open`` until the end is journaled; then ``ended`` while anything is
outstanding; then ``failed`` if a register/finish/attachRecord failed (a lost card does not fail the call), else
``done``. Run after every change to a leg's operations or call row (once per transaction, before its commit: see
``JournalMarks._refresh_call``), when ``REFRESH_OPEN_CALL`` found the leg ended."""

REFRESH_OPEN_CALL = _REFRESH_HEAD.format(now=":now") + f"WHERE crm_leg = :leg AND {_STAYS_OPEN}"
"""``REFRESH_CALL`` for a leg still ``open`` (most refreshes): its head alone. A column an UPDATE sets is written to
each index on it even when its value stays (SQLite deletes and inserts the index entry): setting ``state`` cost a
page of ``calls_state`` at every refresh."""

REFRESH_CALLS = _REFRESH.format(now="?") + f"WHERE crm_leg IN ({{legs}}) AND NOT ({_STAYS_OPEN})"
"""``REFRESH_CALL`` for several legs in one statement (``{legs}``: one ``?`` per leg, after the time), those that
``REFRESH_OPEN_CALLS`` leaves."""

REFRESH_OPEN_CALLS = _REFRESH_HEAD.format(now="?") + f"WHERE crm_leg IN ({{legs}}) AND {_STAYS_OPEN}"
"""``REFRESH_OPEN_CALL`` for several legs."""


@functools.lru_cache(maxsize=64)
def refresh_calls(count: int) -> tuple[str, str]:
    """``REFRESH_OPEN_CALLS`` and ``REFRESH_CALLS`` for ``count`` legs (the texts built once per length)."""
    legs = ", ".join("?" * count)
    return REFRESH_OPEN_CALLS.format(legs=legs), REFRESH_CALLS.format(legs=legs)


OPEN_FOLLOWERS = f"SELECT * FROM operations WHERE crm_leg IN ({{legs}}) AND state IN {OPEN} ORDER BY crm_leg, seq"
"""The open operations of several legs (``{legs}``: one ``?`` per leg), each leg's in order: the followers of
their heads, read in one statement (the caller keeps those behind each head)."""

DONE_MANY = """
UPDATE operations o SET state = 'done', result = u.result, note = u.note, done_at = ?
FROM unnest(CAST(? AS BIGINT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[])) AS u(id, result, note)
WHERE o.id = u.id
RETURNING o.id, o.crm_leg
"""
"""PostgreSQL only: several operations done, each with its answer and note, in one statement."""

CALL_IDS_MANY = """
UPDATE calls c SET call_id = u.call_id FROM unnest(CAST(? AS TEXT[]), CAST(? AS TEXT[])) AS u(crm_leg, call_id)
WHERE c.crm_leg = u.crm_leg
"""
"""PostgreSQL only: several legs' CALL_IDs in one statement (one row per leg)."""

POSSIBLY_SHOWN = """
SELECT crm_leg, command FROM operations WHERE crm_leg IN ({legs}) AND kind = 'show' AND (attempts > 0 OR state = 'sent')
ORDER BY crm_leg, seq
"""
"""Shows of these legs (``{legs}``: one ``?`` per leg) that may have reached Bitrix24: sent at least once (attempts
that provably never left do not count)."""

SKIP_PENDING_CARDS = """
UPDATE operations SET state = 'done', note = ?, done_at = ?
WHERE crm_leg IN ({legs}) AND state = 'pending' AND kind IN ('show', 'hide')
"""
