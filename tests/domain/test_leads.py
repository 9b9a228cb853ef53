"""Lead distribution: which manager gets the lead a call created (rules, round robin, workload, hours) and the
commands a call's end carries for it; workload queues."""

from __future__ import annotations

from dataclasses import replace
from datetime import time

import pytest

from bridge.domain.commands import CrmAssignLead, CrmFinish, CrmMissedTask, RingAgent
from bridge.domain.events import (
    CallerHungUp,
    CallStarted,
    CrmClient,
    CrmLookedUp,
    LegAnswered,
)
from bridge.domain.leads import (
    LeadFacts,
    LeadPick,
    carry_task,
    fields_from_text,
    fields_text,
    lead_matches,
    pick_manager,
)
from bridge.domain.schedule import Schedule
from bridge.domain.scheme import (
    Availability,
    CallerPrefix,
    Distribution,
    FromSource,
    LeadCalls,
    LeadDistribution,
    LeadField,
    LeadMode,
    LeadRule,
    Line,
    OnLine,
    Plan,
    ToEmployee,
    ToQueue,
)
from tests.domain.builders import CALLER, LINE, STAFF, T0, Driver, employees, queue, route

OFFICE = Schedule("office", "Europe/Moscow", weekly={2: ((time(9), time(18)),)})  # T0 is Tuesday 13:00 there
SHUT = Schedule("shut", "UTC")
A = Availability
ROTA = LeadDistribution("rota", ("1001", "1002", "1003"))
SPB = LeadRule((CallerPrefix(("7812",)),), ("1004",), "spb")
WEB = LeadRule((FromSource(("WEB",)), OnLine((LINE,))), ("1002", "1003"))
STAFF_PLAN = Plan(lines={}, queues={}, menus={}, employees=STAFF, schedules={"office": OFFICE, "shut": SHUT})
LINE_OBJ = Line(LINE, crm_source="CALL")


def pick(
    dist: LeadDistribution,
    caller: str = CALLER,
    line: Line = LINE_OBJ,
    availability: dict[str, Availability] | None = None,
    open_leads: dict[str, int] | None = None,
    recent: tuple[str, ...] = (),
    plan: Plan = STAFF_PLAN,
) -> LeadPick:
    facts = LeadFacts(availability or {}, open_leads or {}, {dist.id: recent})
    return pick_manager(dist, plan, line, caller, facts, T0)


@pytest.mark.parametrize(
    ("recent", "availability", "expected"),
    [
        ((), {}, "1001"),  # nobody yet: the first
        (("1001",), {}, "1002"),
        (("1002", "1003"), {}, "1001"),  # wraps round
        (("1002", "1004"), {}, "1003"),  # 1004 (a rule's manager) is no candidate: after 1002
        (("1001",), {"1002": A.ABSENT}, "1003"),
        (("1001",), {"1002": A.NOT_CLOCKED_IN, "1003": A.ABSENT}, "1001"),
        (("1001",), {"1002": A.BUSY}, "1002"),  # on the phone is still at work
    ],
)
def test_round_robin_goes_on_after_the_candidate_assigned_last(
    recent: tuple[str, ...], availability: dict[str, Availability], expected: str
) -> None:
    got = pick(ROTA, availability=availability, recent=recent)
    assert (got.ext, got.user_id) == (expected, int(expected) - 1000)
    assert "round robin" in got.why


def test_the_skipped_are_named_and_the_dismissed_or_unknown_never_get_a_lead() -> None:
    staff = employees("1001", "1002", "1003", e1001={"dismissed": True})
    dist = replace(ROTA, managers=("1001", "1009", "1002"))
    got = pick(dist, plan=replace(STAFF_PLAN, employees=staff), availability={"1002": A.ABSENT})
    assert got == LeadPick("", 0, "the managers: nobody is present, the lead stays with the line's owner")
    got = pick(dist, plan=replace(STAFF_PLAN, employees=staff))
    assert got.ext == "1002" and got.why.endswith("(skipped, absent or off duty: 1001, 1009)")


