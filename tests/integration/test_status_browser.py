"""The status page in a real browser (headless Chromium): a call seen ringing, then talking, then finished, by
live updates alone (no reload), with the caller's HTML-laden name shown as text.

Set ``STATUS_SCREENSHOT=docs/status-page.png`` to keep a screenshot of the page while the call talks.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from bridge.sim.asterisk import Answer
from bridge.sim.stage import stage
from tests.chromium import browser_page
from tests.eventually import eventually

SALES = "74951112233"
NAME = '<script>window.__pwned = 1</script><b>Ivan</b> "&" Co'
LOOK = """(() => {
  const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr[data-key]`)]
      .map((tr) => [...tr.cells].map((td) => td.innerText.trim()));
  return {calls: rows("calls"), recent: rows("recent"), live: document.getElementById("live")?.textContent ?? null,
          marker: window.__noReload || null, pwned: window.__pwned || null,
          bold: document.querySelectorAll("#status b").length};
})()"""
# columns of #calls: line, caller, state, ringing now, next step, card shown to, talking, age
CALLER, STATE, RINGING, CARD, TALKING = 1, 2, 3, 5, 6


async def test_the_page_follows_a_call_from_ringing_to_talking_to_finished_without_reload(tmp_path: Path) -> None:
    async with stage(tmp_path / "stage", ring_seconds=4.0) as s:
        url = f"http://127.0.0.1:{s.daemon.http_port}/status"
        async with browser_page(url) as page:

            async def look() -> dict[str, Any]:
                found: dict[str, Any] = await page.evaluate(LOOK)
                return found

            await eventually(lambda: _is(look(), "live", "live"), timeout=30, message="the page's stream never opened")
            await page.evaluate("window.__noReload = 'still the first load'")
            s.pbx.set_party("1001", Answer(after=3.0))
            missed = await s.pbx.place_inbound_call(SALES, "79990000400", "Early caller", hangup_after=0.5)
            await asyncio.wait_for(missed.ended(), 20)

            async def first_finished() -> dict[str, Any]:
                seen = await look()
                assert not seen["calls"] and len(seen["recent"]) == 1 and "304" in seen["recent"][0][4], seen
                return seen

            await eventually(first_finished, timeout=15)
            call = await s.pbx.place_inbound_call(SALES, "79990000401", NAME, hangup_after_answer=4.0)

            async def ringing() -> dict[str, Any]:
                seen = await look()
                assert seen["calls"] and seen["calls"][0][STATE].startswith("ringing"), seen
                return seen

            seen = await eventually(ringing, timeout=15)
            row = seen["calls"][0]
            assert "1001" in row[RINGING] and "Anna Ivanova" in row[CARD]
            assert NAME in row[CALLER] and "79990000401" in row[CALLER]

            async def talking() -> dict[str, Any]:
                seen = await look()
                assert seen["calls"] and seen["calls"][0][STATE].startswith("talking"), seen
                return seen

            seen = await eventually(talking, timeout=15)
            assert "1001" in seen["calls"][0][TALKING] and seen["calls"][0][RINGING] == "–"
            if shot := os.environ.get("STATUS_SCREENSHOT"):
                await page.screenshot(Path(shot))
            else:
                await page.screenshot(tmp_path / "status.png")
                assert (tmp_path / "status.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            await asyncio.wait_for(call.ended(), 20)

            async def finished() -> dict[str, Any]:
                seen = await look()
                assert not seen["calls"] and len(seen["recent"]) == 2, seen
                assert "200" in seen["recent"][0][4] and "done" in seen["recent"][0][6], seen
                return seen

            seen = await eventually(finished, timeout=15)
            assert NAME in seen["recent"][0][2] and "1001" in seen["recent"][0][3]
            assert seen["marker"] == "still the first load", "the page was reloaded"
            assert seen["pwned"] is None and seen["bold"] == 0, "the caller's name was run as HTML"


async def _is(seen: Any, key: str, value: str) -> bool:
    return (await seen)[key] == value
