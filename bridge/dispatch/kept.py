"""A view the shell keeps up to date (every agent's availability, the calls each answered today) and hands to every
new call: as an :class:`~bridge.domain.overlay.Overlay` over a base that calls share, so that a call costs memory
for the changes since the base was folded, not for every agent of the call centre."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar, overload

from bridge.domain.overlay import Overlay

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
_MISSING = object()

FOLD_AT = 64
"""Changes kept beside the base before they are folded into a new one. A new call copies up to this many; every
base still held by a call in progress is a whole copy: 64 keeps both small with thousands of agents."""


class KeptView(Mapping[K, V], Generic[K, V]):
    """A mapping the shell writes with :meth:`set` and :meth:`drop`; :meth:`snapshot` is what a new call keeps.

    The base is replaced, never changed, once a snapshot may hold it."""

    def __init__(self, start: Mapping[K, V] | None = None) -> None:
        self._base: dict[K, V] = dict(start or {})
        self._since: dict[K, V] = {}
        self._handed: Overlay[K, V] | None = None

    def __getitem__(self, key: K) -> V:
        if key in self._since:
            return self._since[key]
        return self._base[key]

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V | T, /) -> V | T: ...
    def get(self, key: K, default: object = None) -> object:
        """As ``Mapping.get``, without its ``__getitem__`` and ``KeyError`` (device views read every change here)."""
        since = self._since
        if key in since:
            return since[key]
        return self._base.get(key, default)

    def __iter__(self) -> Iterator[K]:
        yield from self._base
        yield from (key for key in self._since if key not in self._base)

    def __len__(self) -> int:
        return len(self._base) + sum(1 for key in self._since if key not in self._base)

    def layers(self) -> tuple[Mapping[K, V], Mapping[K, V]]:
        """``(since, base)``: a key's value is ``since[key]`` if ``key in since``, else ``base``'s (read only; for a
        caller that reads many keys in a loop, without a method call for each)."""
        return self._since, self._base

    def set(self, key: K, value: V) -> None:
        since = self._since
        if (since[key] if key in since else self._base.get(key, _MISSING)) is value:
            return
        self._since[key] = value
        self._handed = None
        if len(self._since) > FOLD_AT:
            self._fold()

    def drop(self, key: K) -> None:
        if key in self:
            self._fold()
            del self._base[key]  # a fresh base, not yet handed out

    def snapshot(self) -> Overlay[K, V]:
        """The view now, for a new call to keep (the same object until the view changes)."""
        if self._handed is None:
            self._handed = Overlay(self._base, dict(self._since))
        return self._handed

    def _fold(self) -> None:
        self._base = {**self._base, **self._since}
        self._since = {}
        self._handed = None
