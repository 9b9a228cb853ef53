"""Each aioari 0.10.2 gap (asterisk.md section 3), shown against the simulator, and our wrapper for it."""

from __future__ import annotations

import asyncio
import gc
import socket
from typing import Any

import aioari
import aiohttp
import pytest
from structlog.testing import capture_logs

from bridge.config import AsteriskSettings, Secret
from bridge.domain.commands import AnswerCaller, RingAgent
from bridge.domain.events import CallStarted
from bridge.pbx.ari import AriLink
from bridge.pbx.ari_rest import AriRest, lighten_heartbeat
from bridge.pbx.events import PbxError, Resynced
from bridge.sim.asterisk.simulator import AsteriskSimulator
from tests.adapters.pbx_fixtures import ARI_PASSWORD, Events, running, settings_for, sim
from tests.eventually import eventually

__all__ = ["sim"]


async def test_booleans_go_as_strings(sim: AsteriskSimulator) -> None:
    link = AriLink(settings_for(sim), asyncio.Queue())
    async with running(link):
        bridge = await link.request("bridges", "create", type="mixing", name="booleans")
        with pytest.raises(TypeError, match="Invalid variable type"):
            await link.rest.client.bridges.record(bridgeId=bridge["id"], name="raw", format="wav", beep=False)
        recording = await link.request("bridges", "record", bridgeId=bridge["id"], name="ours", format="wav",
                                       beep=False)  # fmt: skip
    assert recording["name"] == "ours"
    sent = [r["params"] for r in sim.requests if r["path"].endswith("/record")]
    assert sent == [{"name": "ours", "format": "wav", "beep": "false"}]


async def test_stasis_start_uses_the_channel_field_not_aioaris_dict(sim: AsteriskSimulator) -> None:
    """aioari's ``on_channel_event('StasisStart')`` hands a dict of two channels; we read the raw event."""
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    channel = {"id": "new.1", "name": "PJSIP/trunk-00000001", "state": "Ring", "caller": {"name": "A", "number": "7"}}
    replaced = {**channel, "id": "old.1", "caller": {"name": "B", "number": "8"}}
    stasis_start = {"type": "StasisStart", "application": "b24bridge", "args": ["inbound", "74951112233"],
                    "channel": channel, "replace_channel": replaced}  # fmt: skip
    async with running(link):
        handed: list[Any] = []
        link.rest.client.on_channel_event("StasisStart", lambda objects, event: handed.append(objects))
        await link.rest.client.process_ws(stasis_start)
        await sim.inject_ari_event(stasis_start)
        (started,) = await events.wait(CallStarted)
    assert isinstance(handed[0], dict) and set(handed[0]) == {"channel", "replace_channel"}, "the gap"
    assert started.call == "new.1" and started.event == CallStarted(line="74951112233", caller="7", caller_name="A")


async def test_a_password_with_url_characters_connects_the_websocket(sim: AsteriskSimulator) -> None:
    assert set("&#?=% +/") <= set(ARI_PASSWORD)
    stock = await aioari.connect(sim.ari_url + "/", "b24bridge", ARI_PASSWORD)
    try:
        assert await stock.asterisk.getInfo(), "REST works with the stock client"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await stock.swagger.events.eventWebsocket(app="b24bridge")
        assert refused.value.status == 401, "the gap: the WebSocket URL is not escaped"
    finally:
        await stock.close()
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    async with running(link):
        await events.wait(Resynced)
        assert link.connected


def test_a_user_name_ari_cannot_carry_is_refused_clearly() -> None:
    settings = AsteriskSettings(ari_user="bridge:1", ari_password=Secret("hunter2-secret"))
    with pytest.raises(ValueError, match="must not contain ':'") as refused:
        AriLink(settings, asyncio.Queue())
    assert "hunter2-secret" not in str(refused.value)


