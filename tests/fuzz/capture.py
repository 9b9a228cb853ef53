"""Capture what the bridge logs, as the daemon renders it (JSON lines, secrets redacted), during a fuzz test."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import structlog

from bridge import logs


class LogCapture:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def clear(self) -> None:
        self.stream.seek(0)
        self.stream.truncate()

    def lines(self) -> list[dict[str, Any]]:
        """Every line, parsed; a line that is not one JSON object fails the test."""
        # "\n" only: a JSON string may hold U+0085 or U+2028, which str.splitlines() would also split at
        parsed = [json.loads(line) for line in self.stream.getvalue().split("\n") if line]
        assert all(isinstance(line, dict) for line in parsed)
        return parsed

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]

    def texts(self) -> list[str]:
        """Every string in the captured lines, keys included, decoded from JSON (so escapes are undone)."""
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, str):
                found.append(value)
            elif isinstance(value, dict):
                for key, item in value.items():
                    found.append(str(key))
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        for line in self.lines():
            walk(line)
        return found

    def leaks(self, secret: str) -> list[str]:
        """The captured strings that show ``secret``: raw, as Python's ``repr`` escapes it, or percent-encoded."""
        shown = {secret, repr(secret)[1:-1], quote(secret, safe="")}
        return [text for text in self.texts() if any(form in text for form in shown)]


@contextmanager
def captured_logs() -> Iterator[LogCapture]:
    """Configure the bridge's own logging into a buffer; restore the previous configuration afterwards."""
    previous = structlog.get_config()
    stream = io.StringIO()
    logs.configure(json=True, level="debug", stream=stream)
    try:
        yield LogCapture(stream)
    finally:
        structlog.configure(**previous)
        logs.clear_secrets()
