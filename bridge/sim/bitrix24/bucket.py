"""Bitrix24's two limits: the per-portal leaky bucket and the per-method operating-time budget."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]

# Plan limits from the reference (DOCS limits.md): drain per second (Y) and capacity (X).
PLAN_LIMITS: dict[str, tuple[float, float]] = {"standard": (2.0, 50.0), "enterprise": (5.0, 250.0)}

BASKET_SECONDS = 60.0
BASKETS = 10


class LeakyBucket:
    """Each request adds 1; the level drains by ``rate`` per second; a request that would lift it above
    ``capacity`` is refused and adds nothing."""

    def __init__(self, rate: float, capacity: float, clock: Clock) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._level = 0.0
        self._updated = clock()

    def _drain(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._updated) * self.rate)
        self._updated = now

    def try_add(self) -> bool:
        self._drain()
        if self._level + 1.0 > self.capacity:
            return False
        self._level += 1.0
        return True

    @property
    def level(self) -> float:
        self._drain()
        return self._level

    def reset(self) -> None:
        self._level = 0.0
        self._updated = self._clock()


class OperatingBudget:
    """Seconds of work per method over ten one-minute baskets; ``limit=None`` switches blocking off."""

    def __init__(self, limit: float | None, clock: Clock) -> None:
        self.limit = limit
        self._clock = clock
        self._baskets: dict[str, dict[int, float]] = {}

    def _window(self, method: str) -> dict[int, float]:
        current = int(self._clock() // BASKET_SECONDS)
        baskets = self._baskets.setdefault(method, {})
        for stale in [index for index in baskets if index <= current - BASKETS]:
            del baskets[stale]
        return baskets

    def used(self, method: str) -> float:
        return sum(self._window(method).values())

    def blocked(self, method: str) -> bool:
        return self.limit is not None and self.used(method) >= self.limit

    def charge(self, method: str, seconds: float) -> None:
        current = int(self._clock() // BASKET_SECONDS)
        baskets = self._window(method)
        baskets[current] = baskets.get(current, 0.0) + seconds

    def seconds_to_reset(self, method: str) -> float:
        """Seconds until the oldest basket in use for ``method`` leaves the window."""
        baskets = self._window(method)
        now = self._clock()
        oldest = min(baskets) if baskets else int(now // BASKET_SECONDS)
        return max(0.0, (oldest + BASKETS) * BASKET_SECONDS - now)

    def reset(self) -> None:
        self._baskets.clear()
