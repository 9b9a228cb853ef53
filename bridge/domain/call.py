"""The per-call state machine of an inbound call in the Stasis application.

``step(call, event, now) -> (call, commands)``; ``call.deadline`` is when the shell must feed ``TimerFired``.
Created by ``start_call`` in NEW; everything else happens by stepping events. The rules:

NEW        CallStarted: answer the caller. With a greeting (the line's, else the plan's): play it -> GREETING.
           Then, if a rule (or an action reachable from one) needs CRM data (KnownClient, CrmField,
           ToResponsible): ``LookupCrm``, music, -> LOOKUP. Else route.
GREETING   PromptFinished: as NEW goes on. A line's greeting or voicemail prompt Asterisk could not play (a
           missing sound file) is replaced by the plan's, if that is another; else the call goes on (warning).
LOOKUP     CrmLookedUp, or TimerFired after ``plan.crm_lookup_timeout`` (the caller counts as unknown): route.
route      Register the CRM call (TYPE 2, SHOW 0, CALL_START_DATE = the call's start) for the responsible
           manager, else the line's default extension, else (later) the first employee rung; then the rule
           chain (``routing``): the first rule whose condition holds runs its action; an action that cannot
           run passes the call to the next rule, then the fallback, then hang-up.
RINGING    One or more legs ring (``walk``), music on. TimerFired / LegEnded / AvailabilityChanged of a
           ringing member: release it and move on. LegAnswered: connect it, release every other leg,
           record -> TALKING. Intercepted by a member of the ringing group: they take the call.
HOLDING    Hold until free: music until a queue member becomes available, then offer (-> RINGING) and back.
MENU_*     IVR (``ivr``): prompt, a key selects, timeouts and invalid keys replay, then ``on_fail``.
VOICEMAIL_*  Intro prompt, then the message is recorded until the caller hangs up or the time is up.
TALKING    CallerHungUp: hang up the agent; the agent's LegEnded: hang up the caller; either way the CRM leg
           is finished once with the talk time. Transferred: each conversation leg is its own CRM call.
           The agent's LegEnded(FAILED): the leg never joined (the shell's word for a failed ConnectLeg), no
           conversation happened, the interrupted walk goes on (-> RINGING).
WRAP_UP    Every CRM leg finished; RecordingReady attaches (always after finish); TimerFired gives up.
DONE       Terminal, no deadline; every event is ignored.

In every state with the caller on the line: CallerHungUp ends the call (missed if nobody talked: 304 for the
missed-call owner); AvailabilityChanged is recorded; a leg the core released that still answers is hung up,
except that a leg released by the core's own ring timeout in the previous step wins the call if its answer
comes before its end and nobody else has answered; a released leg's LegEnded is absorbed.

An event with no entry for the current state changes nothing and is reported in ``call.ignored``; a move the
table in ``state.MOVES`` does not allow raises ``IllegalMove`` (a bug in the core, never bad input).
The cards follow the ring: ``cards.sync`` runs after every step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bridge.domain import cards, ivr, routing, walk
from bridge.domain.commands import AnswerCaller, CancelLeg, HangupCaller, LookupCrm, PlayPrompt, ReleaseReason
from bridge.domain.ending import end_missed, end_talk
from bridge.domain.events import (
    AvailabilityChanged,
    CallerHungUp,
    CallStarted,
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
from bridge.domain.legs import music_on
from bridge.domain.overlay import held, with_changes
from bridge.domain.records import replace
from bridge.domain.rules import needs_crm
from bridge.domain.scheme import Availability, Plan
from bridge.domain.state import LIVE, Call, Leg, State, Step, move, next_id
from bridge.domain.talk import connect, not_joined, on_transfer
from bridge.domain.walk import WalkStep

Handler = Callable[[Call, Any, datetime], Step]


def start_call(plan: Plan, call_id: str, now: datetime, serial: int = 0) -> Call:
    """A new call; ``serial``: its ids go on from there (a call a restart resumes)."""
    return Call(plan=plan, call_id=call_id, started_at=now, serial=serial)


def step(call: Call, event: Event, now: datetime) -> Step:
    """Feed one event; returns the new call and the commands for the shell, in order."""
    handler = TABLE.get((call.state, type(event)))
    if handler is None:
        return _ignore(call, f"{type(event).__name__} has no meaning in state {call.state.value}")
    fresh = replace(call, ignored="", warning="") if call.ignored or call.warning else call
    new, commands = handler(fresh, event, now)
    if new.ignored:
        return replace(call, ignored=new.ignored, warning=""), []
    if new.grace and new.grace == call.grace:
        new = replace(new, grace=())  # the grace of a timeout lasts one step
    new, shown = cards.sync(new)
    return new, commands + shown


def _ignore(call: Call, reason: str) -> Step:
    return replace(call, ignored=reason, warning=""), []


def _follow(result: WalkStep, now: datetime) -> Step:
    call, commands, follow = result
    call, more = routing.then(call, follow, now)
    return call, commands + more


def _find(legs: tuple[Leg, ...], leg_id: str) -> Leg | None:
    for leg in legs:  # a loop, not next() over a generator: a leg or two
        if leg.id == leg_id:
            return leg
    return None


def _timer(handler: Callable[[Call, datetime], Step]) -> Handler:
    """A TimerFired handler that runs only once the deadline has passed (a stale timer is ignored)."""

    def on_timer(call: Call, event: TimerFired, now: datetime) -> Step:
        deadline = call.deadline
        if deadline is None or now < deadline:
            return _ignore(call, "no deadline has passed")
        return handler(call, now)

    return on_timer


# --- start and routing ---------------------------------------------------------------------------


def _started(call: Call, event: CallStarted, now: datetime) -> Step:
    line = call.plan.lines.get(event.line)
    call = replace(
        call,
        line=event.line,
        caller=event.caller,
        crm_key=event.crm_key,
        linkedid=event.linkedid,
        call_type=event.call_type,
        availability=held(event.availability),
        answered_today=held(event.answered_today),
        open_leads=dict(event.open_leads),
        open_deals=dict(event.open_deals),
        last_assigned=dict(event.last_assigned),
    )
    if line is None:
        call = move(call, State.DONE, ended_at=now, warning=f"line {event.line!r} is not configured")
        return call, [HangupCaller("unallocated")]
    greeting = call.plan.greeting_of(event.line)
    if greeting:
        call, prompt = next_id(call, "prompt")
        return move(call, State.GREETING, prompt=prompt), [AnswerCaller(), PlayPrompt(prompt, greeting)]
    call, commands = _lookup_or_route(call, now)
    return call, [AnswerCaller(), *commands]


def _lookup_or_route(call: Call, now: datetime) -> Step:
    if needs_crm(call.plan, call.plan.lines[call.line]):
        call, music = music_on(call)
        timer = now + timedelta(seconds=call.plan.crm_lookup_timeout)
        return move(call, State.LOOKUP, timer=timer), [LookupCrm(call.caller), *music]
    return _route(call, now)


def _route(call: Call, now: datetime) -> Step:
    client = call.client
    default = cards.employee_user(call, call.plan.lines[call.line].default_ext)
    owner = client.responsible_user_id if client and client.responsible_user_id else default
    call, registered = cards.ensure_registered(replace(call, timer=None), owner, now)
    call, commands = routing.first_rule(call, now)
    return call, registered + commands


def _looked_up(call: Call, event: CrmLookedUp, now: datetime) -> Step:
    return _route(replace(call, client=event.client), now)


# --- legs ----------------------------------------------------------------------------------------


def _answered(call: Call, event: LegAnswered, now: datetime) -> Step:
    leg = _find(call.ringing, event.leg)
    return connect(call, leg, now) if leg else _late_answer(call, event, now)


def _late_answer(call: Call, event: LegAnswered, now: datetime) -> Step:
    leg = _find(call.released, event.leg)
    if leg is None:
        return _ignore(call, f"leg {event.leg} is not one of this call's")
    if leg.id in call.grace:
        return connect(call, leg, now)
    return call, [CancelLeg(leg.id, reason=ReleaseReason.TOO_LATE)]


def _answered_talking(call: Call, event: LegAnswered, now: datetime) -> Step:
    if call.talk and call.talk.leg == event.leg:
        return _ignore(call, f"leg {event.leg} already talks")
    return _late_answer(call, event, now)


def _ended(call: Call, event: LegEnded, now: datetime) -> Step:
    leg = _find(call.ringing, event.leg)
    if leg is None:
        return _leg_gone(call, event, now)
    return _follow(walk.on_leg_ended(call, leg, event.outcome, now), now)


def _ended_talking(call: Call, event: LegEnded, now: datetime) -> Step:
    if call.talk and call.talk.leg == event.leg and event.outcome is LegOutcome.FAILED:
        return _follow(not_joined(call, now), now)  # an answered leg ends as HANGUP: FAILED means it never joined
    if call.talk and call.talk.leg == event.leg:
        return end_talk(call, now, by_caller=False)
    return _leg_gone(call, event, now)


def _leg_gone(call: Call, event: LegEnded, now: datetime) -> Step:
    if _find(call.released, event.leg) is None:
        return _ignore(call, f"leg {event.leg} is not one of this call's")
    return replace(call, released=tuple(leg for leg in call.released if leg.id != event.leg)), []


def _availability(call: Call, event: AvailabilityChanged, now: datetime) -> Step:
    return replace(call, availability=with_changes(call.availability, {event.ext: event.availability})), []


def only_records_availability(call: Call, ext: str, availability: Availability) -> bool:
    """True when :func:`step` only records ``AvailabilityChanged(ext, availability)``: no command, no card, no
    timer (no walk under way, or the walk has nothing to do with it); :func:`note_availability` then does what the
    steps would.

    Every agent's device change reaches every call in progress, so this is the dispatcher's most frequent step."""
    handler = TABLE.get((call.state, AvailabilityChanged))
    if handler is _availability:
        return True
    return handler is _availability_walking and walk.ignores_availability(call, ext, availability)


def availability_watch(call: Call) -> frozenset[str]:
    """The extensions whose availability change may do more than be recorded (:func:`only_records_availability`
    is True for every other one, while the call is live): while a walk is under way, those its legs ring and the
    members of the queue being walked; else none. The dispatcher tells a call only these at once."""
    if TABLE.get((call.state, AvailabilityChanged)) is not _availability_walking:
        return frozenset()
    return walk.watched(call)


def note_availability(
    call: Call, changes: Mapping[str, Availability], over: Mapping[str, Availability] | None = None
) -> Call:
    """The call after one ``AvailabilityChanged`` step per change, when :func:`only_records_availability` holds.

    ``over``: a view that reads as the call's own for every extension outside ``changes`` (the shell's view of every
    agent, shared by the calls started from it), to keep instead of the call's own view with the changes on top."""
    view = call.availability if over is None else over
    kept = with_changes(view, changes) if changes else held(view)
    return replace(call, availability=kept, ignored="", warning="", grace=())


