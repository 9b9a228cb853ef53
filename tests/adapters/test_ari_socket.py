"""REST over the events WebSocket (``asterisk.rest_over_websocket``) against the simulator: the same answers and errors
as over HTTP, requests matched by id, timeouts, a dropped socket, a PBX too old to take them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from bridge.domain.commands import AnswerCaller, ConnectLeg, PlayPrompt, RingAgent, StartMusic, StopPrompt
from bridge.domain.events import CallStarted
from bridge.pbx import ari_rest
from bridge.pbx.ari import AriLink
from bridge.pbx.events import PbxError
from bridge.sim.asterisk.simulator import AsteriskSimulator
from tests.adapters.pbx_fixtures import ARI_PASSWORD, Events, running, settings_for, sim
from tests.eventually import eventually

__all__ = ["sim"]


def via(sim: AsteriskSimulator, suffix: str) -> list[str]:
    return [r["via"] for r in sim.requests if r["proto"] == "ari" and r["path"].endswith(suffix)]


async def ready_link(sim: AsteriskSimulator, mode: str = "auto") -> AriLink:
    link = AriLink(settings_for(sim, rest_over_websocket=mode), asyncio.Queue())
    return link


async def until_over_socket(link: AriLink) -> None:
    await eventually(lambda: link.rest.over_socket is not None and link.rest.over_socket.ready, timeout=5)


async def test_auto_sends_requests_over_the_socket_with_the_same_parameters_and_answers(
    sim: AsteriskSimulator,
) -> None:
    link = await ready_link(sim)
    with capture_logs() as logs:
        async with running(link):
            await until_over_socket(link)
            bridge = await link.request("bridges", "create", type="mixing", name="ws")
            recording = await link.request("bridges", "record", bridgeId=bridge["id"], name="r1", format="wav",
                                           beep=False)  # fmt: skip
            made = await link.originate("Local/1001@agents", "leg-1", ["agent", "c-1"], variables={"B24_CALL": "c-1"})
            assert await link.request("bridges", "destroy", bridgeId=bridge["id"]) is None
    assert [e["mode"] for e in logs if e["event"] == "pbx.rest_over_websocket"] == ["auto"]
    assert bridge["name"] == "ws" and recording["name"] == "r1" and made["id"] == "leg-1"
    assert [r["params"] for r in sim.requests if r["path"].endswith("/record")] == [
        {"name": "r1", "format": "wav", "beep": "false"}
    ]
    assert via(sim, "/record") == via(sim, "/channels/leg-1") == ["websocket"]
    assert sim.pbx.channels["leg-1"].variables["B24_CALL"] == "c-1"


async def test_errors_over_the_socket_read_as_over_http(sim: AsteriskSimulator) -> None:
    seen: dict[str, tuple[int, str, int, str]] = {}
    for mode in ("off", "on"):
        link = await ready_link(sim, mode)
        async with running(link):
            with pytest.raises(PbxError) as missing:
                await link.request("channels", "hangup", channelId="nope")
            await link.originate("Local/1001@agents", f"dup-{mode}", "agent")
            with pytest.raises(PbxError) as bad:
                await link.request("channels", "originate", endpoint="Local/1001@agents")
        seen[mode] = (missing.value.status, missing.value.body, bad.value.status, bad.value.body)
        assert bad.value.action == "channels.originate"
    assert seen["on"] == seen["off"] == (404, "Channel not found", 400, "Application or extension must be specified")
    assert set(via(sim, "/channels/nope")) == {"http", "websocket"}


async def test_operations_a_prompt_would_hold_stay_on_http_only_for_a_channel_that_plays(
    sim: AsteriskSimulator,
) -> None:
    """Answer, addChannel, setChannelVar wait behind a prompt on their channel (``tests/real``): over HTTP while the
    caller plays one (held there without holding the socket), over the socket for an agent's leg and for the caller
    once its prompt has ended."""
    sim.pbx.media.media_durations["sound:long"] = 30.0
    events = Events()
    link = AriLink(settings_for(sim, rest_over_websocket="on"), events.queue)
    async with running(link):
        await sim.place_inbound_call(did="74951112233", caller="79161234567", hangup_after=30)
        (started,) = await events.wait(CallStarted)
        caller = str(started.call)
        await link.execute(caller, AnswerCaller())
        await link.execute(caller, StartMusic())  # the caller joins the bridge
        await link.execute(caller, PlayPrompt("greeting", "sound:long"))
        held = asyncio.create_task(link.request("channels", "answer", channelId=caller))
        await link.execute(caller, RingAgent("leg-2", "1001", 5))
        await eventually(lambda: sim.pbx.channels["leg-2"].state == "Up", timeout=5)
        await link.execute(caller, ConnectLeg("leg-2"))  # while the caller's prompt plays
        assert not held.done()
        assert via(sim, "/answer") == ["websocket", "http"]
        assert via(sim, "/addChannel") == ["websocket", "websocket"]  # the caller's before the prompt, the leg's
        assert via(sim, "/variable") == ["websocket"]
        await link.execute(caller, StopPrompt("greeting"))
        await asyncio.wait_for(held, 5)
        await link.request("channels", "answer", channelId=caller)
    assert via(sim, "/answer") == ["websocket", "http", "websocket"]
    assert sim.pbx.channels["leg-2"].variables["B24_ANSWERED"]


async def test_a_pbx_that_ignores_such_requests_keeps_auto_on_http(sim: AsteriskSimulator) -> None:
    sim.ari_rest_over_websocket = False  # before 20.14
    link = await ready_link(sim)
    with capture_logs() as logs:
        async with running(link):
            await asyncio.sleep(0.3)  # the probe's answer, that never comes, would have been back long ago
            assert await link.channels() == []
            assert link.rest.over_socket is not None and not link.rest.over_socket.ready
    assert "pbx.rest_over_websocket" not in [e["event"] for e in logs]
    assert via(sim, "/channels") == ["http", "http"]


async def test_no_answer_times_out_as_a_pbx_error(sim: AsteriskSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    sim.ari_rest_over_websocket = False  # "on" against a PBX that ignores the frames
    link = await ready_link(sim, "on")
    async with running(link):
        monkeypatch.setattr(ari_rest, "REQUEST_TIMEOUT", 0.3)
        with pytest.raises(PbxError) as late:
            await link.request("asterisk", "ping")
    assert (late.value.status, late.value.action) == (0, "asterisk.ping")
    assert link.rest.over_socket is None


async def test_each_request_times_out_after_its_own_wait(sim: AsteriskSimulator) -> None:
    """One timer serves every pending request: a shorter wait sent after a longer one still ends first, and the
    longer one still ends."""
    sim.ari_rest_over_websocket = False  # nothing is answered
    link = await ready_link(sim, "on")
    async with running(link):
        over_socket = link.rest.over_socket
        assert over_socket is not None
        loop = asyncio.get_running_loop()
        ended: dict[str, float] = {}

        async def ask(name: str, wait: float) -> None:
            with pytest.raises(TimeoutError):
                await over_socket.request("GET", "asterisk/ping", [], None, "asterisk.ping", wait)
            ended[name] = loop.time()

        started = loop.time()
        longer = asyncio.create_task(ask("longer", 2.0))
        await asyncio.sleep(0)
        await asyncio.wait_for(ask("shorter", 0.2), 5)
        assert ended["shorter"] - started < 1.5, "not held until the longer wait's deadline"
        assert "longer" not in ended and over_socket.pending
        await asyncio.wait_for(longer, 10)
        assert ended["longer"] - started >= 2.0 and not over_socket.pending


async def test_answers_find_their_requests_in_any_order(sim: AsteriskSimulator) -> None:
    link = await ready_link(sim, "on")
    async with running(link):
        await asyncio.gather(*(link.originate("Local/1001@agents", f"many-{n}", "agent") for n in range(8)))
        got = await asyncio.gather(
            *(link.request("channels", "get", channelId=f"many-{n}") for n in range(8)),
            link.request("channels", "get", channelId="none"),
            return_exceptions=True,
        )
    assert [item["id"] for item in got[:8] if isinstance(item, dict)] == [f"many-{n}" for n in range(8)]
    assert isinstance(got[8], PbxError) and got[8].status == 404


async def test_a_dropped_socket_fails_pending_requests_and_the_link_carries_on(sim: AsteriskSimulator) -> None:
    link = await ready_link(sim, "on")
    async with running(link):
        sim.go_silent(ami=False, ari=True)  # requests wait: this one is pending when the socket goes
        pending = asyncio.create_task(link.request("channels", "list"))
        await eventually(lambda: link.rest.over_socket is not None and link.rest.over_socket.pending, timeout=5)
        for socket in list(sim.sockets):
            socket.abort()
        with pytest.raises(PbxError) as dropped:
            await asyncio.wait_for(pending, 5)
        sim.wake()
        await eventually(lambda: link.connected and link.rest.over_socket is not None, timeout=10)
        assert await link.channels() == []
    assert (dropped.value.status, dropped.value.action) == (0, "channels.list")


async def test_credentials_stay_out_of_the_frames_and_logs(sim: AsteriskSimulator) -> None:
    """The socket's own credentials authorise its requests: no frame carries them, no log line shows them."""
    link = await ready_link(sim, "on")
    frames: list[str] = []
    with capture_logs() as logs:
        async with running(link):
            assert link.rest.over_socket is not None
            socket = link.rest.over_socket.socket
            send = socket.send_frame

            async def spy(data: bytes, *args: Any) -> None:
                frames.append(data.decode())
                await send(data, *args)

            socket.send_frame = spy  # type: ignore[method-assign]
            with pytest.raises(PbxError) as failed:
                await link.request("channels", "get", channelId="gone")
            assert await link.channels() == []
    assert len(frames) == 2 and failed.value.status == 404
    assert not [text for text in frames if ARI_PASSWORD in text or "api_key" in text]
    assert via(sim, "/channels/gone") == ["websocket"]
    assert ARI_PASSWORD not in repr(logs)


