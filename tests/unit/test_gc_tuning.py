"""The daemon's garbage-collector tuning: what start-up made is frozen out of collections, young ones are rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bridge.ops.gc_tuning import YOUNG_THRESHOLD, tune_after_startup


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_start_up_objects_are_frozen_and_young_collections_come_less_often(restored_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    survivor = [{"config": i} for i in range(1000)]  # what start-up leaves alive
    tune_after_startup()
    assert gc.get_freeze_count() >= len(survivor)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    gc.collect()
    assert len(gc.get_objects(generation=2)) < len(survivor), "a full collection no longer walks start-up's objects"


def test_a_higher_threshold_already_set_is_kept(restored_gc: None) -> None:
    gc.set_threshold(YOUNG_THRESHOLD * 2, 10, 10)
    tune_after_startup()
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD * 2
