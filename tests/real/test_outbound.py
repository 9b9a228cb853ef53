"""Outgoing calls on a real Asterisk: a desk phone dialling out through the sample's ``from-agents`` and trunk
(watched on AMI), and click-to-call from Bitrix24 (the employee's phone first, then the client over the trunk)."""

from __future__ import annotations

from bridge.sim.verdict import ANSWERED, OUTGOING, Expect
from tests.real.site import Site


async def test_a_call_dialled_from_a_desk_phone_is_mirrored_with_its_talk_time(real_site: Site) -> None:
    s = real_site
    await s.provider("79260000201", "answer", ring=1, talk=3)
    await s.dial_out("1003", "79260000201", talk=30)
    await s.ended("PJSIP/trunk-")
    crm = await s.mirrored(
        Expect("79260000201", OUTGOING, 13, ANSWERED, talk=s.talk("PJSIP/trunk-"), recorded=True,
               shown_to=frozenset({13}))
    )  # fmt: skip
    assert crm.cards == {13: ("show", "hide")}


async def test_an_outgoing_call_to_a_busy_number_is_486(real_site: Site) -> None:
    s = real_site
    await s.provider("79260000202", "busy", ring=1)
    await s.dial_out("1002", "79260000202", talk=30)
    await s.ended("PJSIP/trunk-")
    await s.mirrored(Expect("79260000202", OUTGOING, 12, "486", recorded=None, shown_to=frozenset({12})))


async def test_click_to_call_rings_the_employee_then_the_client(real_site: Site) -> None:
    s = real_site
    await s.phone("1001", "answer", ring=1, talk=0)  # stays on the line until the client hangs up
    await s.provider("79260000203", "answer", ring=1, talk=3)
    call_id = await s.crm.click_to_call(11, "79260000203")
    await s.ended("PJSIP/trunk-")
    crm = await s.mirrored(
        Expect("79260000203", OUTGOING, 11, ANSWERED, talk=s.talk("PJSIP/trunk-"), recorded=True,
               shown_to=frozenset({11}), crm_call_id=call_id)
    )  # fmt: skip
    assert crm.cards == {11: ("show", "hide")}


async def test_click_to_call_from_an_employee_whose_phone_is_not_registered_closes_bitrix24s_call(
    real_site: Site,
) -> None:
    s = real_site
    call_id = await s.crm.click_to_call(19, "79260000204")  # 1009 never registers
    await s.mirrored(Expect("79260000204", OUTGOING, 19, "480", shown_to=frozenset({19}), crm_call_id=call_id))
    await s.idle()
    assert not s.pbx_ami.events("Newchannel", Channel="PJSIP/trunk-"), "the client was dialled"
