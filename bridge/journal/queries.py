"""The journal's longer SQL statements, kept apart so that ``store.py`` reads as the rules."""

from __future__ import annotations

OPEN = "('pending', 'sent')"

HEADS = f"""
SELECT o.*, c.call_id, c.mode, c.state AS call_state, c.ended_at
FROM operations o LEFT JOIN calls c ON c.crm_leg = o.crm_leg
WHERE o.state IN {OPEN}
  AND (o.crm_leg IS NULL
       OR o.seq = (SELECT MIN(p.seq) FROM operations p WHERE p.crm_leg = o.crm_leg AND p.state IN {OPEN}))
ORDER BY o.created_at, o.id
"""
"""Per leg the first operation not yet settled, plus every open operation that belongs to no call."""

FOLLOWERS = "SELECT * FROM operations WHERE crm_leg = ? AND seq > ? ORDER BY seq"

LATER_OPEN_OPS = f"SELECT id, kind FROM operations WHERE crm_leg = ? AND seq > ? AND state IN {OPEN} ORDER BY seq"

SKIP_PENDING_SHOWS = """
UPDATE operations SET state = 'done', note = ?, done_at = ?
WHERE crm_leg = ? AND state = 'pending' AND kind = 'show'
"""

SKIP_PENDING_CARDS = """
UPDATE operations SET state = 'done', note = ?, done_at = ?
WHERE crm_leg = ? AND state = 'pending' AND kind IN ('show', 'hide')
"""

STALE_REGISTERS = """
SELECT c.crm_leg FROM calls c JOIN operations o ON o.crm_leg = c.crm_leg
WHERE c.mode = 'online' AND o.kind = 'register' AND o.state = 'pending' AND o.created_at <= ?
"""

OLDEST_ONLINE_REGISTER = """
SELECT MIN(o.created_at) FROM operations o JOIN calls c ON c.crm_leg = o.crm_leg
WHERE c.mode = 'online' AND o.kind = 'register' AND o.state = 'pending'
"""

REFRESH_CALL_STATE = f"""
UPDATE calls SET updated_at = :now, state = CASE
    WHEN ended_at IS NULL THEN 'open'
    WHEN EXISTS (SELECT 1 FROM operations WHERE crm_leg = :leg AND state IN {OPEN}) THEN 'ended'
    WHEN EXISTS (SELECT 1 FROM operations WHERE crm_leg = :leg AND state = 'failed'
                 AND kind NOT IN ('show', 'hide')) THEN 'failed'
    ELSE 'done' END
WHERE crm_leg = :leg
"""
"""``open`` until the end is journaled; then ``ended`` while anything is outstanding; then ``failed`` if a
register/finish/attachRecord failed (a lost card does not fail the call), else ``done``."""
