"""The sample Asterisk configuration agrees with what the adapters expect, and the dialplan passes asterisklint."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.config import AsteriskSettings
from bridge.pbx.ami_events import event_filters, event_mask

CONF = Path(__file__).resolve().parents[2] / "asterisk-conf"


def ini(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, inline_comment_prefixes=(";",))
    parser.read_string((CONF / name).read_text(encoding="utf-8"))
    return parser


def dialplan() -> dict[str, list[str]]:
    """Context -> its lines (comments dropped)."""
    contexts: dict[str, list[str]] = {}
    current = ""
    for raw in (CONF / "extensions.conf").read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if match := re.fullmatch(r"\[([^\]]+)\]", line):
            current = match.group(1)
            contexts.setdefault(current, [])
        elif line:
            contexts[current].append(line)
    return contexts


def test_ari_and_ami_listen_on_the_loopback_only() -> None:
    assert ini("http.conf")["general"]["bindaddr"] == "127.0.0.1"
    manager = ini("manager.conf")
    assert manager["general"]["bindaddr"] == "127.0.0.1"
    user = manager[AsteriskSettings().ami_user]
    assert user["deny"] == "0.0.0.0/0.0.0.0" and user["permit"] == "127.0.0.1/255.255.255.255"


def test_the_ami_user_has_only_the_classes_the_link_uses() -> None:
    user = ini("manager.conf")[AsteriskSettings().ami_user]
    assert set(user["read"].split(",")) == set(event_mask().split(","))
    assert set(user["write"].split(",")) == {"originate", "reporting"}  # no command, no system: the CLI is root


def test_the_ami_user_is_sent_only_the_events_the_link_reads() -> None:
    assert sample_eventfilters() == event_filters(AsteriskSettings()), "the lines for bridge.toml's defaults"


def sample_eventfilters() -> list[str]:
    """The ``eventfilter`` lines of the bridge's user in the sample manager.conf (a key that repeats)."""
    lines = (CONF / "manager.conf").read_text(encoding="utf-8").splitlines()
    return [line.split("=", 1)[1].strip() for line in lines if line.startswith("eventfilter")]


def test_the_ari_user_and_app_are_the_defaults_of_the_settings() -> None:
    settings = AsteriskSettings()
    assert ini("ari.conf")[settings.ari_user]["type"] == "user"
    contexts = dialplan()
    assert f"B24_APP={settings.app}" in contexts["globals"]


def test_dids_intercept_and_outbound_calls_enter_where_the_adapters_look() -> None:
    contexts = dialplan()
    trunk = "\n".join(contexts["from-trunk"])
    assert "Stasis(${B24_APP},inbound,${EXTEN})" in trunk
    assert "Stasis(${B24_APP},intercept,${CALLERID(num)},*8)" in "\n".join(contexts["phones"])
    for context in AsteriskSettings().outbound_contexts:
        assert any("MixMonitor(" in line for line in contexts[context]), "watched outbound calls are recorded"
    assert "agents" in contexts, "the context of agent_endpoint = Local/{ext}@agents"


# the linter installed beside this interpreter (the project's .venv), else one on PATH
ASTERISKLINT = shutil.which("asterisklint", path=str(Path(sys.executable).parent)) or shutil.which("asterisklint")


@pytest.mark.skipif(ASTERISKLINT is None, reason="asterisklint is not installed")
def test_the_dialplan_passes_asterisklint() -> None:
    assert ASTERISKLINT is not None
    result = subprocess.run(
        [ASTERISKLINT, "dialplan-check", "extensions.conf"],
        cwd=CONF,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""
