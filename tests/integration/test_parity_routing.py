"""Issue 15's routing parity end to end, the real daemon against both simulators: ring counts per rule, per-line
media and the telephony-wide intercept code, employees known only from Bitrix24."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import stage
from bridge.sim.verdict import ANSWERED, INCOMING, Expect
from tests.integration.daemon_support import mirrored

DIRECT = "74951112277"


def _direct_line(rules: list[dict[str, Any]], **line: Any) -> Any:
    def tweak(data: dict[str, Any]) -> None:
        data["routing"]["ring_seconds"] = 1.0
        data["lines"][DIRECT] = {"name": "Direct", "default_ext": "1005", "rules": rules, **line}

    return tweak


def _ring_timeouts(requests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(endpoint, timeout) of every leg the daemon originated, in order."""
    return [(r["params"]["endpoint"], str(r["params"]["timeout"])) for r in requests if "endpoint" in r["params"]]


async def test_rings_on_a_rule_set_how_long_its_employee_and_number_ring(tmp_path: Path) -> None:
    rules = [
        {"when": "always", "then": "employee:1001", "rings": 2},
        {"when": "always", "then": "number:74950000001", "rings": 3},
        {"when": "always", "then": "employee:1002"},
    ]
    async with stage(tmp_path, tweak=_direct_line(rules)) as s:
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_party("74950000001", NeverAnswer())
        s.pbx.set_party("1002", Answer(after=0.2))
        call = await s.pbx.place_inbound_call(DIRECT, "79990001501", hangup_after_answer=0.5)
        await asyncio.wait_for(call.ended(), 30)
        await mirrored(s, Expect("79990001501", INCOMING, 12, ANSWERED, talk=0.5, recorded=True,
                                 shown_to=frozenset({11, 12})))  # fmt: skip
        # one ring is 1 s here: the rule's 2 and 3 rings, then the default 4 of an employee rule
        assert _ring_timeouts(s.pbx.requests) == [
            ("PJSIP/1001", "2"), ("PJSIP/74950000001@trunk", "3"), ("PJSIP/1002", "4")
        ]  # fmt: skip