def _availability_walking(call: Call, event: AvailabilityChanged, now: datetime) -> Step:
    call, _ = _availability(call, event, now)
    return _follow(walk.on_availability(call, event.ext, event.availability, now), now)


def _intercepted(call: Call, event: Intercepted, now: datetime) -> Step:
    queue = call.plan.queues.get(walk.current(call).queue)
    if queue is None or not call.plan.intercepts(queue, event.ext, event.code):
        return _refuse_intercept(call, event, now)
    leg = Leg(event.leg, now, ext=event.ext, user_id=cards.employee_user(call, event.ext))
    return connect(call, leg, now)


def _refuse_intercept(call: Call, event: Intercepted, now: datetime) -> Step:
    refused = CancelLeg(event.leg, reason=ReleaseReason.NOT_ALLOWED)
    return replace(call, warning=f"{event.ext} may not intercept this call now"), [refused]


# --- media ---------------------------------------------------------------------------------------


def _prompt_done(handler: Callable[[Call, datetime], Step]) -> Handler:
    def on_prompt(call: Call, event: PromptFinished, now: datetime) -> Step:
        if event.prompt != call.prompt:
            return _ignore(call, f"prompt {event.prompt} is not playing")
        if event.failed:
            spare = _spare_media(call, event.failed)
            then = f"playing {spare} instead" if spare else "going on"
            call = replace(call, warning=f"could not play {event.failed} (is the sound file installed?): {then}")
            if spare:
                call, prompt = next_id(call, "prompt")
                return replace(call, prompt=prompt), [PlayPrompt(prompt, spare)]
        return handler(call, now)

    return on_prompt


