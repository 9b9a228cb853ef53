"""Hypothesis: random plans and random event sequences (including forged and out-of-order events) never break
the core's promises: one finish per CRM leg and one for every registered leg by the end, each naming a user;
nothing after the end; one member at a time in a sequential walk; never more than 10 devices; the card only for
whoever rings or talks; attach only after finish; DURATION is talk time; no illegal state move."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.domain.call import (
    availability_watch,
    note_availability,
    only_records_availability,
    start_call,
    step,
)
from bridge.domain.events import (
    AvailabilityChanged,
    CallerHungUp,
    CallStarted,
    CrmClient,
    CrmLookedUp,
    DtmfReceived,
    Event,
    Intercepted,
    LegAnswered,
    LegEnded,
    LegOutcome,
    PromptFinished,
    RecordingReady,
    TimerFired,
    Transferred,
)
from bridge.domain.schedule import Schedule
from bridge.domain.scheme import (
    Action,
    Always,
    Availability,
    CallerPrefix,
    Condition,
    CrmField,
    Distribution,
    Employee,
    Hangup,
    HoldUntilFree,
    InHours,
    IvrMenu,
    KnownClient,
    Line,
    Plan,
    QueueGroup,
    Rule,
    ToEmployee,
    ToIvr,
    ToNumber,
    ToQueue,
    ToResponsible,
    ToVoicemail,
)
from bridge.domain.state import LIVE, Call, State
from tests.domain.builders import CALLER, LINE, T0
from tests.domain.ledger import Ledger

EXTS = [str(1001 + i) for i in range(12)]
ext = st.sampled_from(EXTS)
action: st.SearchStrategy[Action] = st.one_of(
    st.builds(ToQueue, st.sampled_from(["q1", "q2", "big", "nope"])),
    st.builds(ToEmployee, ext, st.integers(1, 3)),
    st.builds(ToIvr, st.sampled_from(["m", "m2"])),
    st.builds(ToResponsible, st.booleans(), st.integers(1, 3)),
    st.builds(HoldUntilFree, st.sampled_from(["q1", "q2"]), st.sampled_from([None, 30.0])),
    st.builds(ToNumber, st.just("74950000000"), st.integers(1, 3)),
    st.builds(ToVoicemail, st.sampled_from(["", "1001"])),
    st.just(Hangup()),
)
condition: st.SearchStrategy[Condition] = st.one_of(
    st.just(Always()),
    st.builds(InHours, st.just("office"), st.booleans()),
    st.builds(CallerPrefix, st.sampled_from([("7916",), ("7812",)])),
    st.builds(KnownClient, st.booleans()),
    st.builds(CrmField, st.just("OPPORTUNITY"), st.sampled_from([">=", "<", "="]), st.just("100000")),
)


@st.composite
def employees(draw: st.DrawFn) -> dict[str, Employee]:
    result = {}
    for e in EXTS:
        result[e] = Employee(
            e,
            int(e) - 1000,
            mobile=f"7916000{e}",
            supervisor_ext=draw(st.sampled_from(["", "1001", "1002"])),
            on_busy=draw(st.sampled_from([None, ToVoicemail(), ToNumber("74951234000", 1)])),
            unavailable_to_mobile=draw(st.booleans()),
            no_answer_to_mobile=draw(st.booleans()),
        )
    return result


@st.composite
def queues(draw: st.DrawFn, qid: str, max_members: int) -> QueueGroup:
    dist = draw(st.sampled_from(list(Distribution)))
    members = draw(st.lists(ext, min_size=1, max_size=max_members, unique=True))
    return QueueGroup(
        qid,
        tuple(members),
        distribution=dist,
        rings_per_member=draw(st.integers(0 if dist is Distribution.EVERYBODY else 1, 2)),
        passes=draw(st.integers(1, 2)),
        final=draw(action),
        missed_owner=draw(st.sampled_from(["", "1003"])),
        intercept_code="*8",
    )


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    menu = IvrMenu("m", "sound:m", ((("1", draw(action)), ("2", ToIvr("m2")))), 3.0, draw(st.integers(0, 2)))
    menu2 = IvrMenu("m2", "sound:m2", (("1", draw(action)),), 3.0, 0, on_fail=draw(action))
    rules = draw(st.lists(st.builds(Rule, condition, action), min_size=1, max_size=3))
    line = Line(
        LINE,
        rules=tuple(rules),
        fallback=draw(action),
        default_ext=draw(st.sampled_from(["", "1005"])),
        record=draw(st.booleans()),
        missed_task=draw(st.booleans()),
        missed_notify=draw(st.booleans()),
    )
    office = Schedule("office", "Europe/Moscow", {2: ((datetime.min.time(), datetime.min.time()),)})
    return Plan(
        lines={LINE: line},
        queues={
            "q1": draw(queues("q1", 4)),
            "q2": draw(queues("q2", 3)),
            "big": QueueGroup("big", tuple(EXTS), Distribution.EVERYBODY, draw(st.integers(0, 1)), final=Hangup()),
        },
        menus={"m": menu, "m2": menu2},
        employees=draw(employees()),
        schedules={"office": office},
        ring_seconds=5.0,
        crm_lookup_timeout=2.0,
        voicemail_max_seconds=20.0,
    )


def plausible(draw: st.DrawFn, call: Call, serial: int) -> list[Event]:
    """Events a real PBX / CRM would likely send in the call's state."""
    ringing = [leg.id for leg in call.ringing]
    events: list[Event] = []
    if ringing:
        leg = draw(st.sampled_from(ringing))
        events += [LegAnswered(leg), LegAnswered(leg), LegEnded(leg, draw(st.sampled_from(list(LegOutcome))))]
        ringing_ext = next(x.ext for x in call.ringing if x.id == leg)
        if ringing_ext:
            events.append(AvailabilityChanged(ringing_ext, draw(st.sampled_from(list(Availability)))))
            events.append(Intercepted(draw(ext), f"icpt{serial}", draw(st.sampled_from(["", "*8"]))))
    if call.released:
        events.append(LegAnswered(draw(st.sampled_from([leg.id for leg in call.released]))))
    if call.state is State.TALKING and call.talk:
        target = draw(st.sampled_from(["1004", "1007", "", "9999"]))
        number = "" if target else "74957654321"
        events += [
            Transferred(f"xfer{serial}", target, number, draw(st.booleans())),
            LegEnded(call.talk.leg, LegOutcome.HANGUP),
        ]
    if call.prompt:
        events += [PromptFinished(call.prompt), DtmfReceived(draw(st.sampled_from(["1", "2", "7"])))]
    if call.state is State.MENU_WAIT:
        events.append(DtmfReceived(draw(st.sampled_from(["1", "2", "7"]))))
    if call.state is State.LOOKUP:
        responsible = draw(st.sampled_from([None, 2, 3, 99]))
        fields = {"OPPORTUNITY": draw(st.sampled_from(["150000.00", "5000", "n/a"]))}
        events.append(CrmLookedUp(draw(st.sampled_from([None, CrmClient("CONTACT", 7, responsible, fields)]))))
    waiting = [leg.recording for leg in call.crm_legs if leg.recording and not leg.attached]
    if waiting:
        events.append(RecordingReady(draw(st.sampled_from(waiting))))
    if call.state is State.HOLDING and call.walk:
        members = list(call.plan.queues[call.walk.queue].members)
        events.append(AvailabilityChanged(draw(st.sampled_from(members)), Availability.AVAILABLE))
    return events