def test_workload_takes_the_fewest_open_leads_ties_in_list_order() -> None:
    dist = replace(ROTA, mode=LeadMode.WORKLOAD)
    assert pick(dist, open_leads={"1001": 4, "1002": 1, "1003": 1}).ext == "1002"
    got = pick(dist, open_leads={"1001": 4, "1002": 2}, availability={"1003": A.ABSENT})
    assert got.ext == "1002" and "fewest open leads (2)" in got.why
    assert pick(dist, open_leads={"1001": 4, "1002": 2}).ext == "1003"  # not counted yet: none


def test_the_first_rule_whose_conditions_all_hold_decides() -> None:
    dist = replace(ROTA, rules=(SPB, WEB))
    got = pick(dist, caller="78121234567")
    assert got.ext == "1004" and got.why.startswith("rule spb")
    assert pick(dist).ext == "1001", "WEB needs the line's source to be WEB"
    web_line = replace(LINE_OBJ, crm_source="WEB")
    got = pick(dist, line=web_line, recent=("1002",))
    assert got.ext == "1003" and got.why.startswith("rule 2, round robin")
    assert pick(dist, line=replace(web_line, number="74950000000")).ext == "1001", "another line"
    assert pick(dist, caller="78121234567", availability={"1004": A.ABSENT}).ext == ""


def test_outside_hours_the_on_duty_manager_or_the_line_owner() -> None:
    assert pick(replace(ROTA, hours="office", off_hours="1005")).ext == "1001", "open: the rota"
    got = pick(replace(ROTA, hours="shut", off_hours="1005"))
    assert got == LeadPick("1005", 5, "outside hours 'shut': the on-duty manager 1005")
    owner = LeadPick("", 0, "outside hours 'shut': the lead stays with the line's owner")
    assert pick(replace(ROTA, hours="shut")) == owner
    staff = employees("1001", "1005", e1005={"dismissed": True})
    got = pick(replace(ROTA, hours="shut", off_hours="1005"), plan=replace(STAFF_PLAN, employees=staff))
    assert got.ext == "" and "line's owner" in got.why
    assert pick(replace(ROTA, hours="nowhere")).ext == "1001", "an unknown schedule (check-config refuses it): none"


# --- a call's end -------------------------------------------------------------------------------------


def lead_plan(dist: LeadDistribution = ROTA, **line_kw: object) -> Plan:
    base = route(ToEmployee("1004", rings=1), default_ext="1005", missed_task=True, lead_distribution=dist.id,
                 **line_kw)  # fmt: skip
    return replace(base, lead_distributions={dist.id: dist}, schedules={"shut": SHUT})


def missed(the_plan: Plan, client: CrmClient | None = None, **start: object) -> list[object]:
    d = Driver(the_plan)
    d(CallStarted(LINE, CALLER, crm_key="k", **start))  # type: ignore[arg-type]
    d(CrmLookedUp(client), 0.1)
    d(CallerHungUp(), 2)
    return d.all_commands()


def test_a_missed_call_s_lead_goes_to_the_picked_manager_after_the_finish_with_the_task() -> None:
    commands = missed(lead_plan(), last_assigned={"rota": ("1001",)})
    crm = [c for c in commands if isinstance(c, CrmFinish | CrmAssignLead | CrmMissedTask)]
    assert [type(c) for c in crm] == [CrmFinish, CrmAssignLead, CrmMissedTask]
    finish, assign, task = crm
    assert isinstance(finish, CrmFinish) and finish.user_id == 5, "the call stays the line owner's missed call"
    assert assign == CrmAssignLead(
        "k.1", 2, "A new lead from a call from 79161234567 to line Sales is yours.", "rota",
        "the managers, round robin: 1002 is next",
    )  # fmt: skip
    assert isinstance(task, CrmMissedTask) and task.user_id == 2


