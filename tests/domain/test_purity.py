"""``bridge/domain/`` is the pure core: it may import the standard library and itself, nothing else, and none
of the standard modules that bring I/O, a clock, randomness or concurrency."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "bridge" / "domain"
IMPURE = frozenset(
    {
        "asyncio",
        "socket",
        "time",
        "random",
        "logging",
        "threading",
        "subprocess",
        "os",
        "io",
        "secrets",
        "selectors",
        "ssl",
        "urllib",
        "http",
        "sqlite3",
        "multiprocessing",
        "concurrent",
        "signal",
        "uuid",
    }
)
"""Standard modules the core must not use either: I/O, a clock, randomness, concurrency."""


def imported(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (``bridge.domain`` for the domain's own)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            names.add(node.module or "")
    return names


def offending(names: set[str]) -> set[str]:
    bad = set()
    for name in names:
        top = name.split(".")[0]
        own = name == "bridge.domain" or name.startswith("bridge.domain.")
        if name != "__future__" and not own and (top not in sys.stdlib_module_names or top in IMPURE):
            bad.add(name)
    return bad


MODULES = sorted(DOMAIN.glob("*.py"))


def test_the_domain_has_its_modules() -> None:
    assert {p.stem for p in MODULES} >= {"call", "status", "observed", "events", "commands", "scheme"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_a_domain_module_imports_only_the_standard_library_and_the_domain(path: Path) -> None:
    assert offending(imported(path)) == set()


def test_the_check_itself_catches_impure_imports() -> None:
    assert offending({"asyncio", "structlog", "bridge.crm.client", "bridge", "time", "dataclasses"}) == {
        "asyncio",
        "structlog",
        "bridge.crm.client",
        "bridge",
        "time",
    }