def open_sessions() -> dict[int, aiohttp.ClientSession]:
    """The aiohttp sessions alive and not closed, by id."""
    gc.collect()
    return {id(o): o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_failed_connect_closes_its_http_session() -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    before = open_sessions()
    with pytest.raises(aiohttp.ClientConnectionError):
        await aioari.connect(url, "b24bridge", "secret")
    leaked = [session for key, session in open_sessions().items() if key not in before]
    assert leaked, "the gap: aioari leaves its session open"
    for session in leaked:
        await session.close()
    before = open_sessions()
    rest = AriRest(AsteriskSettings(ari_url=url, ari_password=Secret("secret")))
    with pytest.raises(PbxError) as failed:
        await rest.open()
    assert open_sessions().keys() - before.keys() == set() and failed.value.status == 0


async def test_run_returning_when_the_socket_closes_means_reconnect(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    with capture_logs() as logs:
        async with running(link):
            await events.wait(Resynced)
            for n in (2, 3):
                await sim.drop_connections(ari=True, ami=False)
                await events.wait(Resynced, count=n)
            assert link.connected
    assert len([e for e in logs if e["event"] == "pbx.reconnecting"]) == 2


async def test_http_errors_become_pbx_errors_with_status_and_body(sim: AsteriskSimulator) -> None:
    link = AriLink(settings_for(sim), asyncio.Queue())
    with capture_logs() as logs:
        async with running(link):
            with pytest.raises(PbxError) as missing:
                await link.request("channels", "get", channelId="no-such-channel")
            with pytest.raises(PbxError) as gone:
                await link.execute("no-such-call", AnswerCaller())
    assert (missing.value.status, missing.value.body) == (404, "Channel not found")
    assert gone.value.status == 404 and gone.value.action == "channels.answer"
    failed = [e for e in logs if e["event"] == "pbx.command_failed"]  # the command's failure, once; the request's none
    assert [(e["call_id"], e["command"], e["status"], e["action"]) for e in failed] == [
        ("no-such-call", "AnswerCaller", 404, "channels.answer")
    ]


async def test_a_ring_the_pbx_took_is_a_leg_a_resync_may_end(sim: AsteriskSimulator) -> None:
    """The link's ring commands confirm their legs once the originate is answered (a resync that does not list
    them then ends them), whichever way the request went."""
    for mode in ("off", "on"):
        events = Events()
        link = AriLink(settings_for(sim, rest_over_websocket=mode), events.queue)
        async with running(link):
            await sim.place_inbound_call(did="74951112233", caller="79161234567", hangup_after=30)
            (started,) = await events.wait(CallStarted)
            leg = f"leg-{mode}"
            await link.execute(str(started.call), RingAgent(leg, "1001", 5))
            assert link.translator.legs[leg].confirmed
            assert leg in link.translator.confirmed_legs()


async def test_an_allocation_failure_reads_as_its_error_text(sim: AsteriskSimulator) -> None:
    """An unregistered phone: Asterisk 20 answers the originate 500 {"error":"Allocation failed"}."""
    sim.set_endpoint_state("PJSIP/1009", "offline")
    link = AriLink(settings_for(sim), asyncio.Queue())
    async with running(link):
        with pytest.raises(PbxError) as refused:
            await link.request("channels", "originate", endpoint="PJSIP/1009", app="b24bridge")
    assert (refused.value.status, refused.value.body) == (500, "Allocation failed")


async def test_a_wrong_password_fails_without_showing_it(sim: AsteriskSimulator) -> None:
    link = AriLink(settings_for(sim, ari_password=Secret("wrong&pass#word")), asyncio.Queue())
    link.retry_initial = 0.05
    with capture_logs() as logs:
        task = asyncio.create_task(link.run())
        await eventually(lambda: any(e["event"] == "pbx.connect_failed" for e in logs), timeout=5)
        await link.stop()
        await asyncio.wait_for(task, 5)
    failed = next(e for e in logs if e["event"] == "pbx.connect_failed")
    assert failed["status"] == 401
    assert "wrong&pass#word" not in repr(logs) and "wrong%26pass" not in repr(logs)


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        "[1, 2, 3]",
        '{"type": "StasisStart", "channel": "1.1", "args": ["inbound", "74951112233"]}',
        '{"type": "ChannelDtmfReceived", "channel": {"id": "1.1"}, "digit": "twelve"}',
    ],
)
async def test_strange_ari_json_is_logged_and_changes_nothing(sim: AsteriskSimulator, frame: str) -> None:
    events = Events()
    link = AriLink(settings_for(sim), events.queue)
    with capture_logs() as logs:
        async with running(link):
            await events.wait(Resynced)
            await sim.inject_ari_text(frame)
            await eventually(lambda: any(e["event"] == "pbx.bad_input" for e in logs), timeout=3)
            await sim.place_inbound_call(did="74951112233", caller="79161234567", hangup_after=0.2)
            await events.wait(CallStarted)
            assert link.connected
    assert [type(e.event).__name__ for e in events.all()][:2] == ["Resynced", "CallStarted"]


