"""The configured external lines at start: a bridge adds only the lines the portal lacks (``externalLine.get``
first), so a restart or another bridge of the same portal never gets Bitrix24's "Line already exists" error, and a
line deleted on the portal comes back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.sim.stage import stage
from tests.eventually import eventually


def adds(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in state["requests"] if r["method"] == "telephony.externalLine.add"]


def numbers(state: dict[str, Any]) -> set[str]:
    return {line["NUMBER"] for line in state["lines"]}


async def test_lines_are_added_once_and_an_existing_line_is_not_an_error(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        configured = set(s.settings.plan.lines)
        await eventually(lambda: numbers(s.crm.state()) == configured)
        assert len(adds(s.crm.state())) == len(configured)
        await s.stop_daemon()
        s.crm.core.requests.clear()
        gone = sorted(configured)[0]
        del s.crm.core.lines.lines[(None, gone)]  # an administrator deleted one line in the portal
        await s.start_daemon()  # a restart, or a second bridge on the same portal

        def set_up() -> list[dict[str, Any]]:
            state = s.crm.state()
            assert numbers(state) == configured
            assert [r for r in state["requests"] if r["method"] == "telephony.externalLine.get"]
            return adds(state)

        added = await eventually(set_up)
        assert [r["http_status"] for r in added] == [200], "only the missing line was added, without an error"
        assert not [r for r in s.crm.state()["requests"] if r["http_status"] >= 400]
