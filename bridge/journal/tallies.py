"""Distribution counts kept in the journal's ``tallies`` table (schema 7), so that a restart does not reset them:
the calls each extension answered today (``evenly``) and the last manager each lead distribution chose (round
robin). Small and apart from the outbox on purpose: three statements over one connection. An answered count goes
with the journal's next commit (within a moment: ``JournalMarks.with_next_commit``), not in a commit of its own.
Since schema 12 the table is keyed per PBX too (a shared journal's, :mod:`.shared_tallies`); an SQLite journal's
PBX is ''."""

from __future__ import annotations

from bridge.journal.blocking import Journal

ANSWERED = "answered"
LEAD = "lead:"
SAVE = (
    "INSERT INTO tallies (scope, member, day, count, updated_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (pbx, scope, member) DO UPDATE SET day = excluded.day, count = excluded.count,"
    " updated_at = excluded.updated_at"
)


class JournalTallies:
    """The tallies of one journal (:class:`bridge.dispatch.tallies.TallyStore`)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def answered_on(self, day: str) -> dict[str, int]:
        rows = self.journal._x("SELECT member, count FROM tallies WHERE scope = ? AND day = ?", (ANSWERED, day))
        return {row["member"]: int(row["count"]) for row in rows.fetchall()}

    def save_answered(self, ext: str, day: str, count: int) -> None:
        self._upsert(ANSWERED, ext, day, count)

    def last_assigned(self) -> dict[str, tuple[str, ...]]:
        """Lead distribution -> its managers in the order they last got a lead (the most recent last)."""
        rows = self.journal._x(
            "SELECT scope, member FROM tallies WHERE scope LIKE 'lead:%' ORDER BY updated_at, rowid"
        ).fetchall()
        order: dict[str, tuple[str, ...]] = {}
        for row in rows:
            name = row["scope"][len(LEAD) :]
            order[name] = (*order.get(name, ()), row["member"])
        return order

    def save_assigned(self, distribution: str, ext: str) -> None:
        with self.journal.transaction():
            self.journal._x(
                "INSERT INTO tallies (scope, member, count, updated_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (pbx, scope, member) DO UPDATE SET count = count + 1, updated_at = excluded.updated_at",
                (LEAD + distribution, ext, self.journal._clock()),
            )

    def _upsert(self, scope: str, member: str, day: str, count: int) -> None:
        self.journal.aio.with_next_commit(SAVE, (scope, member, day, count, self.journal._clock()))