async def test_a_wrong_call_is_a_type_error_as_over_http(sim: AsteriskSimulator) -> None:
    for mode in ("off", "on"):
        link = await ready_link(sim, mode)
        async with running(link):
            with pytest.raises(TypeError, match="channelId"):
                await link.request("channels", "get")
            with pytest.raises(TypeError, match="bogus"):
                await link.request("asterisk", "ping", bogus="1")


async def test_only_answers_are_taken_from_the_event_stream(
    sim: AsteriskSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event that merely mentions RESTResponse goes on to the translator, an answer nobody waits for does not; a
    socket that is gone fails at once."""
    link = await ready_link(sim, "on")
    read: list[object] = []
    translate = link.translator.feed
    monkeypatch.setattr(link.translator, "feed", lambda message: read.append(message) or translate(message))
    with capture_logs() as logs:
        async with running(link):
            over_socket = link.rest.over_socket
            assert over_socket is not None
            await sim.inject_ari_text('{"type": "ChannelVarset", "variable": "X", "value": "RESTResponse"}')
            await sim.inject_ari_text('{"type": "RESTResponse", "request_id": "nobody-asked"}')
            await sim.inject_ari_text('["RESTResponse"]')
            await sim.inject_ari_text('{"type": "RESTResponse", ')
            await eventually(lambda: len([e for e in logs if e["event"] == "pbx.bad_input"]) == 2, timeout=3)
    assert [m["type"] if isinstance(m, dict) else m for m in read] == ["ChannelVarset", ["RESTResponse"]]
    assert [e["reason"] for e in logs if e["event"] == "pbx.bad_input"] == [
        "ARI message is a list, not an object",
        "not JSON: JSONDecodeError",
    ]
    assert link.rest.over_socket is None and over_socket.closed
    with pytest.raises(PbxError) as late:
        await over_socket.request("GET", "asterisk/ping", [], None, "asterisk.ping", 1.0)
    assert (late.value.status, late.value.action) == (0, "asterisk.ping")
