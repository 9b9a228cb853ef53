"""Every event name the daemon logs is documented in one place (the table in ``bridge/logs.py``)."""

from __future__ import annotations

import re
from pathlib import Path

import bridge.logs

BRIDGE = Path(bridge.logs.__file__).resolve().parent
LOG_CALL = re.compile(r"\blog\.(?:debug|info|warning|error|exception|critical)\(\s*\"([a-z_]+\.[a-z_]+)\"", re.S)
DOCUMENTED = re.compile(r"^``([a-z_]+\.[a-z_]+)``", re.M)


def logged_events() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in BRIDGE.rglob("*.py"):
        if "sim" in path.relative_to(BRIDGE).parts:
            continue  # the simulators' own logs are not the daemon's
        for name in LOG_CALL.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, path)
    return found


def test_every_logged_event_is_documented() -> None:
    documented = set(DOCUMENTED.findall(bridge.logs.__doc__ or ""))
    missing = {name: str(path.relative_to(BRIDGE)) for name, path in logged_events().items() if name not in documented}
    assert not missing, f"document these in bridge/logs.py: {missing}"


def test_nothing_documented_is_stale() -> None:
    documented = set(DOCUMENTED.findall(bridge.logs.__doc__ or ""))
    assert documented - set(logged_events()) == set()


def test_event_names_are_noun_verb() -> None:
    for name in logged_events():
        noun, verb = name.split(".")
        assert noun and verb and name == name.lower()
