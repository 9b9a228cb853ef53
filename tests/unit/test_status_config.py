"""``[http]``: the status page's token and the event handler's own listener, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import ConfigError, config_warnings, parse_settings
from tests.test_config import example_data

TOKEN = "0123456789abcdef0123"


def parse(http: dict[str, str], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    data = example_data()
    data["http"] = http
    return parse_settings(data, path=Path("/etc/b24/bridge.toml"), env=env or {})


def problems(http: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(http)
    return info.value.problems


def test_events_listen_and_token_are_read() -> None:
    http = parse({"listen": "0.0.0.0:8480", "events_listen": "0.0.0.0:8481", "status_token_env": "TOK"},
                 env={"TOK": TOKEN}).http  # fmt: skip
    assert (http.host, http.port, http.events_host, http.events_port) == ("0.0.0.0", 8480, "0.0.0.0", 8481)
    assert http.status_token.reveal() == TOKEN and TOKEN not in repr(http)
    assert http.status_open


def test_without_events_listen_the_handler_stays_on_the_main_listener() -> None:
    http = parse({"listen": "127.0.0.1:8480"}).http
    assert http.events_host is None and http.status_open and not http.status_token


def test_a_non_loopback_listener_without_token_keeps_the_page_shut_and_says_so() -> None:
    settings = parse({"listen": "0.0.0.0:8480"})
    assert not settings.http.status_open
    assert any(w.startswith("http.listen: 0.0.0.0 is not a loopback address") for w in config_warnings(settings))
    assert not any(w.startswith("http.") for w in config_warnings(parse({"listen": "[::1]:8480"})))


def test_bad_http_keys_are_named_and_the_token_never_shown() -> None:
    found = problems({"listen": "8480", "events_listen": "host:port", "status_token": "short-secret"})
    assert found[0].startswith("http.listen: must be HOST:PORT")
    assert found[1].startswith("http.events_listen: must be HOST:PORT")
    assert found[2].startswith("http.status_token: must be at least 16 characters")
    assert not any("short-secret" in p for p in found)
    same = problems({"listen": "0.0.0.0:8480", "events_listen": "0.0.0.0:8480"})
    assert same == ["http.events_listen: must differ from http.listen (or leave it out to serve /b24/events there)"]
