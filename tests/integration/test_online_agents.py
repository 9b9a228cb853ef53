"""``employees.require_online``: the real daemon against both simulators skips an agent Bitrix24 shows offline, and
skips nobody when the app user may not read users."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from bridge.domain.scheme import Availability
from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import stage
from bridge.sim.verdict import ANSWERED, INCOMING, Expect
from tests.eventually import eventually
from tests.integration.daemon_support import agents_rung, mirrored

SALES = "74951112233"


def require_online(data: dict[str, Any]) -> None:
    data["employees"]["require_online"] = True
    data["employees"]["online_minutes"] = 30
    data["bitrix24"]["availability_ttl"] = 0.3


async def test_an_agent_bitrix24_shows_offline_is_not_rung(tmp_path: Path) -> None:
    async with stage(tmp_path, tweak=require_online) as s:
        s.crm.set_presence(12, 45)  # 1002 closed the Bitrix24 app 45 minutes ago
        await eventually(lambda: s.daemon.dispatcher.availability.of("1002") is Availability.OFFLINE)
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_party("1002", Answer(after=0.1))
        s.pbx.set_party("1003", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(SALES, "79990000301", hangup_after_answer=1.0)
        await asyncio.wait_for(call.ended(), 20)
        await mirrored(
            s, Expect("79990000301", INCOMING, 13, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11, 13}))
        )
        assert agents_rung(s) == ["1001", "1003"]
        s.crm.set_presence(12, 0)  # back in the app: rung again
        await eventually(lambda: s.daemon.dispatcher.availability.of("1002") is not Availability.OFFLINE)


async def test_without_the_user_scope_nobody_is_skipped_and_the_log_says_why(tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with stage(tmp_path, tweak=require_online) as s:
            s.crm.set_presence(12, 45)
            s.crm.deny_scopes("user", "user_brief", "user_basic")
            await eventually(lambda: any(e["event"] == "directory.online_unknown" for e in logs))
            s.pbx.set_party("1001", NeverAnswer())
            s.pbx.set_party("1002", Answer(after=0.1))
            call = await s.pbx.place_inbound_call(SALES, "79990000302", hangup_after_answer=1.0)
            await asyncio.wait_for(call.ended(), 20)
            await mirrored(
                s, Expect("79990000302", INCOMING, 12, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11, 12}))
            )
            assert agents_rung(s) == ["1001", "1002"]
    unknown = [e for e in logs if e["event"] == "directory.online_unknown"]
    assert len(unknown) == 1 and unknown[0]["code"] == "insufficient_scope"
