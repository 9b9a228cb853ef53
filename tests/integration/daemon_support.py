"""Shared waits for the daemon's integration tests: a call is judged on ``/_sim/state`` until it matches."""

from __future__ import annotations

import re

from bridge.sim.stage import Stage
from bridge.sim.verdict import CrmCall, Expect, calls_of, crm_call, verdict
from tests.eventually import eventually


async def mirrored(s: Stage, expect: Expect, timeout: float = 15.0) -> CrmCall:
    """Wait until Bitrix24 holds exactly what ``expect`` says (record attached included); return the call."""

    def matches() -> CrmCall:
        state = s.crm.state()
        problems = verdict(expect, state)
        assert not problems, f"{expect.phone}: {problems}"
        return crm_call(state, calls_of(state, expect.phone)[0])

    return await eventually(matches, timeout=timeout)


AGENT_ENDPOINT = re.compile(r"(?:PJSIP/(?P<pjsip>\d+)|Local/(?P<local>\d+)@agents)")


def agents_rung(s: Stage) -> list[str]:
    """The agents whose devices the daemon originated, in order (by extension, whatever the template)."""
    rung = []
    for request in s.pbx.requests:
        match = AGENT_ENDPOINT.fullmatch(request["params"].get("endpoint", ""))
        if match:
            rung.append(match.group("pjsip") or match.group("local"))
    return rung


def dialled(s: Stage) -> list[str]:
    """Every endpoint the daemon asked the PBX to dial, in order."""
    return [r["params"]["endpoint"] for r in s.pbx.requests if "endpoint" in r["params"]]
