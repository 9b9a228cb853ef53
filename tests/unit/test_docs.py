"""The README's call state diagram is generated from the core's tables and must not drift from them."""

from __future__ import annotations

from pathlib import Path

from bridge.docs import BEGIN, END, render_block, state_diagram, update_readme
from bridge.domain.state import MOVES, State

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_diagram_matches_the_transition_table() -> None:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert block == render_block(), "run `python -m bridge.docs` to regenerate the README diagram"


def test_every_legal_move_is_drawn() -> None:
    diagram = state_diagram()
    for source, targets in MOVES.items():
        for target in targets:
            assert f"    {source.value} --> {target.value}\n" in diagram
    assert all(f"note right of {s.value}:" in diagram for s in State if s is not State.DONE)


def test_update_rewrites_only_the_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{BEGIN}\nold\n{END}\n\ntail\n", encoding="utf-8")
    assert update_readme(readme)
    assert readme.read_text(encoding="utf-8") == f"# x\n\n{render_block()}\n\ntail\n"
    assert not update_readme(readme)
