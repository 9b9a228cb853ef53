"""Another client subscribes to the bridge's Stasis application (Asterisk hands it over and tells the bridge
ApplicationReplaced): the bridge steps down at once with exit 1, acts on none of its calls any more, and a restarted
bridge adopts the call still talking, mirrored once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from structlog.testing import capture_logs

from bridge.domain.state import State
from bridge.pbx.ari import AriLink
from bridge.sim.asterisk import Answer
from bridge.sim.stage import Stage, stage
from bridge.sim.verdict import ANSWERED, INCOMING, Expect, calls_of
from tests.eventually import eventually
from tests.integration.daemon_support import mirrored

SALES = "74951112233"


def talking(s: Stage) -> bool:
    return any(call.state is State.TALKING for call in s.daemon.dispatcher.calls.values())


async def test_a_bridge_whose_application_is_taken_steps_down_and_a_restart_adopts_its_call(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(SALES, "79990000201", hangup_after_answer=4.0)
        await eventually(lambda: talking(s))
        other = AriLink(s.settings.asterisk, asyncio.Queue())
        other_task = asyncio.create_task(other.run())
        with capture_logs() as logs:
            began = time.monotonic()
            serving = s.serving
            assert serving is not None
            assert await asyncio.wait_for(serving, 10) == 1
            stopped_in = time.monotonic() - began
        s.serving = None
        assert stopped_in < s.timing.grace, "no grace period: the calls are not this bridge's any more"
        lost = [e for e in logs if e["event"] == "daemon.pbx_lost"]
        assert len(lost) == 1 and "ARI application" in lost[0]["reason"] and lost[0]["active_calls"] == 1
        assert not call.done, "stepping down hangs up nobody"
        assert not [c for c in calls_of(s.crm.state(), "79990000201") if c.get("finished")], "and finishes nothing"
        await other.stop()
        await asyncio.wait_for(other_task, 5)
        await s.start_daemon()  # the service manager restarts it
        await asyncio.wait_for(call.ended(), 10)
        await mirrored(
            s, Expect("79990000201", INCOMING, 11, ANSWERED, talk=4.0, recorded=False, shown_to=frozenset({11})), 10
        )
