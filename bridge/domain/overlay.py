"""A read-only mapping made of a base that many calls share and a few changes of one call's own on top.

Every call starts with the shell's view of every agent (availability, answered today): with 2,000 agents a copy per
call was about 100 KiB of RAM a call and a copy of 2,000 entries at every device change a call recorded. An
:class:`Overlay` shares its base with the other calls started from the same view and keeps only what changed
since, so a call's memory and a change's cost follow the changes it saw, not the size of the call centre.

The base is never changed once handed to an :class:`Overlay` (the shell keeps its own copy to write to)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
_MISSING = object()

FLATTEN_AT = 64
"""Own changes beyond this (and beyond a quarter of the base) are folded into a base of the call's own."""


class Overlay(Mapping[K, V]):
    __slots__ = ("_base", "_own")

    def __init__(self, base: Mapping[K, V], own: Mapping[K, V] | None = None) -> None:
        self._base = base
        self._own: Mapping[K, V] = own or {}

    def __getitem__(self, key: K) -> V:
        own = self._own.get(key, _MISSING)
        if own is not _MISSING:
            return own  # type: ignore[return-value]
        return self._base[key]

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V | T, /) -> V | T: ...
    def get(self, key: K, default: object = None) -> object:
        own = self._own.get(key, _MISSING)
        if own is not _MISSING:
            return own
        return self._base.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._own or key in self._base

    def __iter__(self) -> Iterator[K]:
        yield from self._base
        yield from (key for key in self._own if key not in self._base)

    def __len__(self) -> int:
        return len(self._base) + sum(1 for key in self._own if key not in self._base)

    @property
    def own(self) -> Mapping[K, V]:
        """The changes kept on top of the shared base (read only)."""
        return self._own

    def layers(self) -> tuple[Mapping[K, V], Mapping[K, V]]:
        """``(own, base)``: a key's value is ``own[key]`` if ``key in own``, else ``base``'s (for a caller that reads
        many keys in a loop, without a method call for each)."""
        return self._own, self._base

    def __repr__(self) -> str:
        return f"Overlay({dict(self)!r})"

    def updated(self, changes: Mapping[K, V]) -> Overlay[K, V]:
        """A new overlay with ``changes`` on top (this one is unchanged)."""
        own = {**self._own, **changes}
        if len(own) > FLATTEN_AT and len(own) * 4 > len(self._base):
            return Overlay({**self._base, **own})
        return Overlay(self._base, own)


def held(view: Mapping[K, V]) -> Overlay[K, V]:
    """``view`` as a call keeps it: an :class:`Overlay` as is (its base is shared and never changed), any other
    mapping copied (its owner may change it later)."""
    if isinstance(view, Overlay):
        return view
    return Overlay(dict(view))


def with_changes(view: Mapping[K, V], changes: Mapping[K, V]) -> Mapping[K, V]:
    """``view`` with ``changes`` on top, sharing what did not change."""
    return held(view).updated(changes)
