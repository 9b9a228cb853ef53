"""``b24-bridge dialplan``: every line gets a fallback for when the bridge is away; the sample is its output."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.config import ConfigError, Settings, parse_settings
from bridge.dialplan.fallback import DialNumber, Ring, TakeMessage, fallback_steps
from bridge.dialplan.render import render

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "bridge.example.toml"
ASTERISKLINT = shutil.which("asterisklint", path=str(Path(sys.executable).parent)) or shutil.which("asterisklint")


def example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def settings(data: dict[str, Any]) -> Settings:
    return parse_settings(data, path=EXAMPLE, env={})


def extension(text: str, context: str, exten: str) -> list[str]:
    """The priorities of ``exten`` in ``context`` (its ``exten =>`` line and the ``same =>`` lines after it)."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip() if not raw.lstrip().startswith("same") else raw.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == context and line.startswith(f"exten => {exten},"):
            lines = [line]
        elif lines and line.startswith("same =>") and current == context and lines[-1] != "":
            lines.append(line)
        elif lines and line.startswith("exten =>"):
            lines.append("")
    return [x for x in lines if x]


def test_the_sample_extensions_conf_is_the_output_for_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dialplan", "--config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == (ROOT / "asterisk-conf" / "extensions.conf").read_text(encoding="utf-8"), (
        "regenerate it: b24-bridge dialplan --config bridge.example.toml > asterisk-conf/extensions.conf"
    )


def test_every_line_falls_back_to_the_dialplan_when_stasis_fails() -> None:
    s = settings(example())
    text = render(s)
    for number in s.plan.lines:
        entry = extension(text, "from-trunk", number)
        assert entry[1].endswith("Stasis(${B24_APP},inbound,${EXTEN})")
        assert entry[2].endswith('GotoIf($["${STASISSTATUS}" = "FAILED"]?b24-fallback,${EXTEN},1)')
        fallback = "\n".join(extension(text, "b24-fallback", number))
        assert "Set(DB(b24fallback/${UNIQUEID}/start)=${EPOCH})" in fallback
        assert "Dial(" in fallback


def test_the_trace_is_completed_as_the_call_hangs_up_whoever_hangs_up() -> None:
    end = extension(render(settings(example())), "b24-fallback", "h")
    assert end[0] == "exten => h,1,Set(DB(b24fallback/${UNIQUEID}/peer)=${DIALEDPEERNAME})"
    assert end[-1] == "same => n,Set(DB(b24fallback/${UNIQUEID}/end)=${EPOCH})", "end is written last"


def test_the_fallback_approximates_each_line_of_the_example() -> None:
    plan = settings(example()).plan
    sales, support, regional = (plan.lines[n] for n in ("74951112233", "74951112244", "74951112255"))
    # the queue rings all its members at once, then its final: a message for its owner
    assert fallback_steps(plan, sales) == (Ring(("1001", "1002", "1003", "1004"), 15), TakeMessage("1005"))
    # the menu's on_fail (support), its final (overflow), then the outsourced number
    assert fallback_steps(plan, support) == (
        Ring(("1001", "1002", "1003", "1006"), 20),
        Ring(("1005", "1006"), 15),
        DialNumber("74950000000", 30),
    )
    assert fallback_steps(plan, regional) == (Ring(("1001", "1002"), 15), TakeMessage("1006"))


def test_the_forward_is_dialled_through_the_trunk_under_the_dial_rules() -> None:
    text = "\n".join(extension(render(settings(example())), "b24-fallback", "74951112244"))
    assert "Dial(PJSIP/84950000000@trunk,30,r)" in text  # 7495... -> 8495... by the example's rules


def test_pbx_fallback_chooses_what_the_fallback_does() -> None:
    data = example()
    data["lines"]["74951112233"]["pbx_fallback"] = "employee:1002"
    data["lines"]["74951112244"]["pbx_fallback"] = "hangup"
    data["lines"]["74951112255"]["pbx_fallback"] = "hold:duty"
    data["asterisk"]["moh_class"] = "office"
    s = settings(data)
    assert fallback_steps(s.plan, s.plan.lines["74951112233"]) == (Ring(("1002",), 20), TakeMessage("1005"))
    assert fallback_steps(s.plan, s.plan.lines["74951112244"]) == ()
    text = render(s)
    support = "\n".join(extension(text, "b24-fallback", "74951112244"))
    assert "Dial(" not in support and "Record(" not in support and support.endswith("Hangup()")
    regional = "\n".join(extension(text, "b24-fallback", "74951112255"))
    assert "Dial(PJSIP/1001&PJSIP/1002,300,m(office))" in regional


def test_a_lines_own_music_class_and_voicemail_prompt_serve_its_fallback_too() -> None:
    data = example()
    data["lines"]["74951112255"].update(pbx_fallback="hold:duty", moh_class="regional")
    data["lines"]["74951112233"].update(voicemail_prompt="sound:custom/vm-sales")
    text = render(settings(data))
    assert "Dial(PJSIP/1001&PJSIP/1002,300,m(regional))" in "\n".join(extension(text, "b24-fallback", "74951112255"))
    sales = "\n".join(extension(text, "b24-fallback", "74951112233"))
    assert "Playback(custom/vm-sales)" in sales and "Playback(vm-intro)" not in sales


@pytest.mark.parametrize(
    ("value", "message"),
    [("ivr:main", "cannot run menus"), ("responsible", "cannot run menus"), ("queue:nope", "nope")],
)
def test_a_fallback_the_dialplan_cannot_run_is_refused_with_its_key(value: str, message: str) -> None:
    data = example()
    data["lines"]["74951112233"]["pbx_fallback"] = value
    with pytest.raises(ConfigError) as info:
        settings(data)
    assert any("lines.74951112233.pbx_fallback" in p and message in p for p in info.value.problems), info.value


def test_a_line_name_cannot_inject_dialplan() -> None:
    data = example()
    data["lines"]["74951112233"]["name"] = "Sales)\nexten => 666,1,System(rm -rf /);["
    text = render(settings(data))
    assert "System(" not in text and "666,1" not in text


def test_a_monitor_only_line_is_left_to_the_operators_dialplan() -> None:
    data = example()
    data["asterisk"]["monitor_lines"] = ["74951112255"]
    text = render(settings(data))
    assert extension(text, "from-trunk", "74951112255") == []
    assert extension(text, "b24-fallback", "74951112255") == []


@pytest.mark.skipif(ASTERISKLINT is None, reason="asterisklint is not installed")
def test_a_dialplan_with_every_kind_of_fallback_passes_asterisklint(tmp_path: Path) -> None:
    assert ASTERISKLINT is not None
    data = example()
    data["lines"]["74951112233"]["pbx_fallback"] = "number:+74951234567"
    data["lines"]["74951112244"]["pbx_fallback"] = "voicemail:1003"
    data["lines"]["74951112255"]["pbx_fallback"] = "hold:duty"
    (tmp_path / "extensions.conf").write_text(render(settings(data)), encoding="utf-8")
    result = subprocess.run(
        [ASTERISKLINT, "dialplan-check", "extensions.conf"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
