"""A call's view of every agent (availability, answered today) shares its base with the other calls and keeps only
its own changes; it reads, iterates and compares exactly as the plain dictionary it replaced, and nothing the shell
or another call changes later shows through."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.domain.overlay import FLATTEN_AT, Overlay, held, with_changes

exts = st.sampled_from([f"10{n:02d}" for n in range(40)])
views = st.dictionaries(exts, st.integers(0, 3))


@given(base=views, steps=st.lists(views, max_size=6))
def test_an_overlay_reads_as_the_dictionary_it_replaced(base: dict[str, int], steps: list[dict[str, int]]) -> None:
    plain, view = dict(base), held(base)
    for changes in steps:
        plain, view = {**plain, **changes}, with_changes(view, changes)
    assert view == plain and dict(view) == plain and len(view) == len(plain)
    assert sorted(view) == sorted(plain) and sorted(view.items()) == sorted(plain.items())
    for ext in [f"10{n:02d}" for n in range(41)]:
        assert (ext in view) == (ext in plain)
        assert view.get(ext) == plain.get(ext) and view.get(ext, -1) == plain.get(ext, -1)
    assert repr(view) == f"Overlay({plain!r})"
    own, base = view.layers()
    assert own is view.own
    for ext in [f"10{n:02d}" for n in range(41)]:  # the layers read as the view (what the dispatcher's loops do)
        assert (own[ext] if ext in own else base.get(ext, -1)) == plain.get(ext, -1)


def test_what_the_owner_changes_later_does_not_show_through() -> None:
    shells_view = {"1001": 0, "1002": 1}
    kept = held(shells_view)
    shells_view["1001"] = 5
    assert kept == {"1001": 0, "1002": 1}, "a plain mapping is copied: its owner may change it"
    assert held(kept) is kept, "an overlay is kept as is: its base is never changed"


def test_a_change_leaves_the_earlier_view_and_the_shared_base_alone() -> None:
    base = {"1001": 0, "1002": 1}
    first = Overlay(base)
    second = first.updated({"1001": 2})
    assert first == base and second == {"1001": 2, "1002": 1} and base == {"1001": 0, "1002": 1}
    assert second["1001"] == 2 and second["1002"] == 1


def test_many_own_changes_fold_into_a_base_of_the_calls_own() -> None:
    small = Overlay({"1001": 0}).updated({f"2{n:03d}": n for n in range(FLATTEN_AT + 1)})
    assert small == {"1001": 0, **{f"2{n:03d}": n for n in range(FLATTEN_AT + 1)}}
    big_base = {f"3{n:03d}": 0 for n in range(8 * FLATTEN_AT)}
    shared = Overlay(big_base).updated({f"2{n:03d}": n for n in range(FLATTEN_AT + 1)})
    assert shared == {**big_base, **{f"2{n:03d}": n for n in range(FLATTEN_AT + 1)}}
