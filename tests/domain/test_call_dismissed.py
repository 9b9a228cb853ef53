"""An employee Bitrix24 has dismissed (ACTIVE = N) refuses every register and finish naming them: the walk skips
them like an unavailable agent (without their forwarding rules) and no finish ever names them."""

from __future__ import annotations

from dataclasses import replace

from bridge.domain import cards
from bridge.domain.call import start_call
from bridge.domain.commands import CrmFinish, CrmRegister, RingAgent, RingNumber
from bridge.domain.events import CallerHungUp, CrmClient, LegAnswered, TimerFired
from bridge.domain.scheme import Employee, Line, ToEmployee, ToQueue
from tests.domain.builders import LINE, STAFF, T0, Driver, crm, employees, leg, plan, queue, route, started


def gone(*exts: str, **rules: object) -> dict[str, Employee]:
    """The staff with ``exts`` dismissed."""
    return {**STAFF, **{ext: replace(STAFF[ext], dismissed=True, **rules) for ext in exts}}  # type: ignore[arg-type]


def test_a_queue_walk_skips_a_dismissed_member_and_nobody_registers_the_call_for_them() -> None:
    d = Driver(route(ToQueue("q"), queues=(queue("q", "1001", "1002"),), staff=gone("1001")))
    commands = d(started())
    assert [c.ext for c in commands if isinstance(c, RingAgent)] == ["1002"]
    assert [c.user_id for c in commands if isinstance(c, CrmRegister)] == [2]


def test_a_dismissed_target_is_skipped_without_ringing_their_mobile() -> None:
    d = Driver(route(ToEmployee("1003"), staff=gone("1003", unavailable_to_mobile=True), default_ext="1005"))
    commands = d(started())
    assert not [c for c in commands if isinstance(c, RingAgent | RingNumber)]
    assert d.call.walk is None, "the line's next rule (here: hang up) runs at once"


def test_a_missed_call_of_a_dismissed_responsible_manager_goes_to_the_lines_owner() -> None:
    call = start_call(
        route(ToQueue("q"), queues=(queue("q", "1001"),), staff=gone("1003"), default_ext="1005"), "c", T0
    )
    call = replace(call, line=LINE, client=CrmClient("CONTACT", 1, responsible_user_id=3), crm_legs=(crm(1, 1),))
    assert cards.missed_owner(call) == 5
    assert cards.missed_owner(replace(call, client=CrmClient("CONTACT", 1, responsible_user_id=4))) == 4


def test_a_finish_never_names_a_dismissed_employee_it_falls_back_to_the_lines_owner() -> None:
    """Whichever way a dismissed employee's user reached the finish (an employee dismissed during the call, a
    transfer), the finish goes to the line's owner, and the call says why."""
    call = start_call(route(ToQueue("q"), staff=gone("1003"), default_ext="1005"), "c", T0)
    call = replace(call, line=LINE, crm_legs=(crm(1, 1, shown=(1, 3)),))
    call, commands = cards.finish(call, 3, 42, "200")
    assert commands[-1] == CrmFinish("k.1", 5, 42, "200")
    assert "user 3 is dismissed" in call.warning and "finished for user 5" in call.warning
    # the line's owner dismissed as well: the user the leg was registered for
    call = start_call(route(ToQueue("q"), staff=gone("1003", "1005"), default_ext="1005"), "c", T0)
    call, commands = cards.finish(replace(call, line=LINE, crm_legs=(crm(1, 1),)), 3, 0, "304")
    assert commands == [CrmFinish("k.1", 1, 0, "304")]
    # an active employee finishes as always
    call = start_call(route(ToQueue("q"), default_ext="1005"), "c", T0)
    call, commands = cards.finish(replace(call, line=LINE, crm_legs=(crm(1, 1),)), 3, 7, "200")
    assert commands == [CrmFinish("k.1", 3, 7, "200")] and not call.warning


def test_a_whole_call_with_a_dismissed_member_is_finished_for_who_talked() -> None:
    staff = {**gone("1001"), **employees("1002")}
    d = Driver(route(ToQueue("q"), queues=(queue("q", "1001", "1002"),), staff=staff, default_ext="1001"))
    d(started())
    d(LegAnswered(leg(1, "1002").id), 3)
    d(CallerHungUp(), 20)
    d(TimerFired(), 60)
    finishes = [c for c in d.all_commands() if isinstance(c, CrmFinish)]
    registers = [c for c in d.all_commands() if isinstance(c, CrmRegister)]
    assert [f.user_id for f in finishes] == [2] and [r.user_id for r in registers] == [2]


def test_the_line_owner_a_finish_falls_back_to_is_its_default_ext_never_a_dismissed_one() -> None:
    night = Line("74951112266", default_ext="1004")
    staffed = replace(plan(default_ext="1005"), lines={LINE: Line(LINE, default_ext="1005"), night.number: night})
    assert staffed.line_owner(LINE) == 5
    assert staffed.line_owner("") == 5, "a line not configured (a click-to-call without one): the first owner"
    assert staffed.line_owner(night.number) == 4
    without = replace(staffed, employees=gone("1005"))
    assert without.line_owner(LINE) == 0, "a configured line does not borrow another line's owner"
    assert without.line_owner("79990000000") == 4
    assert replace(staffed, employees={}).line_owner("") == 0