@pytest.mark.parametrize(
    ("the_plan", "client"),
    [
        (lead_plan(), CrmClient("CONTACT", 7, 3)),  # a known caller: no lead was made
        (lead_plan(crm_create=False), None),
        (replace(lead_plan(), lead_distributions={}), None),  # names a distribution that is not there
        (lead_plan(replace(ROTA, hours="shut")), None),  # outside hours, nobody on duty: the owner keeps it
    ],
)
def test_no_hand_over_when_the_call_made_no_lead_or_nobody_takes_it(the_plan: Plan, client: CrmClient | None) -> None:
    commands = missed(the_plan, client)
    assert not [c for c in commands if isinstance(c, CrmAssignLead)]
    tasks = [c for c in commands if isinstance(c, CrmMissedTask)]
    assert [t.user_id for t in tasks] == [3 if client else 5]


def test_an_answered_call_s_lead_is_handed_over_only_when_the_distribution_takes_all_calls() -> None:
    for calls, handed in ((LeadCalls.MISSED, False), (LeadCalls.ALL, True)):
        d = Driver(replace(lead_plan(replace(ROTA, calls=calls)), employees=STAFF))
        d(CallStarted(LINE, CALLER, crm_key="k"))
        d(CrmLookedUp(None), 0.1)
        ring = next(c for c in d.all_commands() if isinstance(c, RingAgent))
        d(LegAnswered(ring.leg), 0.5)
        commands = d(CallerHungUp(), 3)
        kinds = [type(c) for c in commands if isinstance(c, CrmFinish | CrmAssignLead)]
        assert kinds == ([CrmFinish, CrmAssignLead] if handed else [CrmFinish])


def test_a_workload_queue_rings_the_fewest_open_leads_or_deals_first() -> None:
    for workload_of, expected in (("leads", ("1003", "1002", "1001")), ("deals", ("1002", "1001", "1003"))):
        q = queue("q", "1001", "1002", "1003", dist=Distribution.WORKLOAD, workload_of=workload_of)
        d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1005"))
        d(CallStarted(LINE, CALLER, crm_key="k", open_leads={"1001": 5, "1002": 2}, open_deals={"1001": 1, "1003": 9}))
        assert d.call.walk is not None and d.call.walk.order == expected


# --- rules on a field of the lead (decided at the hand-over) ------------------------------------------------

NORTH = LeadRule((LeadField("UF_CRM_REGION", ("north",)),), ("1004",), "north")
WEB_FORM = LeadRule((LeadField("SOURCE_ID", ("WEB",)), CallerPrefix(("7812",))), ("1003",))


def test_a_rule_on_a_lead_field_travels_as_a_choice_and_the_search_goes_on_without_it() -> None:
    dist = replace(ROTA, rules=(NORTH, WEB_FORM, SPB))
    got = pick(dist, recent=("1001",))
    assert (got.ext, got.user_id) == ("1002", 2), "without a match: the managers"
    assert [(c.fields, c.pick.ext) for c in got.choices] == [(NORTH.when, "1004")]
    assert got.why == (
        "if the lead has UF_CRM_REGION = north: rule north, round robin: 1004 is next; "
        "otherwise the managers, round robin: 1002 is next"
    )
    spb = pick(dist, caller="78121234567")
    assert [c.pick.ext for c in spb.choices] == ["1004", "1003"], "WEB_FORM's prefix holds: its field decides"
    assert spb.ext == "1004" and "otherwise rule spb" in spb.why, "SPB holds: the rules after it are not tried"
    absent = pick(dist, availability={"1004": A.ABSENT})
    assert absent.choices[0].pick == LeadPick(
        "", 0, "rule north: nobody is present, the lead stays with the line's owner"
    )


def test_outside_hours_no_field_rule_is_tried() -> None:
    got = pick(replace(ROTA, rules=(NORTH,), hours="shut", off_hours="1005"))
    assert got.ext == "1005" and got.choices == ()


