"""The desk carries on a click-to-call after a restart from whatever the PBX still has of it; each shape of what is
left (the employee's leg ringing or answered, the client's ringing, answered or gone, their bridge) is one row.
The whole calls across a real restart are in tests/integration/test_clicktocall_restart.py; the shapes only a race
leaves (the client answered but the dead process never joined them) are here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.clicktocall import ClickToCallDesk
from bridge.config import load_config
from bridge.dispatch.pbx_facts import RestartClaims
from bridge.domain.commands import CancelLeg, ConnectLeg, CrmAdopt, HangupCaller, RingNumber, StartRecording
from bridge.domain.events import LegAnswered, ObservedAnswered, ObservedEnded, ObservedStarted
from bridge.journal.rows import CallRow
from bridge.pbx.events import LiveChannel, PbxEvent
from bridge.recovery.view import PbxView
from tests.fuzz.strategies import EXAMPLE_CONFIG

KEY = "c2c-6b000000-1"
CLIENT = f"{KEY}-client"
ANSWER = datetime(2026, 12, 7, 1, 0, 0, tzinfo=UTC)


@dataclass
class Spy:
    """The dispatcher and the ARI link, as the desk uses them."""

    plan_: Any
    restart: RestartClaims = field(default_factory=RestartClaims)
    foreign: Any = None
    accepting: bool = True
    done: list[Any] = field(default_factory=list)
    taken: dict[str, Any] = field(default_factory=dict)

    def plan(self) -> Any:
        return self.plan_

    def start_observed(self, key: str, event: Any) -> None:
        self.done.append(event)

    def step_observed(self, key: str, event: Any, at: datetime | None = None) -> None:
        self.done.append((event, at) if at else event)

    def submit(self, key: str, command: Any) -> None:
        self.done.append(command)

    def take_over(self, call: str, legs: Any, *, bridge: str = "", recording: str = "") -> None:
        self.taken = {"legs": dict(legs), "bridge": bridge, "recording": recording}

    async def originate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("a resumed click-to-call originates nothing itself")


class Directory:
    def ext_for(self, user_id: int) -> str | None:
        return {11: "1001"}.get(user_id)


def channel(cid: str, name: str, *, answered: bool) -> LiveChannel:
    app, data = ("Stasis", f"b24bridge,agent,{KEY},{cid}") if answered else ("AppDial2", "(Outgoing Line)")
    return LiveChannel(id=cid, name=name, state="Up" if answered else "Ringing", app=app, app_data=data)


def view(employee: str = "", client: str = "", bridged: bool = False) -> PbxView:
    v = PbxView()
    if employee:
        v.channels[KEY] = channel(KEY, "PJSIP/1001-00000001", answered=employee == "up")
    if client:
        v.channels[CLIENT] = channel(CLIENT, "PJSIP/trunk-00000002", answered=client == "up")
    if bridged:
        v.bridges["b1"] = tuple(c for c in (KEY, CLIENT) if c in v.channels)
        v.bridge_names["b1"], v.bridge_created["b1"] = f"call-{KEY}", ANSWER
    return v


def row(user_id: int | None = 11) -> CallRow:
    return CallRow(crm_leg=f"{KEY}.1", line="", phone="79260000301", linkedid=KEY, pbx_call=KEY, call_type=1,
                   started_at=None, started_ts=None, answered_at=None, ended_at=None, user_id=user_id, duration=None,
                   status_code=None, recording=None, call_id="externalCall.x.1", mode="online", state="open",
                   created_at=0.0, updated_at=0.0)  # fmt: skip


def resume(v: PbxView, r: CallRow | None = None) -> tuple[str, Spy, ClickToCallDesk]:
    spy = Spy(load_config(EXAMPLE_CONFIG).plan)
    desk = ClickToCallDesk(load_config(EXAMPLE_CONFIG), spy, Directory())
    desk.attach(spy)  # type: ignore[arg-type]
    return desk.resume(KEY, r or row(), v), spy, desk


@pytest.mark.parametrize(
    ("shape", "found", "legs", "then"),
    [
        pytest.param(view("ringing"), "click-to-call ringing the employee, resumed", {KEY: False}, [],
                     id="employee-ringing"),
        pytest.param(view("up", "ringing"), "click-to-call ringing the client, resumed", {KEY: True, CLIENT: False},
                     [], id="client-ringing"),
        pytest.param(view("up", "up"), "click-to-call joining the client, resumed", {KEY: True, CLIENT: True},
                     [ConnectLeg(CLIENT), StartRecording(f"{KEY}-talk"), ObservedAnswered(ext="1001")],
                     id="client-answered-not-joined"),
        pytest.param(view("up"), "click-to-call ended while the bridge was away", {KEY: True},
                     [CancelLeg(KEY), HangupCaller(), ObservedEnded(dialstatus="NOANSWER")],
                     id="client-gone-before-answering"),
        pytest.param(view("up", "up", bridged=True), "click-to-call talking, resumed", {KEY: True, CLIENT: True},
                     [(ObservedAnswered(ext="1001"), ANSWER)], id="talking"),
        pytest.param(view("up", bridged=True), "click-to-call ended while the bridge was away", {KEY: True},
                     [(ObservedAnswered(ext="1001"), ANSWER), CancelLeg(KEY), HangupCaller(),
                      ObservedEnded(dialstatus="ANSWER", cause=16, recording=f"{KEY}-talk")], id="client-hung-up"),
        pytest.param(view(bridged=True), "click-to-call ended while the bridge was away", {},
                     [(ObservedAnswered(ext="1001"), ANSWER), CancelLeg(CLIENT), HangupCaller(),
                      ObservedEnded(dialstatus="ANSWER", cause=16, recording=f"{KEY}-talk")], id="both-hung-up"),
    ],
)  # fmt: skip
def test_what_is_left_on_the_pbx_decides_how_the_click_to_call_goes_on(
    shape: PbxView, found: str, legs: dict[str, bool], then: list[Any]
) -> None:
    got, spy, _desk = resume(shape)
    assert got == found
    assert spy.taken["legs"] == legs
    assert isinstance(spy.done[0], ObservedStarted) and spy.done[0].adopt_call_id == "externalCall.x.1"
    assert spy.done[1:] == then
    assert spy.restart.registered_already(KEY, CrmAdopt(f"{KEY}.1", "externalCall.x.1")), "adopted once, not twice"


@pytest.mark.parametrize(
    ("shape", "r"),
    [
        pytest.param(view(), row(), id="nothing-left"),
        pytest.param(view("up", "up", bridged=True), row(user_id=None), id="journaled-by-an-older-version"),
        pytest.param(view(bridged=True), row(user_id=99), id="employee-without-an-extension"),
    ],
)
def test_a_click_to_call_that_cannot_go_on_is_left_to_recovery(shape: PbxView, r: CallRow) -> None:
    got, spy, desk = resume(shape, r)
    assert got == "" and spy.done == [] and desk.sessions == {}


def test_an_employee_the_directory_does_not_know_yet_is_known_by_their_phone() -> None:
    """``auto_map`` before the directory's first refresh: the employee's leg (``PJSIP/1001-...``) names them."""
    got, _spy, desk = resume(view("up", "up", bridged=True), row(user_id=17))
    assert got == "click-to-call talking, resumed"
    assert desk.sessions[KEY].ext == "1001"


@pytest.mark.parametrize("seen", [pytest.param("up", id="after-the-answer"), pytest.param("ringing", id="before-it")])
def test_an_employee_who_answers_before_recovery_looks_gets_the_client_dialled(seen: str) -> None:
    """The new process's link reports the answer before recovery has handed the call to the desk (whatever the
    look at the PBX saw): the dead process never dialled the client, so the desk does, once."""
    spy = Spy(load_config(EXAMPLE_CONFIG).plan)
    desk = ClickToCallDesk(load_config(EXAMPLE_CONFIG), spy, Directory())
    desk.attach(spy)  # type: ignore[arg-type]
    assert desk.owns_event(PbxEvent(KEY, LegAnswered(KEY))) is False, "nobody runs it yet: the dispatcher ignores it"
    assert (
        desk.resume(KEY, row(), view(seen))
        == "click-to-call answered by the employee at the restart, dialling the client"
    )
    (ring,) = [c for c in spy.done if isinstance(c, RingNumber)]
    assert (ring.leg, ring.number) == (CLIENT, "79260000301")
    assert desk.owns_event(PbxEvent(KEY, LegAnswered(KEY))) is True and spy.done[-1] == ring, "not dialled twice"
