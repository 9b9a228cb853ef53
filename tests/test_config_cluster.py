"""``[cluster]``: refused without a PostgreSQL journal, a bridge id that logs can carry, sensible defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config import EXIT_CONFIG
from bridge.config.cluster import ClusterSettings, parse_cluster
from bridge.config.reader import Reader
from tests.test_config import EXAMPLE, example_data, problems_of


def test_a_standby_on_the_sqlite_journal_is_refused_with_what_to_do() -> None:
    data = example_data()
    data["cluster"] = {"standby": True, "pbx_id": "office-1"}
    (problem,) = problems_of(data)
    assert problem.startswith("cluster:") and "PostgreSQL journal" in problem and "[journal] url" in problem


def test_check_config_refuses_the_section_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(EXAMPLE.read_text(encoding="utf-8") + '\n[cluster]\npbx_id = "office-1"\n', encoding="utf-8")
    assert main(["check-config", "--config", str(config)]) == EXIT_CONFIG
    assert "cluster: needs a PostgreSQL journal" in capsys.readouterr().err


def test_no_section_no_cluster() -> None:
    from bridge.config import parse_settings

    settings = parse_settings(example_data(), path=Path("/etc/b24/bridge.toml"), env={})
    assert settings.cluster.standby is False and settings.journal.url == ""


def read(data: dict[str, object], journal_url: str = "postgresql://bridge@db/b24") -> tuple[ClusterSettings, list[str]]:
    r = Reader(Path("/etc/b24"), {})
    cluster = parse_cluster(r, data, journal_url=journal_url, ari_url="http://pbx1.office:8088/", app="b24bridge")
    return cluster, r.problems


def test_on_postgres_the_pbx_id_defaults_to_the_ari_address_and_app() -> None:
    cluster, problems = read({"standby": True})
    assert not problems
    assert cluster.standby and cluster.pbx_id == "pbx1.office:8088/b24bridge"


def test_a_misspelt_key_is_named() -> None:
    _cluster, problems = read({"standy": True})
    assert len(problems) == 1 and "standy" in problems[0]


def test_the_section_is_accepted_with_a_postgresql_journal(tmp_path: Path) -> None:
    from bridge.config import parse_settings

    data = example_data()
    data["journal"] = {"url": "postgresql://bridge@db.example/b24", "password_env": "PG_PW", "bridge_id": "office-1-a"}
    data["cluster"] = {"standby": True, "pbx_id": "office-1"}
    settings = parse_settings(data, path=tmp_path / "bridge.toml", env={"PG_PW": "x"})
    assert settings.cluster.standby and settings.cluster.pbx_id == "office-1"


def test_a_malformed_ari_url_is_reported_once_by_asterisk_not_crashed_on() -> None:
    data = example_data()
    data["asterisk"]["ari_url"] = "http://[::1"
    data["cluster"] = {"standby": True}
    problems = problems_of(data)
    assert problems and all(not p.startswith("cluster.pbx_id") for p in problems)
