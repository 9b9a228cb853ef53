"""A step's operations reach the SQLite journal together: every one of them, or none."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.config import load_config
from bridge.dispatch.dispatcher import Dispatcher
from bridge.domain.commands import CallType, CrmCommand, CrmRegister
from bridge.journal.blocking import Journal
from bridge.ops.metrics import Metrics
from tests.fuzz.strategies import EXAMPLE_CONFIG

START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


class NoPbx:
    async def execute(self, call_id: str, cmd: object) -> None:
        pass


async def nobody(phone: str) -> None:
    return None


class FailingJournal(Journal):
    """A journal whose disk fails on the append of ``leg``."""

    failing = "leg-2"

    def append(self, cmd: CrmCommand, *, linkedid: str = "", pbx_call: str = "", line: str = "") -> int:
        op = super().append(cmd, linkedid=linkedid, pbx_call=pbx_call, line=line)
        if getattr(cmd, "crm_leg", "") == self.failing:
            raise OSError("disk full")
        return op


def register(leg: str) -> CrmRegister:
    return CrmRegister(leg, 7, "+79001234567", CallType.INCOMING, "74950000000", START, True)


def dispatcher_on(journal: Journal) -> Dispatcher:
    plan = load_config(EXAMPLE_CONFIG).plan
    return Dispatcher(
        plan=lambda: plan, pbx=NoPbx(), outbox=journal, outbox_changed=lambda: None, lookup=nobody, metrics=Metrics()
    )


async def test_a_step_whose_second_operation_cannot_be_journaled_leaves_none_of_them(tmp_path: Path) -> None:
    journal = FailingJournal(Journal.open(tmp_path / "journal.db").aio)
    with pytest.raises(OSError):
        dispatcher_on(journal)._emit("call-1", "1.1", "74950000000", [register("leg-1"), register("leg-2")],
                                     observed=False)  # fmt: skip
    assert journal.depth() == 0
    journal.close()


async def test_a_steps_operations_are_journaled_in_one_commit(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.db")
    before = journal.wal._committed
    dispatcher_on(journal)._emit("call-1", "1.1", "74950000000", [register("leg-1"), register("leg-2")],
                                 observed=False)  # fmt: skip
    assert journal.depth() == 2
    assert journal.wal._committed == before + 1
    journal.close()
