"""Reading a TOML table into typed values: the :class:`Secret` type and the problem-collecting reader.

The reader never stops at the first problem: it records one line per problem, naming the key, and hands back a
default so the rest of the file is still checked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


class Secret:
    """A secret value; prints as ``'***'`` everywhere."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "'***'" if self._value else "''"

    __str__ = __repr__


def is_relative(raw: str) -> bool:
    """A path as written in the config that is neither absolute nor under a home directory."""
    return not raw.startswith(("/", "~"))


class Reader:
    """Reads typed values out of nested TOML tables, collecting problems instead of stopping at the first."""

    def __init__(self, base: Path, env: dict[str, str]) -> None:
        self.problems: list[str] = []
        self.base = base
        self.env = env

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def table(self, data: dict[str, Any], key: str, name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.problem(f"{key}{name}", f"must be a table, got {type(value).__name__}")
            return {}
        return value

    def get(self, data: dict[str, Any], key: str, name: str, kind: type, default: Any) -> Any:
        if name not in data:
            return default
        value = data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problem(f"{key}{name}", f"must be {kind.__name__}, got {type(value).__name__} {value!r}")
            return default
        return value

    def positive(self, data: dict[str, Any], key: str, name: str, kind: type, default: Any) -> Any:
        value = self.get(data, key, name, kind, default)
        if value is not None and (value <= 0 or not math.isfinite(value)):
            self.problem(f"{key}{name}", f"must be a finite number > 0, got {value!r}")
            return default
        return value

    def secret(self, data: dict[str, Any], key: str, name: str, required: bool) -> Secret | None:
        given = [n for n in (name, f"{name}_env", f"{name}_file") if n in data]
        if len(given) > 1:
            self.problem(f"{key}{name}", f"give only one of {', '.join(given)}")
            return None
        if not given:
            if required:
                self.problem(f"{key}{name}", f"missing (set {name}, {name}_env or {name}_file)")
            return None
        which = given[0]
        raw = data[which]
        if not isinstance(raw, str):
            self.problem(f"{key}{which}", "must be a string")
            return None
        if which.endswith("_env"):
            if raw not in self.env:
                self.problem(f"{key}{which}", f"environment variable {raw} is not set")
                return None
            return Secret(self.env[raw])
        if which.endswith("_file"):
            path = self.path(raw, f"{key}{which}")
            try:
                return Secret(path.read_text(encoding="utf-8").strip())
            except OSError as exc:
                self.problem(f"{key}{which}", f"cannot read {path}: {exc.strerror}")
            except (UnicodeDecodeError, ValueError):  # ValueError: a NUL in the path, already reported
                if "\x00" not in raw:
                    self.problem(f"{key}{which}", f"{path} is not UTF-8 text")
            return None
        return Secret(raw)

    def path(self, raw: str, key: str) -> Path:
        if "\x00" in raw:
            self.problem(key, "a path cannot hold a NUL character")
        try:
            path = Path(raw).expanduser()
        except RuntimeError:  # ~user of a user that does not exist
            self.problem(key, f"cannot expand {raw[:60]!r}: no such home directory")
            path = Path(raw)
        return path if path.is_absolute() else self.base / path

    def state_path(self, raw: str, key: str) -> Path:
        """A file the daemon writes (the journal, the token file): a relative path goes into systemd's
        ``StateDirectory`` when the unit runs it (``$STATE_DIRECTORY``; ``/etc`` is read-only there), else next to
        the configuration file like any other path."""
        state = self.env.get("STATE_DIRECTORY", "").split(":")[0]
        path = self.path(raw, key)
        if state and is_relative(raw):
            return Path(state) / raw
        return path

    def unknown(self, data: dict[str, Any], key: str, known: set[str]) -> None:
        for name in data:
            if name not in known:
                self.problem(f"{key}{name}", "unknown key")