def _spare_media(call: Call, failed: str) -> str:
    """The plan's own greeting or voicemail prompt when the line's could not be played ("" when none is left)."""
    spare = {State.GREETING: call.plan.greeting, State.VOICEMAIL_PROMPT: call.plan.voicemail_prompt}.get(call.state)
    return spare if spare and spare != failed else ""


def _menu_prompt_done(call: Call, now: datetime) -> Step:
    return _follow(ivr.on_prompt_finished(call, now), now)


def _digit(call: Call, event: DtmfReceived, now: datetime) -> Step:
    return _follow(ivr.on_digit(call, event.digit), now)


def _recording(call: Call, event: RecordingReady, now: datetime) -> Step:
    result = cards.recording_ready(call, event.name)
    if result is None:
        return _ignore(call, f"no call leg waits for recording {event.name}")
    call, commands = result
    if call.state is State.WRAP_UP and not cards.recordings_pending(call):
        call, commands = move(call, State.DONE, timer=None, held=()), [*commands, *call.held]
    return call, commands


def _voicemail_stored(call: Call, event: RecordingReady, now: datetime) -> Step:
    result = cards.recording_ready(call, event.name)
    if result is None:
        return _ignore(call, f"no call leg waits for recording {event.name}")
    return end_missed(result[0], now, hang_up=True)


