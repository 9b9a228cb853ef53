"""Fuzzing the configuration: mutated versions of ``bridge.example.toml``, as parsed data and as bytes on disk.

Whatever the file holds, loading it gives valid ``Settings`` or a ``ConfigError`` whose problems each name a key
(or, for a file that is no TOML at all, the file), never another exception; the rendered error never shows the
file's secrets; and valid settings hold only what the daemon can use (numbers that are digits, finite timings).
"""

from __future__ import annotations

import copy
import math
import re
import string
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from bridge.config import ConfigError, Settings, load_config, parse_settings
from tests.fuzz.strategies import EXAMPLE_CONFIG, fuzz_settings, odd_text, one_in, secret_texts, webhook_codes

BASE = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
SECTIONS = ("asterisk", "bitrix24", "journal", "http", "employees", "routing", "regions", "schedules", "queues",
            "ivr", "lines")  # fmt: skip
FILE_PROBLEMS = ("cannot read the file", "not UTF-8 text", "TOML syntax")
DIALLABLE = re.compile(r"\+?[0-9]{3,20}")
EXTENSION = re.compile(r"[0-9A-Za-z_-]{1,20}")
SECRET_KEYS = (("asterisk", "ari_password"), ("asterisk", "ami_secret"), ("bitrix24", "application_token"))
EXTRA_KEYS = ("ari_password_env", "ari_password_file", "ami_secret_file", "webhook_url_env", "timezone", "holidays",
              "listen", "path", "mobile", "members", "final", "rules", "oauth", "token_file", "nonsense")  # fmt: skip
TRICKY_VALUES = (
    "Europe", "", "../etc", "x" * 300, "Europe/Moscow\n", "09:00+03:00-18:00", "09:00-18:00+01:00", "24:00-25:00",
    "host:²", ":8480", "127.0.0.1:" + "9" * 5000, "[::1]:80", "~no-such-user-here/x", "a\x00b", "79160000011\n",
    "1001\n", "queue:", "number:7495;1", "crm:X>=", "prefix:²", "http://[::1", "https://x/rest/1/c/", "2027-02-30",
)  # fmt: skip


# --- values and mutations --------------------------------------------------------------------------------------


def toml_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        odd_text(30),
        st.sampled_from(TRICKY_VALUES),
        st.dates(),
        st.times(),
        st.datetimes(),
    )


def toml_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        toml_scalars(),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(odd_text(10), inner, max_size=3)),
        max_leaves=8,
    )


@st.composite
def garbled(draw: st.DrawFn, value: str) -> str:
    choice = draw(st.sampled_from(("insert", "append", "tricky", "cut")))
    if choice == "insert":
        at = draw(st.integers(0, len(value)))
        return value[:at] + draw(odd_text(4)) + value[at:]
    if choice == "append":
        return value + draw(st.sampled_from(["\n", " ", "\x00", "²", ";", "\\"]))
    if choice == "cut":
        return value[: draw(st.integers(0, len(value)))]
    return draw(st.sampled_from(TRICKY_VALUES))


