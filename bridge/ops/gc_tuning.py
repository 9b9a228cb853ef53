"""Garbage-collector settings for the long-running daemon: full collections that are rarer and much shorter.

CPython's full collection walks every container object the process holds; in the daemon most of them are made at
start-up (imported modules, the config, the routing plan, the libraries' tables) and live until the end, yet a
full collection walked them all each time: 35-75 ms during which no call event was handled. ``gc.freeze()``
moves everything alive at the end of start-up into a generation that collections skip, and a higher first
threshold makes the young collections (and through them the full ones) rarer; reference cycles are still
collected, from the objects made since.
"""

from __future__ import annotations

import gc

import structlog

log = structlog.get_logger(__name__)

YOUNG_THRESHOLD = 5_000
"""Allocations (minus deallocations) of container objects between two young collections (CPython's is 700)."""


def tune_after_startup() -> None:
    """Call once, when start-up is over: collect what start-up left behind, freeze the rest, raise the threshold."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
    log.debug("gc.tuned", frozen=gc.get_freeze_count(), threshold=gc.get_threshold())