def _give_up_recordings(call: Call, now: datetime) -> Step:
    late = ", ".join(leg.recording for leg in call.crm_legs if leg.recording and not leg.attached)
    done = move(call, State.DONE, timer=None, held=(), warning=f"recordings not stored in time: {late}")
    return done, list(call.held)


# --- the table -----------------------------------------------------------------------------------


def _table() -> dict[tuple[State, type], Handler]:
    table: dict[tuple[State, type], Handler] = {(State.NEW, CallStarted): _started}
    for state in LIVE:
        table[(state, CallerHungUp)] = lambda call, event, now: end_missed(call, now, hang_up=False)
        table[(state, AvailabilityChanged)] = _availability
        table[(state, RecordingReady)] = _recording
        table[(state, LegEnded)] = _leg_gone
        table[(state, LegAnswered)] = _late_answer
        table[(state, Intercepted)] = _refuse_intercept
    for state in (State.RINGING, State.HOLDING):
        table[(state, AvailabilityChanged)] = _availability_walking
        table[(state, TimerFired)] = _timer(lambda call, now: _follow(walk.on_timeout(call, now), now))
    table.update(
        {
            (State.GREETING, PromptFinished): _prompt_done(
                lambda call, now: _lookup_or_route(replace(call, prompt=""), now)
            ),
            (State.LOOKUP, CrmLookedUp): _looked_up,
            (State.LOOKUP, TimerFired): _timer(_route),
            (State.RINGING, LegAnswered): _answered,
            (State.RINGING, LegEnded): _ended,
            (State.RINGING, Intercepted): _intercepted,
            (State.MENU_PROMPT, PromptFinished): _prompt_done(_menu_prompt_done),
            (State.MENU_PROMPT, DtmfReceived): _digit,
            (State.MENU_WAIT, DtmfReceived): _digit,
            (State.MENU_WAIT, TimerFired): _timer(lambda call, now: _follow(ivr.on_wait_timeout(call), now)),
            (State.VOICEMAIL_PROMPT, PromptFinished): _prompt_done(
                lambda call, now: ivr.on_voicemail_prompt_finished(call, now)
            ),
            (State.VOICEMAIL_RECORDING, TimerFired): _timer(lambda call, now: end_missed(call, now, hang_up=True)),
            (State.VOICEMAIL_RECORDING, RecordingReady): _voicemail_stored,
            (State.TALKING, CallerHungUp): lambda call, event, now: end_talk(call, now, by_caller=True),
            (State.TALKING, LegAnswered): _answered_talking,
            (State.TALKING, LegEnded): _ended_talking,
            (State.TALKING, Transferred): lambda call, event, now: on_transfer(call, event, now),
            (State.WRAP_UP, RecordingReady): _recording,
            (State.WRAP_UP, TimerFired): _timer(_give_up_recordings),
        }
    )
    return table


TABLE = _table()
"""(state, event type) -> handler. Anything not here is ignored."""
