"""One call per log query: the demo's whole day in JSON logs, where every line about a call names that call
(``call_id``, ``line``, ``linkedid``) and nothing else, and the README's ``jq`` recipe finds one call's story."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bridge import logs
from bridge.sim.demo import run_demo
from bridge.sim.scenarios import FAST

README = Path(__file__).resolve().parents[2] / "README.md"
NAMING_KEYS = ("call_id", "crm_leg", "linkedid", "b24_call_id", "leg")
"""A line that has any of these (not empty) is about a call."""


def _about_a_call(line: dict[str, Any]) -> bool:
    if line["event"].startswith(("sim.", "demo.")):
        return False  # the simulators' own lines (what a real PBX or portal would log), and the demo's narration
    return any(line.get(key) for key in NAMING_KEYS)


@pytest.fixture(scope="module")
def day_log(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    import asyncio

    out = io.StringIO()
    logs.configure(json=True, stream=out)
    console = Console(file=io.StringIO(), width=220)
    workdir = tmp_path_factory.mktemp("demo")
    assert asyncio.run(run_demo(FAST, console=console, workdir=workdir)) == 0
    return [json.loads(text) for text in out.getvalue().splitlines() if text.startswith("{")]


def test_every_line_about_a_call_names_its_own_call(day_log: list[dict[str, Any]]) -> None:
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
    delivered = [line for line in about if line["event"] == "crm.delivered"]
    assert any(line.get("b24_call_id", "").startswith("externalCall.") for line in delivered)

    # the inbound calls carry the line (DID) they came in on
    started = {line["call_id"]: line["line"] for line in about if line["event"] == "call.started"}
    assert started and all(number.startswith("7495") for number in started.values())
    assert all(lines_of[call] == {number} for call, number in started.items())
    offline = [line for line in about if line["event"] == "crm.offline"]
    assert offline and all(line["line"] == started.get(line["call_id"], line["line"]) for line in offline)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_the_readme_jq_recipe_follows_one_call(day_log: list[dict[str, Any]], tmp_path: Path) -> None:
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