async def test_a_silent_events_socket_is_noticed_and_stop_does_not_wait(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AriLink(settings_for(sim, ping_interval=0.2), events.queue)
    async with running(link):
        await events.wait(Resynced)
        sim.go_silent(ami=False, ari=True)
        await eventually(lambda: not link.connected, timeout=3)
        sim.wake()
        await events.wait(Resynced, count=2)
        sim.go_silent(ami=False, ari=True)
        await eventually(lambda: not link.connected, timeout=3)
        stopping = asyncio.create_task(link.stop())
    await asyncio.wait_for(stopping, 1.0)


class _Answer:
    content_type = "application/json"
    status = 200

    async def read(self) -> bytes:
        return b"[]"

    def release(self) -> None:
        pass


async def test_a_cancellation_that_meets_the_answer_is_not_lost() -> None:
    """Python 3.11's ``asyncio.wait_for`` returns the result when the cancel and the answer arrive together: the
    daemon's shutdown then waited for ever on recovery, whose look went on. A request must end cancelled."""
    answer: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()

    class Resource:
        def get_operation(self, _name: str) -> Any:
            return lambda **_params: answer

    rest = AriRest(AsteriskSettings(ari_password=Secret("secret")))
    rest.client = type("Client", (), {"swagger": type("Swagger", (), {"get_resource": lambda _s, _r: Resource()})()})()
    request = asyncio.create_task(rest.request("channels", "list"))
    for _ in range(3):
        await asyncio.sleep(0)
    answer.set_result(_Answer())
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request


async def test_the_lighter_heartbeat_fits_this_aiohttp(sim: AsteriskSimulator) -> None:
    """lighten_heartbeat relies on aiohttp internals: this fails when an aiohttp upgrade moves them."""
    link = AriLink(settings_for(sim, ping_interval=30.0), Events().queue)
    async with running(link):
        await eventually(lambda: link.connected and link.rest.http is not None, timeout=5)
        assert link.rest.http is not None
        (socket,) = link.rest.http.websockets
        protocol: Any = socket._response.connection.protocol  # type: ignore[union-attr]
        assert protocol._data_received_cb != socket._on_data_received  # ours took its place
        pong = asyncio.get_running_loop().call_later(60, lambda: None)
        socket._pong_response_cb, socket._heartbeat_when = pong, 0.0
        protocol._data_received_cb()
        assert pong.cancelled() and socket._pong_response_cb is None
        assert socket._heartbeat_when >= asyncio.get_running_loop().time() + 29  # rounded up past 5 s, as aiohttp
        assert not lighten_heartbeat(socket)  # a second time: aiohttp's callback is no longer there


async def test_an_idle_events_socket_whose_pings_are_answered_stays_up(sim: AsteriskSimulator) -> None:
    """Pings go out on a quiet socket and their PONGs keep it: no reconnect however long nothing happens."""
    events = Events()
    link = AriLink(settings_for(sim, ping_interval=0.2), events.queue)
    async with running(link):
        await events.wait(Resynced)
        await asyncio.sleep(1.5)  # several heartbeats, each with its PONG deadline of 0.1 s
        assert link.connected
    assert [type(e.event).__name__ for e in events.all()].count("Resynced") == 1
