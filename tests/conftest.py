"""Every test starts with logging as a fresh process has it.

``b24-bridge`` commands run in a test (``main([...])``) configure structlog and the root logger to write to the
stream they were given, which pytest's capture closes after the test; a later test that logs would then fail
with "I/O operation on closed file" depending on the order the tests ran in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _logging_as_a_fresh_process() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level
