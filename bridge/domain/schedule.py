"""Working hours: a timezone, weekly opening hours, holidays and dated overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

Hours = tuple[tuple[time, time], ...]
"""Opening intervals of one day, each ``[start, end)``; ``end`` of ``00:00`` means midnight."""


@dataclass(frozen=True)
class Schedule:
    id: str
    timezone: str = "UTC"
    weekly: dict[int, Hours] = field(default_factory=dict)
    """ISO weekday (1 = Monday .. 7 = Sunday) -> intervals. A day not listed is closed."""
    holidays: frozenset[date] = frozenset()
    overrides: dict[date, Hours] = field(default_factory=dict)
    """A dated override replaces the weekly hours of that day (an empty tuple closes it)."""

    def hours_on(self, day: date) -> Hours:
        if day in self.overrides:
            return self.overrides[day]
        if day in self.holidays:
            return ()
        return self.weekly.get(day.isoweekday(), ())

    def is_open(self, at: datetime) -> bool:
        """Whether the schedule is open at the aware datetime ``at`` (converted to its timezone)."""
        local = at.astimezone(ZoneInfo(self.timezone))
        now = local.time().replace(tzinfo=None)
        return any(start <= now and (now < end or end == time(0, 0)) for start, end in self.hours_on(local.date()))
