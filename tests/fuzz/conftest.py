"""Fixtures of the fuzz suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.capture import LogCapture, captured_logs


@pytest.fixture
def capture() -> Iterator[LogCapture]:
    """The bridge's own log lines (JSON, secrets redacted) while the test runs; ``capture.clear()`` per example."""
    with captured_logs() as logs:
        yield logs
