"""The shell's kept views (availability, answered today) hand every new call a snapshot that later changes never
reach, however the view was written since: a change, a fold of many changes, an extension dropped."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.dispatch.kept import FOLD_AT, KeptView

exts = st.sampled_from([f"10{n:03d}" for n in range(2 * FOLD_AT)])
writes = st.lists(st.tuples(st.booleans(), exts, st.integers(0, 2)), max_size=4 * FOLD_AT)


@given(writes=writes)
def test_a_snapshot_stays_as_it_was_taken(writes: list[tuple[bool, str, int]]) -> None:
    view: KeptView[str, int] = KeptView({"1001": 1})
    plain = {"1001": 1}
    taken: list[tuple[dict[str, int], object]] = []
    for n, (drop, ext, value) in enumerate(writes):
        if drop:
            view.drop(ext)
            plain.pop(ext, None)
        else:
            view.set(ext, value)
            plain[ext] = value
        if n % 7 == 0:
            taken.append((dict(plain), view.snapshot()))
    assert dict(view) == plain and len(view) == len(plain) and dict(view.snapshot()) == plain
    since, base = view.layers()
    for ext in [f"10{n:03d}" for n in range(2 * FOLD_AT + 1)]:  # the layers read as the view (device views' loop)
        assert (since[ext] if ext in since else base.get(ext, -1)) == plain.get(ext, -1) == view.get(ext, -1)
    for expected, snapshot in taken:
        assert snapshot == expected


def test_an_unchanged_view_hands_out_the_same_snapshot() -> None:
    view: KeptView[str, int] = KeptView()
    view.set("1001", 1)
    first = view.snapshot()
    view.set("1001", 1)
    assert view.snapshot() is first, "writing the same value changes nothing"
    view.set("1001", 2)
    assert view.snapshot() is not first and first == {"1001": 1} and view.snapshot() == {"1001": 2}
    view.drop("1999")
    assert view.snapshot() == {"1001": 2}


def test_many_changes_fold_and_the_snapshots_before_stay() -> None:
    view: KeptView[str, int] = KeptView()
    before = view.snapshot()
    for n in range(3 * FOLD_AT):
        view.set(f"2{n:03d}", n)
    assert before == {} and view.snapshot() == {f"2{n:03d}": n for n in range(3 * FOLD_AT)}
