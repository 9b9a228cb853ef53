"""``[journal]``: SQLite by default, PostgreSQL by url with its password as a secret; check-config refuses a bad
url with a clear reason (never repeating a password), ``check`` says which backend and whether it answers."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.check import _one, check_journal
from bridge.cli import main
from bridge.config import EXIT_CONFIG, Secret, load_config, parse_settings
from tests.test_config import EXAMPLE, example_data, problems_of

URL = "postgresql://bridge@db.example:5432/b24"


def with_journal(**journal: object) -> dict:
    data = example_data()
    data["journal"] = dict(journal)
    return data


def test_sqlite_is_the_default_and_the_bridge_id_names_the_machine_and_its_pbx() -> None:
    settings = parse_settings(example_data(), path=Path("/etc/b24/bridge.toml"), env={})
    assert settings.journal.backend == "sqlite" and settings.journal.url == ""
    assert settings.journal.bridge_id == f"{socket.gethostname()}/127.0.0.1"


def test_a_postgresql_url_with_its_password_from_the_environment(tmp_path: Path) -> None:
    data = with_journal(url=URL, password_env="B24_JOURNAL_PASSWORD", bridge_id="office-1")
    settings = parse_settings(data, path=tmp_path / "bridge.toml", env={"B24_JOURNAL_PASSWORD": "pg-secret"})
    assert settings.journal.backend == "postgres"
    assert settings.journal.url == URL and settings.journal.bridge_id == "office-1"
    assert settings.journal.password == Secret("pg-secret") and "pg-secret" not in repr(settings)
    secret_file = tmp_path / "pg.pw"
    secret_file.write_text("from-a-file\n")
    data = with_journal(url=URL, password_file=str(secret_file))
    settings = parse_settings(data, path=tmp_path / "bridge.toml", env={})
    assert settings.journal.password is not None and settings.journal.password.reveal() == "from-a-file"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("mysql://bridge@db/b24", "journal.url: must start with postgresql:// (got mysql://)"),
        ("postgresql://bridge@db", "journal.url: names no database"),
        ("postgresql://bridge@/b24", "journal.url: names no host"),
        ("postgresql://db.example/b24", "journal.url: names no user"),
        ("postgresql://bridge@db:port/b24", "journal.url: not a URL"),
        ("postgresql://bridge:hunter2@db/b24", "journal.url: has a password in it: give it as journal.password_env"),
    ],
)
def test_a_bad_url_is_refused_with_the_reason_and_never_the_password(url: str, complaint: str) -> None:
    problems = problems_of(with_journal(url=url))
    assert [p for p in problems if p.startswith("journal.")] == [p for p in problems if complaint in p]
    assert any(complaint in p for p in problems)
    assert all("hunter2" not in p for p in problems)


def test_path_and_url_together_or_a_password_without_url_are_refused() -> None:
    assert problems_of(with_journal(url=URL, path="j.db")) == [
        "journal.path: give either journal.path (SQLite) or journal.url (PostgreSQL), not both"
    ]
    assert problems_of(with_journal(password_env="X"), env={"X": "y"}) == [
        "journal.password: only a PostgreSQL journal (journal.url) has a password"
    ]
    assert problems_of(with_journal(url=URL, password_env="MISSING")) == [
        "journal.password_env: environment variable MISSING is not set"
    ]


def test_check_config_prints_the_url_and_hides_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'path = "b24-bridge.db"', f'url = "{URL}"\npassword_env = "B24_JOURNAL_PASSWORD"'
    )
    path = tmp_path / "bridge.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("B24_JOURNAL_PASSWORD", "pg-secret-123")
    assert main(["check-config", "--config", str(path)]) == 0
    printed = capsys.readouterr()
    assert URL in printed.out and "pg-secret-123" not in printed.out + printed.err
    assert "journal.url" not in printed.err, "run keeps its journal on PostgreSQL: nothing to warn about"
    path.write_text(text.replace(URL, "postgresql://bridge:pg-secret-123@db/b24"), encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "journal.url: has a password in it" in err and "pg-secret-123" not in err


async def test_check_says_which_journal_and_whether_postgresql_answers(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_config(EXAMPLE, env={})
    assert "SQLite journal" in await check_journal(settings)
    good = replace(settings.journal, url=pg_url, password=Secret(os.environ["B24_TEST_PG_PASSWORD"]))
    assert await _one("journal", check_journal, replace(settings, journal=good))
    bad = replace(good, password=Secret("wrong-pg-password"))
    assert not await _one("journal", check_journal, replace(settings, journal=bad))
    ok, fail = capsys.readouterr().out.splitlines()[-2:]
    assert ok.startswith("ok   journal") and f"PostgreSQL journal {pg_url} reached" in ok
    assert fail.startswith("FAIL journal") and "password authentication failed" in fail
    assert "wrong-pg-password" not in fail


def pg_config(tmp_path: Path, pg_url: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'path = "b24-bridge.db"', f'url = "{pg_url}"\npassword_env = "B24_TEST_PG_PASSWORD"\nbridge_id = "office-1"'
    )
    path = tmp_path / "bridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_the_journal_command_lists_a_shared_journal_and_replay_reads_it(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    from bridge.domain.commands import CallType, CrmRegister
    from bridge.journal import AsyncJournal

    journal = await AsyncJournal.open_postgres(pg_url, password=os.environ["B24_TEST_PG_PASSWORD"], bridge="office-2")
    start = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
    await journal.append(CrmRegister("b-1.1", 7, "+79001234567", CallType.INCOMING, "74950000000", start, True))
    await journal.close()
    path = pg_config(tmp_path, pg_url)
    capsys.readouterr()  # what the set-up logged
    assert await asyncio.to_thread(main, ["journal", "--config", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(c["crm_leg"], [op["kind"] for op in c["operations"]]) for c in data["calls"]] == [("b-1.1", ["register"])]
    assert await asyncio.to_thread(main, ["replay", "--config", str(path)]) == 0
    assert "Nothing to replay" in capsys.readouterr().out, "the call has not ended (more in test_replay_shared.py)"
