"""``finish``'s ``ADD_TO_CHAT``: what the finishing employee's chat shows, as Bitrix24's own telephony posts it."""

from __future__ import annotations

from tests.sim.b24_support import Rest, rest_fixture, sim_fixture  # noqa: F401


async def test_a_missed_call_appears_in_the_employees_chat_by_default(rest: Rest) -> None:
    missed = await rest.register(EXTERNAL_CALL_ID="m")
    _, body = await rest.finish(missed)
    stat_id = body["result"]["ID"]
    assert rest.sim.state()["chats"] == [
        {
            "USER_ID": 12,
            "PHONE_NUMBER": "79161234567",
            "CALL_ID": missed,
            "MESSAGE": "Skipped incoming call from [CALL=79161234567]79161234567[/CALL]. "
            f"[PCH={stat_id}]Call information[/PCH]",
        }
    ]


async def test_answered_outgoing_and_declined_calls_have_their_own_texts(rest: Rest) -> None:
    answered = await rest.register(EXTERNAL_CALL_ID="a")
    await rest.finish(answered, DURATION=30, ADD_TO_CHAT=1)
    outgoing = await rest.register(EXTERNAL_CALL_ID="o", TYPE=1)
    await rest.finish(outgoing, STATUS_CODE="486")
    texts = [c["MESSAGE"] for c in rest.sim.state()["chats"]]
    assert texts[0].startswith("Incoming call from [CALL=79161234567]79161234567[/CALL] finished. [PCH=")
    assert texts[1] == "[CALL=79161234567]79161234567[/CALL] is presently on a different call."


async def test_add_to_chat_0_keeps_the_chat_quiet_and_the_call_is_still_finished(rest: Rest) -> None:
    call_id = await rest.register()
    status, body = await rest.finish(call_id, ADD_TO_CHAT=0)
    assert status == 200 and body["result"]["CALL_FAILED_CODE"] == "304"
    assert rest.sim.state()["chats"] == []
