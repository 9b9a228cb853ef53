"""``replace`` for the core's frozen records, without the cost of :func:`dataclasses.replace`.

The core makes a new :class:`~bridge.domain.state.Call` (30 fields) for nearly every step, and several per event:
:func:`dataclasses.replace` builds keyword arguments for every field and runs ``__init__`` with them (~15 us per
call on the benchmark machine). The records have no ``__post_init__`` and no ``__slots__``, so a copy of the
instance dictionary with the changes over it is the same record (~3 us). A record that validates itself or keeps
slots still goes through :func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_plain: dict[type, frozenset[str] | None] = {}
"""Record class -> its init fields when a dictionary copy is a faithful replace; None when it is not."""


def _fields_of(cls: type) -> frozenset[str] | None:
    """Look ``cls`` up once: its entry in :data:`_plain`."""
    simple = not hasattr(cls, "__post_init__") and not hasattr(cls, "__slots__")
    fields = dataclasses.fields(cls)
    _plain[cls] = frozenset(f.name for f in fields if f.init) if simple and all(f.init for f in fields) else None
    return _plain[cls]


def replace(record: T, /, **changes: Any) -> T:
    """What :func:`dataclasses.replace` returns; a name that is not a field raises :class:`TypeError` as there."""
    cls = type(record)
    names = _plain[cls] if cls in _plain else _fields_of(cls)
    if names is None:
        return dataclasses.replace(record, **changes)  # type: ignore[type-var]
    for name in changes:  # a change or three: a loop makes no call
        if name not in names:
            unknown = sorted(set(changes) - names)
            raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
    new = object.__new__(cls)
    new.__dict__.update(record.__dict__, **changes)  # one call: the changes over the record's fields
    return new
