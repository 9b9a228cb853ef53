"""How a finished call looks to the people in Bitrix24, the real daemon against both simulators: the call in the
employee's chat (``ADD_TO_CHAT``, per line), and a voicemail's task named as Bitrix24 names a missed call, linking
the recording (created once the recording is attached)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import stage
from bridge.sim.verdict import ANSWERED, INCOMING, MISSED, Expect
from tests.eventually import eventually
from tests.integration.daemon_support import mirrored

SALES = "74951112233"
NIGHT = "74951112266"


def quiet_night_line(data: dict[str, Any]) -> None:
    data["lines"][NIGHT]["add_to_chat"] = False


async def test_a_missed_voicemails_task_is_named_as_bitrix24_names_it_and_links_the_recording(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        call = await s.pbx.place_inbound_call(NIGHT, "79990000311", hangup_after=1.5)
        await asyncio.wait_for(call.ended(), 20)
        crm = await mirrored(s, Expect("79990000311", INCOMING, 15, MISSED, recorded=True, task_for=15))
        state = s.crm.state()
        (task,) = [t for t in state["tasks"] if "79990000311" in t["title"]]
        assert task["title"] == "Skipped incoming call from 79990000311"
        link = f"{s.crm.url}/_sim/records/{crm.call_id}"
        assert task["description"].endswith(f"\nCaller left [URL={link}]a voice message[/URL].")
        methods = [r["method"] for r in state["requests"]]
        assert methods.index("telephony.externalCall.attachRecord") < methods.index("tasks.task.add")
        async with aiohttp.ClientSession() as http, http.get(link) as answer:
            assert answer.status == 200 and await answer.read() == s.crm.record_content(crm.call_id)


async def test_the_call_appears_in_the_employees_chat_unless_its_line_says_not(tmp_path: Path) -> None:
    async with stage(tmp_path, tweak=quiet_night_line) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(SALES, "79990000312", hangup_after_answer=1.0)
        await asyncio.wait_for(call.ended(), 20)
        crm = await mirrored(
            s, Expect("79990000312", INCOMING, 11, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11}))
        )
        (chat,) = s.crm.state()["chats"]
        assert (chat["USER_ID"], chat["CALL_ID"]) == (11, crm.call_id)
        assert chat["MESSAGE"].startswith("Incoming call from [CALL=79990000312]79990000312[/CALL] finished.")

        for ext in ("1001", "1002", "1003", "1004"):
            s.pbx.set_party(ext, NeverAnswer())
        call = await s.pbx.place_inbound_call(NIGHT, "79990000313", hangup_after=1.5)
        await asyncio.wait_for(call.ended(), 20)
        await mirrored(s, Expect("79990000313", INCOMING, 15, MISSED, recorded=True, task_for=15))
        await eventually(lambda: any("79990000313" in t["title"] for t in s.crm.state()["tasks"]))
        assert [c["PHONE_NUMBER"] for c in s.crm.state()["chats"]] == ["79990000312"], "the night line is quiet"
