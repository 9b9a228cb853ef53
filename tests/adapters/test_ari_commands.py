"""CallCommands on its own: waiting for the link, retrying a broken request, reporting a command that failed for
good as what it means for the call, and the answer that crosses a ring timeout's cancel."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any

import pytest

from bridge.config import load_config
from bridge.domain.commands import CancelLeg, ConnectLeg, PlayPrompt, RingAgent, StartMusic, StopMusic
from bridge.domain.events import LegEnded, LegOutcome, PromptFinished
from bridge.pbx.ari_commands import CallCommands
from bridge.pbx.events import PbxError, PbxEvent
from bridge.pbx.outcomes import EndpointTemplate
from bridge.pbx.translate import AriTranslator
from tests.fuzz.strategies import EXAMPLE_CONFIG

CALL = "caller-1"


class FakeAri:
    """Answers REST requests; ``down`` makes every request fail as a closed link would (status 0)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.down = False
        self.up = asyncio.Event()
        self.up.set()

    async def request(self, resource: str, operation: str, **params: Any) -> Any:
        if self.down:
            raise PbxError(0, "ARI not connected", action=f"{resource}.{operation}")
        self.sent.append((resource, operation, params))
        return {"id": "bridge-1"} if operation == "create" else None

    async def ready(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.up.wait(), max(timeout, 0.0))
        return self.up.is_set()

    def operations(self) -> list[str]:
        return [f"{resource}.{operation}" for resource, operation, _ in self.sent]


def commands_for(ari: FakeAri, emitted: list[PbxEvent], *, wait: bool = True) -> CallCommands:
    settings = replace(load_config(EXAMPLE_CONFIG).asterisk, reconnect_max_delay=0.2)
    translator = AriTranslator(EndpointTemplate(settings.device))
    channel = {"id": CALL, "name": "PJSIP/trunk-00000001", "caller": {"name": "", "number": "79161234567"}}
    translator.feed({"type": "StasisStart", "args": ["inbound", "74951112233"], "channel": channel})
    return CallCommands(settings, translator, ari.request, emitted.append, ari.ready if wait else None)


def answered(commands: CallCommands, leg: str) -> list[PbxEvent]:
    channel = {"id": leg, "name": "Local/1001@agents-00000001;1"}
    return commands.translator.feed({"type": "StasisStart", "args": ["agent", CALL, leg], "channel": channel})


async def test_a_command_waits_for_the_link_and_then_runs() -> None:
    ari, emitted = FakeAri(), []
    commands = commands_for(ari, emitted)
    ari.down = True
    ari.up.clear()
    running = asyncio.create_task(commands.execute(CALL, RingAgent("leg-1", "1001", 10)))
    await asyncio.sleep(0)
    ari.down = False
    ari.up.set()
    await asyncio.wait_for(running, 5)
    assert ari.operations() == ["channels.originateWithId"] and emitted == []


async def test_a_ring_the_link_never_comes_back_for_ends_the_leg_failed_after_the_wait() -> None:
    ari, emitted = FakeAri(), []
    commands = commands_for(ari, emitted)
    ari.down = True
    ari.up.clear()
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(PbxError) as failed:
        await commands.execute(CALL, RingAgent("leg-1", "1001", 10))
    assert failed.value.status == 0
    assert loop.time() - began >= commands.link_wait * 0.9, "it gave up before the wait was over"
    assert [e.event for e in emitted] == [LegEnded("leg-1", LegOutcome.FAILED)]


async def test_a_prompt_that_cannot_play_has_finished_and_a_failed_connect_is_no_conversation() -> None:
    ari, emitted = FakeAri(), []
    commands = commands_for(ari, emitted, wait=False)
    ari.down = True
    for command in (PlayPrompt("p1", "sound:hello"), ConnectLeg("leg-1")):
        with pytest.raises(PbxError):
            await commands.execute(CALL, command)
    failed = PromptFinished("p1", failed="sound:hello")  # the core goes on (or plays the plan's own media)
    assert [e.event for e in emitted] == [failed, LegEnded("leg-1", LegOutcome.FAILED)]


async def test_a_ring_timeouts_cancel_spares_a_leg_that_has_answered_and_it_joins() -> None:
    ari, emitted = FakeAri(), []
    commands = commands_for(ari, emitted)
    await commands.execute(CALL, RingAgent("leg-1", "1001", 10))
    assert [e.event for e in answered(commands, "leg-1")] != []
    await commands.execute(CALL, CancelLeg("leg-1", unless_answered=True))
    assert "channels.hangup" not in ari.operations()
    await commands.execute(CALL, ConnectLeg("leg-1"))
    assert ("bridges", "addChannel", {"bridgeId": "bridge-1", "channel": "leg-1"}) in ari.sent
    # a plain cancel (the core did not take the answer) still hangs it up
    await commands.execute(CALL, CancelLeg("leg-1"))
    assert ari.operations()[-1] == "channels.hangup"


async def test_a_leg_hung_up_by_a_cancel_before_it_joined_ends_failed_and_is_not_joined() -> None:
    ari, emitted = FakeAri(), []
    commands = commands_for(ari, emitted)
    await commands.execute(CALL, RingAgent("leg-1", "1001", 10))
    await commands.execute(CALL, CancelLeg("leg-1", unless_answered=True))  # went out before the answer was seen
    answered(commands, "leg-1")
    await commands.execute(CALL, ConnectLeg("leg-1"))
    assert "bridges.addChannel" not in ari.operations()
    assert [e.event for e in emitted] == [LegEnded("leg-1", LegOutcome.FAILED)]
    ended = commands.translator.feed({"type": "StasisEnd", "channel": {"id": "leg-1"}})
    assert [commands.reviewed(e).event for e in ended] == [LegEnded("leg-1", LegOutcome.FAILED)]


async def test_a_leg_that_joined_and_is_cancelled_later_ends_as_a_hangup() -> None:
    ari, emitted = FakeAri(), []
    commands = commands_for(ari, emitted)
    await commands.execute(CALL, RingAgent("leg-1", "1001", 10))
    answered(commands, "leg-1")
    await commands.execute(CALL, ConnectLeg("leg-1"))
    await commands.execute(CALL, CancelLeg("leg-1"))
    ended = commands.translator.feed({"type": "StasisEnd", "channel": {"id": "leg-1"}})
    assert [commands.reviewed(e).event for e in ended] == [LegEnded("leg-1", LegOutcome.HANGUP)]


async def test_music_a_broken_link_did_not_stop_is_stopped_when_the_command_is_retried() -> None:
    """The stop lost with the link is sent again by the retry, before the agent joins the caller: the agent must
    not hear the caller's music on hold."""
    ari, emitted = FakeAri(), []
    commands = commands_for(ari, emitted)
    await commands.execute(CALL, StartMusic())
    real = ari.request
    broken = [True]

    async def once_broken(resource: str, operation: str, **params: Any) -> Any:
        if operation == "stopMoh" and broken:
            broken.clear()
            raise PbxError(0, "ARI not connected", action=f"{resource}.{operation}")
        return await real(resource, operation, **params)

    commands.request = once_broken
    await commands.execute(CALL, StopMusic())
    assert ari.operations()[-1] == "bridges.stopMoh" and not commands.calls[CALL].music
    assert emitted == []