def anything(draw: st.DrawFn, call: Call, serial: int) -> list[Event]:
    """Any event at all, forged ones included."""
    legs = [leg.id for leg in (*call.ringing, *call.released)] + ["forged-leg"]
    return [
        TimerFired(),
        LegAnswered(draw(st.sampled_from(legs))),
        LegEnded(draw(st.sampled_from(legs)), draw(st.sampled_from(list(LegOutcome)))),
        AvailabilityChanged(draw(ext), draw(st.sampled_from(list(Availability)))),
        CallerHungUp(),
        DtmfReceived("5"),
        PromptFinished("forged-prompt"),
        RecordingReady("forged.wav"),
        CrmLookedUp(None),
        Intercepted(draw(ext), f"icpt{serial}", draw(st.sampled_from(["", "*8", "*9"]))),
        Transferred(f"xfer{serial}", "1004"),
        CallStarted(LINE, CALLER),
    ]


@st.composite
def next_event(draw: st.DrawFn, call: Call, serial: int, clock: float) -> tuple[Event, float]:
    """The next event and the clock (seconds after T0) it comes at; a TimerFired mostly at the deadline."""
    choice = draw(st.integers(0, 9))
    if choice <= 2 and call.deadline is not None:
        return TimerFired(), max(clock, (call.deadline - T0).total_seconds())
    events = plausible(draw, call, serial) if choice <= 7 else []
    event = draw(st.sampled_from(events or anything(draw, call, serial)))
    return event, clock + draw(st.sampled_from([0.0, 0.5, 3.0, 12.0]))


def drive(data: st.DataObject, plan: Plan, availability: dict[str, Availability], steps: int) -> None:
    call = start_call(plan, "c", T0)
    ledger = Ledger(plan)
    clock = 0.0

    def feed(event: Event) -> None:
        nonlocal call
        now = T0 + timedelta(seconds=clock)
        before = call
        if before.state in LIVE:  # the dispatcher tells a call at once only the extensions it watches
            watched = availability_watch(before)
            for other in set(EXTS) - watched:
                assert all(only_records_availability(before, other, found) for found in Availability)
        for ext_one, free in (("1001", Availability.AVAILABLE), ("1002", Availability.BUSY)):
            one, two = AvailabilityChanged(ext_one, free), AvailabilityChanged("1003", Availability.ABSENT)
            if not only_records_availability(before, ext_one, free):
                continue  # else the dispatcher's shortcut is the whole step, for one change or two
            assert (note_availability(before, {ext_one: free}), []) == step(before, one, now)
            if only_records_availability(before, "1003", Availability.ABSENT):
                stepped = step(step(before, one, now)[0], two, now)[0]
                assert note_availability(before, {ext_one: free, "1003": Availability.ABSENT}) == stepped
        call, commands = step(call, event, now)
        ledger.feed(before, event, now, call, commands)

    feed(CallStarted(LINE, CALLER, crm_key="k", availability=availability))
    for serial in range(steps):
        event, clock = data.draw(next_event(call, serial, clock))
        feed(event)
    # finish the call: the caller hangs up, then the timers run out
    feed(CallerHungUp())
    for _ in range(5):
        if call.deadline is not None:
            clock = max(clock, (call.deadline - T0).total_seconds())
        feed(TimerFired())
    assert call.state is State.DONE
    feed(CallerHungUp())  # nothing after the end


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    plan=plans(),
    availability=st.dictionaries(ext, st.sampled_from(list(Availability)), max_size=6),
    steps=st.integers(0, 25),
)
def test_random_calls_keep_every_promise(
    data: st.DataObject, plan: Plan, availability: dict[str, Availability], steps: int
) -> None:
    drive(data, plan, availability, steps)
