"""A restart's recovery never sends a finish without a user: a call the journal names nobody for (a click-to-call
adopted by a version that did not keep who clicked) is finished for the line's owner, and the log says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from bridge.dispatch.pbx_facts import RestartClaims
from bridge.domain.commands import CrmAdopt, CrmFinish
from bridge.journal import Journal
from bridge.pbx.outcomes import EndpointTemplate
from bridge.recovery import Recovery
from bridge.recovery.view import PbxView

OLD = "c2c-6b000000-1"


class NoPbx:
    async def request(self, resource: str, operation: str, **params: object) -> Any:
        raise AssertionError(f"nothing is left on the PBX to {operation}")


async def recover(journal: Journal, owner: int) -> list[dict[str, Any]]:
    recovery = Recovery(
        journal.aio, RestartClaims(), app="b24bridge", agents=EndpointTemplate("PJSIP/{ext}"),
        device=EndpointTemplate("PJSIP/{ext}"), user_of=lambda _ext: 0, notify=lambda: None,
        owner_of=lambda line: owner if line == "" else -1, poll=0.01,
    )  # fmt: skip

    await recovery.load()

    async def look() -> PbxView:
        return PbxView()  # the call ended while no daemon ran

    with capture_logs() as logs:
        await recovery.run(lambda: True, look, NoPbx(), lambda _call: False)
    return logs


def finishes(journal: Journal) -> list[Any]:
    return [op.command for op in journal.operations(f"{OLD}.1") if op.kind == "finish"]


async def test_a_click_to_call_journaled_without_its_user_is_finished_for_the_lines_owner(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "journal.db") as journal:
        journal.append(CrmAdopt(f"{OLD}.1", "externalCall.old.1"), linkedid=OLD, pbx_call=OLD)
        logs = await recover(journal, owner=15)
        assert finishes(journal) == [CrmFinish(f"{OLD}.1", 15, 0, "304")]
        (warning,) = [e for e in logs if e["event"] == "call.warning"]
        assert "names nobody" in warning["problem"] and "line's owner, user 15" in warning["problem"]


async def test_with_no_owner_anywhere_nothing_is_sent_rather_than_a_finish_without_a_user(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "journal.db") as journal:
        journal.append(CrmAdopt(f"{OLD}.1", "externalCall.old.1"), linkedid=OLD, pbx_call=OLD)
        logs = await recover(journal, owner=0)
        assert finishes(journal) == []
        (warning,) = [e for e in logs if e["event"] == "call.warning"]
        assert "no line has a default_ext: not finished" in warning["problem"]


async def test_a_click_to_call_that_ended_while_no_daemon_ran_is_finished_for_who_clicked(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "journal.db") as journal:
        journal.append(CrmAdopt(f"{OLD}.1", "externalCall.old.1", user_id=12, phone="79260000301"), pbx_call=OLD)
        logs = await recover(journal, owner=15)
        assert finishes(journal) == [CrmFinish(f"{OLD}.1", 12, 0, "304")]
        assert not [e for e in logs if e["event"] == "call.warning"]
