"""ARI ``/bridges`` and ``/playbacks`` handlers."""

from __future__ import annotations

from aiohttp import web

from bridge.sim.asterisk.ari_channels import start_recording
from bridge.sim.asterisk.ari_http import Params, answer, fail, no_content, sim_of
from bridge.sim.asterisk.media import Playback
from bridge.sim.asterisk.model import Bridge, Channel

routes = web.RouteTableDef()


def bridge_of(request: web.Request) -> Bridge:
    bridge = sim_of(request).pbx.bridges.get(request.match_info["bridgeId"])
    if bridge is None:
        fail(404, "Bridge not found")
    return bridge


def _channels(request: web.Request, params: Params) -> list[Channel]:
    ids = params.items("channel")
    if not ids:
        fail(400, "Missing required parameter: channel")
    channels = sim_of(request).pbx.channels
    missing = [i for i in ids if i not in channels]
    if missing:
        fail(400, f"Channel not found: {','.join(missing)}")
    found = [channels[i] for i in ids]
    if any(c.stasis_app is None for c in found):
        fail(422, "Channel not in Stasis application")
    return found


@routes.get("/ari/bridges")
async def list_bridges(request: web.Request) -> web.Response:
    return answer([b.as_json() for b in sim_of(request).pbx.bridges.values()])


@routes.post("/ari/bridges")
@routes.post("/ari/bridges/{bridgeId}")
async def create_bridge(request: web.Request) -> web.Response:
    sim = sim_of(request)
    params = await Params.read(request)
    bridge_id = request.match_info.get("bridgeId") or params.get("bridgeId") or None
    if bridge_id and bridge_id in sim.pbx.bridges:  # res/ari/resource_bridges.c, create and createWithId alike
        fail(409, f"Bridge with id '{bridge_id}' already exists")
    types = params.items("type") or ["mixing"]
    bridge = sim.pbx.bridging.create(
        bridge_id=bridge_id,
        name=params.get("name") or "",
        bridge_type="holding" if "holding" in types else "mixing",
    )
    return answer(bridge.as_json())


@routes.get("/ari/bridges/{bridgeId}")
async def get_bridge(request: web.Request) -> web.Response:
    return answer(bridge_of(request).as_json())


@routes.delete("/ari/bridges/{bridgeId}")
async def destroy_bridge(request: web.Request) -> web.Response:
    sim_of(request).pbx.bridging.destroy(bridge_of(request))
    return no_content()


@routes.post("/ari/bridges/{bridgeId}/addChannel")
async def add_channel(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    params = await Params.read(request)
    pbx = sim_of(request).pbx
    for channel in _channels(request, params):
        await pbx.media.until_free(channel)  # each channel's own queue (a prompt on it holds the request)
        pbx.bridging.add(bridge, channel)
    return no_content()


@routes.post("/ari/bridges/{bridgeId}/removeChannel")
async def remove_channel(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    params = await Params.read(request)
    channels = _channels(request, params)
    if any(c.bridge is not bridge for c in channels):
        fail(422, "Channel not in this bridge")
    for channel in channels:
        sim_of(request).pbx.bridging.remove(channel)
    return no_content()


@routes.post("/ari/bridges/{bridgeId}/moh")
async def start_moh(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    params = await Params.read(request)
    sim_of(request).pbx.bridging.start_moh(bridge, params.get("mohClass") or "")
    return no_content()


@routes.delete("/ari/bridges/{bridgeId}/moh")
async def stop_moh(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    if bridge.moh_channel is None:
        fail(409, "Bridge isn't playing music on hold")
    sim_of(request).pbx.bridging.stop_moh(bridge)
    return no_content()


@routes.post("/ari/bridges/{bridgeId}/play")
@routes.post("/ari/bridges/{bridgeId}/play/{playbackId}")
async def play(request: web.Request) -> web.Response:
    bridge, sim = bridge_of(request), sim_of(request)
    params = await Params.read(request)
    media = params.items("media")
    if not media:
        fail(400, "Missing required parameter: media")
    playback_id = request.match_info.get("playbackId") or params.get("playbackId")
    if playback_id and playback_id in sim.pbx.media.playbacks:
        fail(409, "Playback with given id already exists")
    playback = sim.pbx.media.play(bridge, media, playback_id, params.get("lang") or "en")
    return answer(playback.as_json(), status=201)


@routes.post("/ari/bridges/{bridgeId}/record")
async def record(request: web.Request) -> web.Response:
    return await start_recording(request, bridge_of(request))


# --- playbacks -------------------------------------------------------------------------------
def playback_of(request: web.Request) -> Playback:
    playback = sim_of(request).pbx.media.playbacks.get(request.match_info["playbackId"])
    if playback is None:
        fail(404, "Playback not found")
    return playback


@routes.get("/ari/playbacks/{playbackId}")
async def get_playback(request: web.Request) -> web.Response:
    return answer(playback_of(request).as_json())


@routes.delete("/ari/playbacks/{playbackId}")
async def stop_playback(request: web.Request) -> web.Response:
    sim_of(request).pbx.media.finish_playback(playback_of(request))
    return no_content()


@routes.post("/ari/playbacks/{playbackId}/control")
async def control_playback(request: web.Request) -> web.Response:
    playback_of(request)
    operation = (await Params.read(request)).require("operation")
    if operation not in ("restart", "pause", "unpause", "reverse", "forward"):
        fail(400, "The provided operation parameter was invalid")
    return no_content()
