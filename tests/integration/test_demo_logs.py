"""One call per log query: the demo's whole day in JSON logs, where every line about a call names that call
(``call_id``, ``line``, ``linkedid``) and nothing else, and the README's ``jq`` recipe finds one call's story."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.sim.scenarios import DAY

README = Path(__file__).resolve().parents[2] / "README.md"
NAMING_KEYS = ("call_id", "crm_leg", "linkedid", "b24_call_id", "leg")
"""A line that has any of these (not empty) is about a call."""


def _about_a_call(line: dict[str, Any]) -> bool:
    if line["event"].startswith(("sim.", "demo.")):
        return False  # the simulators' own lines (what a real PBX or portal would log), and the demo's narration
    return any(line.get(key) for key in NAMING_KEYS)


@dataclass(frozen=True)
class Day:
    log: list[dict[str, Any]]
    """The daemon's JSON log lines, from the file ``--log`` named."""
    console: str
    kept: Path


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    """``b24-bridge demo --fast --keep DIR`` as an operator runs it (the console is a pipe here)."""
    kept = tmp_path_factory.mktemp("demo") / "kept"
    console = io.StringIO()
    with contextlib.redirect_stdout(console):
        assert main(["demo", "--fast", "--keep", str(kept)]) == 0
    text = (kept / "bridge.log").read_text(encoding="utf-8")
    return Day([json.loads(line) for line in text.splitlines()], console.getvalue(), kept)


def test_every_line_about_a_call_names_its_own_call(day: Day) -> None:
    day_log = day.log
    about = [line for line in day_log if _about_a_call(line)]
    assert len(about) > 200
    problems = [f"{line['event']}: no call_id or no line: {line}" for line in about
                if not line.get("call_id") or "line" not in line]  # fmt: skip
    assert not problems, "\n".join(problems[:10])
    assert not [line for line in about if str(line["call_id"]).startswith("externalCall.")], "Bitrix24's id in call_id"

    # each call has one line and one linkedid (or none yet) in every line about it
    lines_of: dict[str, set[str]] = defaultdict(set)
    linkedids_of: dict[str, set[str]] = defaultdict(set)
    for line in about:
        lines_of[line["call_id"]].add(line["line"])
        if line.get("linkedid"):
            linkedids_of[line["call_id"]].add(line["linkedid"])
    assert {call: found for call, found in lines_of.items() if len(found) != 1} == {}
    assert {call: found for call, found in linkedids_of.items() if len(found) != 1} == {}

    # a CRM leg belongs to one call: delivery's lines (batches of many calls) name the call that queued it
    call_of_leg = {line["crm_leg"]: line["call_id"] for line in about if line["event"] == "crm.queued"}
    wrong = [line for line in about if line.get("crm_leg") and call_of_leg.get(line["crm_leg"]) != line["call_id"]]
    assert not wrong, wrong[:5]
    delivered = [line for line in day_log if line["event"] == "crm.delivered"]
    assert {line["method"] for line in delivered} >= {"tasks.task.add", "telephony.externalCall.finish"}
    assert all(line in about for line in delivered), "a missed-call task names its call too"
    assert any(line.get("b24_call_id", "").startswith("externalCall.") for line in delivered)

    # the inbound calls carry the line (DID) they came in on
    started = {line["call_id"]: line["line"] for line in about if line["event"] == "call.started"}
    assert started and all(number.startswith("7495") for number in started.values())
    assert all(lines_of[call] == {number} for call, number in started.items())
    offline = [line for line in about if line["event"] == "crm.offline"]
    assert offline and all(line["line"] == started.get(line["call_id"], line["line"]) for line in offline)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_the_readme_jq_recipe_follows_one_call(day: Day, tmp_path: Path) -> None:
    day_log = day.log
    match = re.search(r"`(jq '[^`]*call_id == \"([^\"]+)\"[^`]*')`", README.read_text())
    assert match, "the README's recipe to follow one call"
    recipe, example_id = match.groups()
    call = next(line["call_id"] for line in day_log if line["event"] == "call.started")
    log_file = tmp_path / "bridge.log"
    log_file.write_text("".join(json.dumps(line) + "\n" for line in day_log))
    command = recipe.replace(example_id, call)[len("jq ") :].strip("'")
    result = subprocess.run(["jq", "-c", command, str(log_file)], capture_output=True, text=True, check=True)
    found = [json.loads(text) for text in result.stdout.splitlines()]
    events = [line["event"] for line in found]
    assert {line["call_id"] for line in found} == {call}
    assert "call.started" in events[:2] and "call.ended" in events and "crm.delivered" in events
    assert len(found) == len([line for line in day_log if line.get("call_id") == call])


def test_the_console_tells_each_call_step_by_step_then_the_table(day: Day) -> None:
    lines = day.console.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("{")], "no JSON on the console"
    for scenario in (sc for act in DAY for sc in act.scenarios):
        assert any(f"▶ {scenario.name}: {scenario.story}" in line for line in lines), scenario.name
    walk = [line.split(") ", 1)[1].strip() for line in lines if "  walk (" in line]
    assert walk[:1] == ["call from 79990001005 on line 74951112233"]
    rings = [step for step in walk if step.startswith(("rings", "stops ringing", "answered"))]
    assert rings[:5] == ["rings PJSIP/1001", "stops ringing 1001 (timeout)", "rings PJSIP/1002",
                         "stops ringing 1002 (timeout)", "rings PJSIP/1003"]  # fmt: skip
    assert "answered: talking" in rings and "Bitrix24 holds the call (finish)" in walk
    assert any("outage: answered" in line and "mirrored to Bitrix24 after the outage" in line for line in lines)
    assert "every call matches" in day.console
    assert f"The daemon's JSON log lines: {day.kept / 'bridge.log'}" in day.console


def test_the_kept_journal_can_be_listed_and_replayed(day: Day, capsys: pytest.CaptureFixture[str]) -> None:
    config = day.kept / "bridge.toml"
    assert f"try: b24-bridge journal --config {config}" in day.console
    assert main(["journal", "--config", str(config), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    ended = {line["call_id"] for line in day.log if line["event"] == "call.ended"}
    assert {call["pbx_call"] for call in listing["calls"]} == ended
    assert {call["state"] for call in listing["calls"]} == {"done"}
    assert main(["replay", "--dry-run", "--config", str(config)]) == 0
    assert "Nothing to replay" in capsys.readouterr().out
    assert main(["demo", "--keep", str(day.kept)]) == 2, "a second day would mix with the kept journal"
    assert "already holds a demo's journal" in capsys.readouterr().err
