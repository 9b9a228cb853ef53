"""A plan names an employee by their Bitrix24 user (the finish's USER_ID, a lead's manager), however its staff
changed since it was made."""

from __future__ import annotations

from dataclasses import replace

from bridge.domain.scheme import Employee
from tests.domain.builders import plan


def test_an_employee_is_found_by_their_user_before_and_after_the_staff_changes() -> None:
    the_plan = plan()
    first = the_plan.employee_by_user(2)
    assert first is not None and first.ext == "1002"
    assert the_plan.employee_by_user(2) is first
    assert the_plan.employee_by_user(99) is None

    the_plan.employees["1002"] = replace(first, user_id=42)  # changed in place: same dict, same size
    moved = the_plan.employee_by_user(42)
    assert moved is not None and moved.ext == "1002"
    assert the_plan.employee_by_user(2) is None

    the_plan.employees["1006"] = Employee("1006", 6)
    added = the_plan.employee_by_user(6)
    assert added is not None and added.ext == "1006"
    other = replace(the_plan, employees={"2001": Employee("2001", 2)})
    again = other.employee_by_user(2)
    assert again is not None and again.ext == "2001"