@pytest.mark.parametrize(
    ("fields", "lead", "matches"),
    [
        ((LeadField("UF_CRM_REGION", ("north",)),), {"UF_CRM_REGION": "North "}, True),  # case and spaces
        ((LeadField("UF_CRM_REGION", ("north",)),), {"UF_CRM_REGION": "south"}, False),
        ((LeadField("UF_CRM_REGION", ("north",)),), {}, False),  # the portal has no such field
        ((LeadField("UF_CRM_KIND", ("45", "47")),), {"UF_CRM_KIND": ["44", "47"]}, True),  # enumeration, multiple
        ((LeadField("UF_CRM_KIND", ("45",)),), {"UF_CRM_KIND": 45}, True),  # an ID as a number
        ((LeadField("UF_CRM_KIND", ("45",)),), {"UF_CRM_KIND": []}, False),
        ((LeadField("PHONE", ("+78121234567",)),), {"PHONE": [{"VALUE": "+78121234567", "TYPE_ID": "PHONE"}]}, True),
        ((LeadField("UF_CRM_VIP"),), {"UF_CRM_VIP": "0"}, True),  # filled in at all
        ((LeadField("UF_CRM_VIP"),), {"UF_CRM_VIP": None}, False),
        ((LeadField("UF_CRM_VIP"),), {"UF_CRM_VIP": False}, False),
        ((LeadField("UF_CRM_VIP"),), {"UF_CRM_VIP": " "}, False),
        ((LeadField("SOURCE_ID", ("WEB",)), LeadField("UF_CRM_VIP")), {"SOURCE_ID": "WEB"}, False),  # all must hold
    ],
)
def test_a_lead_matches_a_field_rule_as_crm_lead_get_returns_its_fields(
    fields: tuple[LeadField, ...], lead: dict[str, object], matches: bool
) -> None:
    assert lead_matches(fields, lead) is matches


def test_field_rules_round_trip_as_text_and_foreign_text_is_refused() -> None:
    fields = (LeadField("UF_CRM_REGION", ("north", "север")), LeadField("UF_CRM_VIP"))
    assert fields_from_text(fields_text(fields)) == fields
    for bad in ("not json", "5", '[["A"]]'):
        with pytest.raises(ValueError, match="not a lead field rule"):
            fields_from_text(bad)


def test_a_missed_call_s_hand_over_carries_the_field_rules_and_the_task() -> None:
    dist = replace(ROTA, rules=(NORTH,))
    commands = missed(lead_plan(dist), last_assigned={"rota": ("1001",)})
    crm = [c for c in commands if isinstance(c, CrmFinish | CrmAssignLead | CrmMissedTask)]
    assert [type(c) for c in crm] == [CrmFinish, CrmAssignLead], "the task goes with the hand-over: one task"
    assign = crm[1]
    assert isinstance(assign, CrmAssignLead)
    assert (assign.user_id, assign.field_users, assign.field_rules) == (2, (4,), ('[["UF_CRM_REGION",["north"]]]',))
    assert assign.field_whys == ("rule north, round robin: 1004 is next",)
    assert (assign.task_title, assign.task_user_id) == ("Skipped incoming call from 79161234567", 2)
    assert assign.task_description.startswith("A call from 79161234567 to line Sales was not answered.")


def test_a_field_rule_hands_over_even_when_nobody_else_would_take_the_lead() -> None:
    dist = replace(ROTA, managers=(), rules=(NORTH,))
    assign = next(c for c in missed(lead_plan(dist)) if isinstance(c, CrmAssignLead))
    assert (assign.user_id, assign.field_users) == (0, (4,))
    assert (assign.task_title != "", assign.task_user_id) == (True, 5), "no match: the task stays the line owner's"


def test_without_a_field_rule_the_task_stays_a_task_of_its_own() -> None:
    task = CrmMissedTask(2, "t", "d")
    plain = CrmAssignLead("k.1", 2, "m")
    assert carry_task([plain], [task]) == ([plain], [task])
    fielded = replace(plain, field_rules=("[]",), field_users=(4,), field_whys=("w",))
    voicemail = CrmMissedTask(2, "t", "d", "k.1")
    assert carry_task([fielded], [voicemail]) == ([fielded], [voicemail]), "a voicemail's task waits for its recording"
