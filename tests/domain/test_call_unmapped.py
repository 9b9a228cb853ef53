"""An extension the plan names that no employee has (``auto_map`` found no Bitrix24 user for it) is skipped as
unavailable, and the call says why."""

from __future__ import annotations

from bridge.domain.commands import RingAgent
from bridge.domain.events import TimerFired
from bridge.domain.scheme import Distribution, ToEmployee, ToQueue, ToVoicemail
from tests.domain.builders import Driver, queue, route, started

WHY = "skipped as unavailable: 1007 (no employee has this extension: not in [employees.map] and no active Bitrix24"


def test_an_unresolved_queue_member_is_skipped_with_the_reason() -> None:
    for dist in (Distribution.IN_ORDER, Distribution.EVERYBODY):
        the_plan = route(ToQueue("q"), queues=(queue("q", "1007", "1001", dist=dist, final=ToVoicemail("1005")),))
        d = Driver(the_plan)
        commands = d(started())
        assert [c.ext for c in commands if isinstance(c, RingAgent)] == ["1001"]
        assert d.call.warning.startswith(WHY)
        d(TimerFired(), 15)
        assert not d.call.ringing and d.call.warning == ""


def test_an_unresolved_employee_rule_passes_the_call_on_with_the_reason() -> None:
    d = Driver(route(ToEmployee("1007"), fallback=ToEmployee("1002"), default_ext="1005"))
    commands = d(started())
    assert [c.ext for c in commands if isinstance(c, RingAgent)] == ["1002"]
    assert d.call.warning.startswith(WHY)
