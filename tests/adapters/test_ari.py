"""AriLink against the Asterisk simulator over real sockets: whole calls driven like the core drives them."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from bridge.domain.commands import (
    AnswerCaller,
    CancelLeg,
    ConnectLeg,
    HangupCaller,
    PbxCommand,
    PlayPrompt,
    RecordVoicemail,
    RingAgent,
    RingNumber,
    StartMusic,
    StartRecording,
    StopPrompt,
)
from bridge.domain.events import (
    CallerHungUp,
    CallStarted,
    DtmfReceived,
    Intercepted,
    LegAnswered,
    LegEnded,
    LegOutcome,
    PromptFinished,
    RecordingReady,
    Transferred,
)
from bridge.pbx.ari import AriLink
from bridge.pbx.events import PbxError, PbxEvent, Resynced, StasisEntered
from bridge.sim.asterisk.parties import Answer, Busy, Congestion, NeverAnswer, Party, Reject, Unregistered
from bridge.sim.asterisk.simulator import AsteriskSimulator
from tests.adapters.pbx_fixtures import Events, running, settings_for, sim
from tests.eventually import eventually

__all__ = ["sim"]


class Core:
    """A tiny scripted core: executes the commands the real core would send for each step."""

    def __init__(self, link: AriLink, events: Events) -> None:
        self.link = link
        self.events = events
        self.call = ""

    async def started(self) -> CallStarted:
        (event,) = await self.events.wait(CallStarted)
        assert event.call is not None
        self.call = event.call
        assert isinstance(event.event, CallStarted)
        return event.event

    async def do(self, *commands: PbxCommand) -> None:
        for command in commands:
            await self.link.execute(self.call, command)

    def leg(self, n: int) -> str:
        return f"{self.call}-leg{n}"

    async def outcome(self, leg: str) -> LegOutcome:
        def ended() -> list[LegEnded]:
            return [e.event for e in self.events.of(LegEnded) if isinstance(e.event, LegEnded) and e.event.leg == leg]

        return (await eventually(ended, timeout=5, message=f"no LegEnded for {leg}"))[0].outcome


def requests(sim: AsteriskSimulator) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in sim.requests if r["proto"] == "ari"]


async def test_a_whole_inbound_walk_no_answer_next_answers_talk_hang_up(sim: AsteriskSimulator) -> None:
    sim.set_party("1002", NeverAnswer())
    sim.set_party("1001", Answer(after=0.1))
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    core = Core(link, events)
    async with running(link):
        await sim.place_inbound_call(did="74951112233", caller="79161234567", caller_name="Иван Петров",
                                     hangup_after_answer=0.5)  # fmt: skip
        started = await core.started()
        await core.do(AnswerCaller(), StartMusic(), RingAgent(core.leg(1), "1002", 0.3))
        assert await core.outcome(core.leg(1)) is LegOutcome.NO_ANSWER
        await core.do(RingAgent(core.leg(2), "1001", 3))
        (answered,) = await events.wait(LegAnswered)
        await core.do(ConnectLeg(core.leg(2)), StartRecording(f"{core.call}-talk"))
        await events.wait(CallerHungUp)
        await core.do(CancelLeg(core.leg(2)))
        await events.wait(RecordingReady)
        await core.outcome(core.leg(2))  # the agent leg's end may come after the PBX has forgotten the channel
        await eventually(lambda: not sim.channels(), timeout=3)
    assert started == CallStarted(line="74951112233", caller="79161234567", caller_name="Иван Петров")
    assert answered == PbxEvent(core.call, LegAnswered(core.leg(2)))
    kinds = [type(e.event).__name__ for e in events.all() if e.call == core.call]
    assert kinds[:4] == ["CallStarted", "LegEnded", "LegAnswered", "CallerHungUp"]
    assert sorted(kinds[4:]) == ["LegEnded", "RecordingReady"], "the agent hung up; the bridge recording stored"
    originate = next(r for r in sim.requests if r["path"] == f"/ari/channels/{core.leg(1)}")["params"]
    assert originate["endpoint"] == "Local/1002@agents" and originate["app"] == "b24bridge"
    assert originate["appArgs"] == f"agent,{core.call},{core.leg(1)}"
    assert originate["callerId"] == '"Иван Петров" <79161234567>'
    made = requests(sim)
    assert made.count("POST /ari/bridges") == 1, "one bridge per call"
    assert any(r.startswith("DELETE /ari/bridges/") and not r.endswith("/moh") for r in made), "bridge destroyed"
    assert any(r.endswith("/moh") and r.startswith("DELETE") for r in made), "music stopped when connected"


@pytest.mark.parametrize("template", ["Local/{ext}@agents", "PJSIP/{ext}"])
async def test_busy_unregistered_rejecting_and_congested_agents_are_skipped(
    sim: AsteriskSimulator, template: str
) -> None:
    parties: dict[str, Party] = {"1003": Busy(), "1004": Unregistered(), "1005": Reject(after=0.1),
                                 "1006": Congestion()}  # fmt: skip
    for ext, party in parties.items():
        sim.set_party(ext, party)
    events = Events()
    link = AriLink(settings_for(sim, agent_endpoint=template), events.queue)
    core = Core(link, events)
    outcomes = []
    async with running(link):
        await sim.place_inbound_call(did="74951112233", caller="74959876543", caller_name="ООО Ромашка",
                                     hangup_after=2.0)  # fmt: skip
        await core.started()
        await core.do(AnswerCaller(), StartMusic())
        for n, ext in enumerate(parties, start=1):
            await core.do(RingAgent(core.leg(n), ext, 2))
            outcomes.append(await core.outcome(core.leg(n)))
        (hung_up,) = await events.wait(CallerHungUp)
    assert outcomes == [LegOutcome.BUSY, LegOutcome.UNAVAILABLE, LegOutcome.REJECTED, LegOutcome.CONGESTION]
    assert hung_up.event == CallerHungUp(16)


async def test_a_dtmf_ivr_choice_arrives(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    core = Core(link, events)
    async with running(link):
        await sim.place_inbound_call(did="74951112244", caller="79161234567", dtmf=[(0.5, "2")], hangup_after=1.5)
        await core.started()
        await core.do(AnswerCaller(), PlayPrompt("greeting", "sound:hello-world"), StopPrompt("greeting"))
        await core.do(PlayPrompt("menu-1", "sound:hello-world"))
        (finished,) = await events.wait(PromptFinished)
        (digit,) = await events.wait(DtmfReceived)
        await core.do(HangupCaller())
    assert finished.event == PromptFinished("menu-1") and finished.call == core.call, "a stopped prompt is not reported"
    assert any(r.startswith("DELETE /ari/playbacks/") for r in requests(sim))
    assert digit.event == DtmfReceived("2") and digit.call == core.call


async def test_a_voicemail_is_recorded_and_fetched(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    core = Core(link, events)
    async with running(link):
        await sim.place_inbound_call(did="74951112233", caller="79161234567", hangup_after=1.0)
        await core.started()
        await core.do(AnswerCaller(), RecordVoicemail("vm-1", 30))
        (ready,) = await events.wait(RecordingReady)
        data = await link.fetch_recording("vm-1")
        missing = await link.fetch_recording("never-recorded")
    assert ready.event == RecordingReady("vm-1", ready.event.duration) and ready.call == core.call  # type: ignore[union-attr]
    record = next(r for r in sim.requests if r["path"].endswith("/record"))["params"]
    assert (record["beep"], record["terminateOn"], record["format"]) == ("true", "#", "wav")
    assert data and missing is None


async def test_a_websocket_drop_mid_call_reconnects_resyncs_and_reports_what_ended_meanwhile(
    sim: AsteriskSimulator,
) -> None:
    sim.set_party("1002", NeverAnswer())
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    core = Core(link, events)
    async with running(link):
        await sim.place_inbound_call(did="74951112233", caller="79161234567", hangup_after=3.0)
        await core.started()
        await core.do(AnswerCaller(), StartMusic(), RingAgent(core.leg(1), "1002", 0.5))
        link.retry_initial = 1.0  # stay away long enough for the leg to time out unseen
        await sim.drop_connections(ari=True, ami=False)
        resyncs = await events.wait(Resynced, count=2)
        (ended,) = await events.wait(LegEnded)
        assert link.connected
        await events.wait(CallerHungUp, within=5)
    listed = resyncs[-1].event
    assert isinstance(listed, Resynced) and core.call in {channel.id for channel in listed.channels}
    assert ended.event == LegEnded(core.leg(1), LegOutcome.NO_ANSWER)
    order = [type(e.event).__name__ for e in events.all()]
    assert order.index("LegEnded") < len(order) - 1 - order[::-1].index("Resynced"), "ends come before Resynced"


async def test_an_intercept_code_enters_stasis_for_the_daemon_to_route(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    async with running(link):
        await sim.intercept(ext="1001")
        (intercepted,) = await events.wait(Intercepted)
    assert intercepted.call is None
    assert isinstance(intercepted.event, Intercepted) and intercepted.event.ext == "1001"
    assert intercepted.event.leg in {c["id"] for c in sim.channels()}


async def test_click_to_call_legs_enter_as_stasis_entered(sim: AsteriskSimulator) -> None:
    sim.set_party("1001", Answer(after=0.1))
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    async with running(link):
        made = await link.originate("Local/1001@agents", "c2c-1", ["click2call", "84951234567"], '"CRM" <100>', 5)
        again = await link.originate("Local/1001@agents", "c2c-1", ["click2call", "84951234567"])
        (entered,) = await events.wait(StasisEntered)
    assert made["id"] == "c2c-1" and again == {}, "a second originate with the same id is not an error"
    assert entered.event == StasisEntered("c2c-1", ("click2call", "84951234567"), "100", "CRM",
                                          entered.event.name)  # type: ignore[union-attr]  # fmt: skip


async def test_ring_commands_that_cannot_work_end_the_leg_as_failed(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    core = Core(link, events)
    async with running(link):
        await sim.place_inbound_call(did="74951112233", caller="79161234567", hangup_after=2.0)
        await core.started()
        with capture_logs() as logs:
            await core.do(RingNumber(core.leg(1), "8495; Dial(evil)", 5))
        (failed,) = await events.wait(LegEnded)
        await core.do(RingAgent(core.leg(2), "1001", 5), RingAgent(core.leg(2), "1001", 5))
        await core.do(CancelLeg(core.leg(2)), CancelLeg(core.leg(2)))  # the second finds it gone: 404, fine
        await core.do(HangupCaller())
    assert failed.event == LegEnded(core.leg(1), LegOutcome.FAILED)
    assert any(e["event"] == "pbx.command_refused" for e in logs)
    assert not any("evil" in r["path"] or "evil" in str(r["params"]) for r in sim.requests)
    sent = [r["method"] for r in sim.requests if r["path"] == f"/ari/channels/{core.leg(2)}"]
    assert sent == ["POST", "POST", "DELETE", "DELETE"], "the retried originate and cancel are no errors"


async def test_a_blind_transfer_by_the_agent_rings_the_new_party_as_a_new_leg(sim: AsteriskSimulator) -> None:
    sim.set_party("1001", Answer(after=0.1))
    sim.set_party("1003", Answer(after=0.2))
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    core = Core(link, events)
    async with running(link):
        await sim.place_inbound_call(did="74951112233", caller="79161234567", hangup_after_answer=2.0)
        await core.started()
        await core.do(AnswerCaller(), RingAgent(core.leg(1), "1001", 3))
        await events.wait(LegAnswered)
        await core.do(ConnectLeg(core.leg(1)))
        replacement = await sim.blind_transfer(core.leg(1), "1003")
        (moved,) = await events.wait(Transferred)
        answered = await events.wait(LegAnswered, count=2)
        assert await core.outcome(core.leg(1)) is LegOutcome.HANGUP
    assert moved.event == Transferred(leg=replacement, ext="1003") and moved.call == core.call
    assert answered[-1].event == LegAnswered(replacement)
    assert not [e for e in events.all() if isinstance(e.event, StasisEntered)], "the replacement is our leg"


async def test_a_second_subscriber_takes_the_application_and_the_first_link_stops_for_good(
    sim: AsteriskSimulator,
) -> None:
    """Asterisk hands the app to the newest WebSocket and tells the old one ApplicationReplaced (the socket stays
    open, silent); the old link must stop rather than take the app back, or both would route the same calls."""
    first_events, second_events = Events(), Events()
    first = AriLink(settings_for(sim), first_events.queue)
    second = AriLink(settings_for(sim), second_events.queue)
    with capture_logs() as logs:
        async with running(first) as first_task, running(second):
            await eventually(lambda: first_task.done(), timeout=5)
            assert first.replaced.is_set() and not first.connected
            assert not second.replaced.is_set() and second.connected
            await sim.place_inbound_call(did="74951112233", caller="79161234567", hangup_after=1.0)
            await eventually(lambda: second_events.of(CallStarted), timeout=5)
            assert not first_events.of(CallStarted)
    replaced = [e for e in logs if e["event"] == "pbx.app_replaced"]
    assert len(replaced) == 1 and replaced[0]["app"] == "b24bridge"


async def test_application_replaced_for_another_app_name_changes_nothing(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    async with running(link) as task:
        await sim.inject_ari_event({"type": "ApplicationReplaced", "application": "someone-else"})
        await sim.place_inbound_call(did="74951112233", caller="79161234567", hangup_after=1.0)
        await eventually(lambda: events.of(CallStarted), timeout=5)
        assert link.connected and not link.replaced.is_set() and not task.done()


@pytest.mark.parametrize("refused", [False, True])
async def test_the_pbx_sends_only_the_messages_the_link_reads(
    sim: AsteriskSimulator, monkeypatch: pytest.MonkeyPatch, refused: bool
) -> None:
    """The link's event filter; a PBX that refuses it (before Asterisk 13.26/16.3) sends everything, and calls work
    the same."""
    sim.set_party("1001", Answer(after=0.1))
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    if refused:

        async def refuse(app: str, types: object) -> None:
            raise PbxError(404, "Resource not found", action="applications.filter")

        monkeypatch.setattr(link.rest, "filter_events", refuse)
    read: list[str] = []
    translate = link.translator.feed
    monkeypatch.setattr(link.translator, "feed", lambda message: read.append(message["type"]) or translate(message))
    core = Core(link, events)
    with capture_logs() as logs:
        async with running(link):
            await sim.place_inbound_call(did="74951112233", caller="79161234567", hangup_after_answer=0.3)
            await core.started()
            await core.do(AnswerCaller(), StartMusic(), RingAgent(core.leg(1), "1001", 3))
            await events.wait(LegAnswered)
            await core.do(ConnectLeg(core.leg(1)))
            await events.wait(CallerHungUp)
            await core.do(CancelLeg(core.leg(1)))
            await core.outcome(core.leg(1))
    assert [e.get("status") for e in logs if e["event"] == "pbx.event_filter_refused"] == ([404] if refused else [])
    assert "StasisStart" in read and "Dial" in read
    unread = set(read) - link.translator.event_types
    assert ("ChannelStateChange" in unread and "ChannelEnteredBridge" in unread) if refused else not unread
    assert {f["type"] for f in sim.bus.apps["b24bridge"].allowed} == (
        set() if refused else link.translator.event_types | {"ApplicationReplaced", "RESTResponse"}
    )