@st.composite
def mutated(draw: st.DrawFn, data: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """``data`` with keys removed, values retyped or garbled, tables mutated in turn, known or odd keys added."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not draw(one_in(4)):
            out[key] = value
            continue
        choice = draw(st.sampled_from(("drop", "retype", "garble")))
        if choice == "drop":
            continue
        if choice == "retype":
            out[key] = draw(toml_values())
        elif isinstance(value, dict) and depth < 4:
            out[key] = draw(mutated(value, depth + 1))
        elif isinstance(value, list) and value:
            out[key] = [draw(garbled(item)) if isinstance(item, str) else item for item in value]
        elif isinstance(value, str):
            out[key] = draw(garbled(value))
        else:
            out[key] = draw(toml_scalars())
    if draw(one_in(5)):
        out.update(draw(st.dictionaries(st.sampled_from(EXTRA_KEYS), toml_values(), max_size=2)))
    return out


@st.composite
def configs(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A mutated example config and the secrets it was written with."""
    data = copy.deepcopy(BASE)
    secrets = []
    for section, key in SECRET_KEYS:
        secrets.append(draw(secret_texts()))
        data[section][key] = secrets[-1]
    code = draw(webhook_codes())
    del data["bitrix24"]["oauth"]  # webhook mode: its URL is one more secret to keep out of messages
    data["bitrix24"]["webhook_url"] = f"https://example.bitrix24.ru/rest/1/{code}/"
    secrets.append(code)
    mutation = draw(mutated(data))
    return mutation, secrets


# --- what must hold ------------------------------------------------------------------------------------------


def names_a_key(problem: str, data: dict[str, Any]) -> bool:
    heads = {*SECTIONS, *(str(key) for key in data)}
    return any(problem.startswith(head) and problem[len(head) : len(head) + 1] in (".", ":", "[") for head in heads)


def assert_no_secret(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text and repr(secret)[1:-1] not in text, f"a secret shows in: {text}"


def assert_usable(settings: Settings) -> None:
    """Settings that loaded hold only what the daemon can use."""
    plan = settings.plan
    for number in plan.lines:
        assert DIALLABLE.fullmatch(number), number
    for ext, employee in plan.employees.items():
        assert EXTENSION.fullmatch(ext), ext
        assert not employee.mobile or DIALLABLE.fullmatch(employee.mobile), employee.mobile
    timings = [settings.asterisk.ping_interval, settings.asterisk.reconnect_max_delay, settings.bitrix24.rate,
               settings.bitrix24.register_timeout, settings.bitrix24.poll_interval, plan.ring_seconds,
               plan.crm_lookup_timeout, plan.voicemail_max_seconds]  # fmt: skip
    assert all(math.isfinite(value) and value > 0 for value in timings), timings
    assert 0 <= settings.http.port < 65536
    assert all(isinstance(context, str) for context in settings.asterisk.outbound_contexts)
    assert "\x00" not in str(settings.journal.path)
    webhook = settings.bitrix24.webhook_url
    for url in [settings.asterisk.ari_url, webhook.reveal() if webhook else "http://x"]:
        parts = urlsplit(url)  # raises on a malformed URL (an unclosed [ of an IPv6 host)
        assert parts.scheme in ("http", "https") and parts.hostname, url
        assert parts.port is None or 0 < parts.port < 65536  # .port raises on a port that is no number
    for schedule in plan.schedules.values():
        for hours in schedule.weekly.values():
            assert all(start.tzinfo is None and end.tzinfo is None for start, end in hours)


def changed(where: str, value: Any) -> dict[str, Any]:
    """The example config with one value set; ``where`` is the path of tables, ``/``-separated."""
    data = copy.deepcopy(BASE)
    *tables, last = where.split("/")
    table = data
    for name in tables:
        table = table.setdefault(name, {})
    table[last] = value
    return data


def secret_from_file(path: str) -> dict[str, Any]:
    data = changed("asterisk/ari_password_file", path)
    del data["asterisk"]["ari_password"]
    return data


def load(data: dict[str, Any], path: Path) -> Settings | ConfigError:
    try:
        return parse_settings(data, path=path, env={"B24_SET": "from-env"})
    except ConfigError as exc:
        return exc


@fuzz_settings(200)
@given(config=configs())
@example(config=(changed("schedules/office/timezone", "Europe"), []))
@example(config=(changed("schedules/office/holidays", 5), []))
@example(config=(changed("http/listen", "127.0.0.1:²"), []))
@example(config=(changed("journal/path", "~no-such-user-here/db"), []))
@example(config=(changed("journal/path", "b24\x00.db"), []))
@example(config=(secret_from_file("secret\x00"), []))
@example(config=(secret_from_file("~no-such-user-here/secret"), []))
@example(config=(changed("schedules/office/mon", ["09:00+03:00-18:00"]), []))
@example(config=(changed("employees/map/1001/mobile", "79160000011\n"), []))
@example(config=(changed("employees/map/1001\n", {"user_id": 17}), []))
@example(config=(changed("lines/74951112233\n", {"rules": []}), []))
@example(config=(changed("routing/ring_seconds", math.nan), []))
@example(config=(changed("bitrix24/rate", math.inf), []))
@example(config=(changed("asterisk/outbound_contexts", [1, 2]), []))
@example(config=(changed("asterisk/ari_url", "http://[::1"), []))
@example(config=(changed("asterisk/ari_url", "http://127.0.0.1:99999"), []))
@example(config=(changed("bitrix24/webhook_url", "https://[::1/rest/1/zq9code/"), ["zq9code"]))
@example(config=(changed("bitrix24/webhook_url", "https://portal:abc/rest/1/zq9code/"), ["zq9code"]))
def test_mutated_settings_load_or_name_each_bad_key(tmp_path_factory: pytest.TempPathFactory, config: Any) -> None:
    data, secrets = config
    result = load(data, tmp_path_factory.getbasetemp() / "b24-bridge.toml")
    event(type(result).__name__)
    if isinstance(result, Settings):
        assert_usable(result)
        return
    assert result.problems and all(isinstance(problem, str) for problem in result.problems)
    for problem in result.problems:
        assert names_a_key(problem, data), problem
    assert_no_secret(result.render(), secrets)


# --- the file on disk ------------------------------------------------------------------------------------------


@st.composite
def mutated_files(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """The example file with secrets of our own, then lines dropped or repeated, bytes inserted or replaced."""
    secrets = draw(st.lists(secret_texts(string.ascii_letters + string.digits), min_size=3, max_size=3, unique=True))
    code = draw(webhook_codes())
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    for old, new in zip(("ari-secret", "ami-secret", "client-secret-from-the-application-form"), secrets, strict=True):
        text = text.replace(f'"{old}"', f'"{new}"')
    text = text.replace("/rest/1/webhookcode/", f"/rest/1/{code}/")
    lines = text.encode().split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        at = draw(st.integers(0, len(lines) - 1))
        choice = draw(st.sampled_from(("drop", "repeat", "insert", "replace", "truncate")))
        if choice == "drop":
            del lines[at]
        elif choice == "repeat":
            lines.insert(at, lines[at])
        elif choice in ("insert", "replace"):
            line = lines[at]
            where = draw(st.integers(0, len(line)))
            noise = draw(st.one_of(st.binary(max_size=8), odd_text(8).map(str.encode), st.sampled_from(
                [b'"', b"'", b"[", b"]", b"=", b"#", b'"""', b"\\", b"\xff", b"\x00", b"\r"])))  # fmt: skip
            cut = where + (draw(st.integers(0, 6)) if choice == "replace" else 0)
            lines[at] = line[:where] + noise + line[cut:]
        else:
            lines = lines[: at + 1]
    return b"\n".join(lines), [*secrets, code]


@fuzz_settings(150)
@given(file=st.one_of(mutated_files(), st.binary(max_size=200).map(lambda raw: (raw, []))))
def test_a_mutated_file_loads_or_names_each_bad_key(tmp_path_factory: pytest.TempPathFactory, file: Any) -> None:
    raw, secrets = file
    path = tmp_path_factory.getbasetemp() / "mutated.toml"
    path.write_bytes(raw)
    try:
        settings = load_config(path, env={})
    except ConfigError as error:
        event("ConfigError")
        assert error.problems
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # not UTF-8, not TOML, a number too long to read
            assert len(error.problems) == 1 and error.problems[0].startswith(FILE_PROBLEMS)
        else:
            for problem in error.problems:
                assert names_a_key(problem, data), problem
        assert_no_secret(error.render(), secrets)
    else:
        event("Settings")
        assert_usable(settings)


@pytest.mark.parametrize("text", ["a = " + "[" * 100_000 + "]" * 100_000, "a = " + "9" * 5000])
def test_a_file_the_toml_parser_chokes_on_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "choking.toml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems[0].startswith(FILE_PROBLEMS)


@pytest.mark.parametrize(
    ("key", "value"),
    [("journal", {"path": datetime(2027, 1, 1)}), ("routing", {"ring_seconds": math.inf}),
     ("schedules", {"office": {"holidays": [date(2027, 1, 1), time(1, 2)]}})],
)  # fmt: skip
def test_odd_toml_types_in_known_places_name_the_key(tmp_path: Path, key: str, value: Any) -> None:
    result = load({**BASE, key: value}, tmp_path / "b24-bridge.toml")
    assert isinstance(result, ConfigError)
    assert all(names_a_key(problem, BASE) for problem in result.problems)
    assert any(problem.startswith(key) for problem in result.problems)


def test_a_secret_file_that_is_not_text_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "ari.secret").write_bytes(b"\xff\xfe binary")
    result = load(secret_from_file("ari.secret"), tmp_path / "b24-bridge.toml")
    assert isinstance(result, ConfigError)
    assert [problem.split(":")[0] for problem in result.problems] == ["asterisk.ari_password_file"]
