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

from tests.pgserver import PASSWORD, PgServer, ServerMissing


@pytest.fixture(autouse=True)
def _logging_as_a_fresh_process() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the session (see tests/pgserver.py), started on first use."""
    try:
        server = PgServer.start()
    except ServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database on the session's server, as ``[journal] url`` names it (no password in it); the password
    is in the environment as ``B24_TEST_PG_PASSWORD`` (``password_env``), the way a site passes a secret."""
    monkeypatch.setenv("B24_TEST_PG_PASSWORD", PASSWORD)
    return pg_server.url(pg_server.create_database())
