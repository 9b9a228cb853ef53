"""ARI ``/channels`` handlers."""

from __future__ import annotations

from aiohttp import web

from bridge.sim.asterisk.ari_http import Params, answer, fail, no_content, sim_of
from bridge.sim.asterisk.causes import HANGUP_REASONS, NORMAL_CLEARING
from bridge.sim.asterisk.media import RecordingConflict
from bridge.sim.asterisk.model import Bridge, Channel
from bridge.sim.asterisk.originate import AllocationFailed, OriginateError, OriginateRequest

routes = web.RouteTableDef()
ALLOCATION_FAILED = {"error": "Allocation failed"}
"""Asterisk's body when a channel cannot be created (``ast_ari_response_alloc_failed``)."""


def channel_of(request: web.Request, *, in_stasis: bool = False) -> Channel:
    channel = sim_of(request).pbx.channels.get(request.match_info["channelId"])
    if channel is None:
        fail(404, "Channel not found")
    if in_stasis and channel.stasis_app is None:
        fail(409, "Channel not in Stasis application")
    return channel


def _request(params: Params, channel_id: str | None, *, need_target: bool) -> OriginateRequest:
    endpoint = params.require("endpoint")
    app, extension = params.get("app"), params.get("extension")
    if app and extension:
        fail(400, "Only one of app and extension may be given")
    if need_target and not app and not extension:
        fail(400, "Application or extension must be specified")
    timeout = params.number("timeout", 30.0)
    return OriginateRequest(
        endpoint=endpoint,
        app=app or None,
        app_args=params.items("appArgs"),
        context=params.get("context"),
        extension=extension,
        caller_id=params.get("callerId"),
        timeout=None if timeout <= 0 else timeout,
        variables=params.variables,
        channel_id=channel_id or params.get("channelId") or None,
        other_channel_id=params.get("otherChannelId") or None,
    )


def _check_ids(request: web.Request, originate: OriginateRequest) -> None:
    channels = sim_of(request).pbx.channels
    wanted = [i for i in (originate.channel_id, originate.other_channel_id) if i]
    if len(set(wanted)) != len(wanted):
        fail(400, "channelId and otherChannelId must differ")
    if any(i in channels for i in wanted):
        fail(409, "Channel with given unique ID already exists")


@routes.get("/ari/channels")
async def list_channels(request: web.Request) -> web.Response:
    return answer([c.as_json() for c in sim_of(request).pbx.channels.values()])


@routes.post("/ari/channels")
@routes.post(r"/ari/channels/{channelId:(?!create$)[^/]+}")
async def originate(request: web.Request) -> web.Response:
    params = await Params.read(request)
    originate = _request(params, request.match_info.get("channelId"), need_target=True)
    _check_ids(request, originate)
    try:
        channel = sim_of(request).originator.originate(originate)
    except OriginateError as exc:
        fail(400, str(exc))
    except AllocationFailed:
        return answer(ALLOCATION_FAILED, status=500)
    return answer(channel.as_json())


@routes.post("/ari/channels/create")
async def create(request: web.Request) -> web.Response:
    params = await Params.read(request)
    params.require("app")
    originate = _request(params, None, need_target=False)
    _check_ids(request, originate)
    try:
        channel = sim_of(request).originator.create(originate)
    except OriginateError as exc:
        fail(400, str(exc))
    except AllocationFailed:
        return answer(ALLOCATION_FAILED, status=500)
    return answer(channel.as_json())


@routes.get("/ari/channels/{channelId}")
async def get_channel(request: web.Request) -> web.Response:
    return answer(channel_of(request).as_json())


@routes.delete("/ari/channels/{channelId}")
async def hangup(request: web.Request) -> web.Response:
    channel = channel_of(request)
    params = await Params.read(request)
    reason_code, reason = params.get("reason_code"), params.get("reason")
    if reason_code:
        if not reason_code.isdigit():
            fail(400, "Invalid reason for hangup provided")
        cause = int(reason_code)
    elif reason:
        if reason not in HANGUP_REASONS:
            fail(400, "Invalid reason for hangup provided")
        cause = HANGUP_REASONS[reason]
    else:
        cause = NORMAL_CLEARING
    sim_of(request).pbx.hangup(channel, cause, "app")
    return no_content()


@routes.post("/ari/channels/{channelId}/answer")
async def answer_channel(request: web.Request) -> web.Response:
    channel, pbx = channel_of(request, in_stasis=True), sim_of(request).pbx
    await pbx.media.until_free(channel)
    pbx.answer(channel)
    return no_content()


@routes.post("/ari/channels/{channelId}/ring")
async def ring(request: web.Request) -> web.Response:
    channel, pbx = channel_of(request, in_stasis=True), sim_of(request).pbx
    if channel.state != "Up":
        pbx.set_state(channel, "Ringing")
        if channel.peer is not None and channel.peer.state == "Down":
            pbx.set_state(channel.peer, "Ringing")
    return no_content()


@routes.post("/ari/channels/{channelId}/dial")
async def dial(request: web.Request) -> web.Response:
    channel, sim = channel_of(request, in_stasis=True), sim_of(request)
    params = await Params.read(request)
    caller_id = params.get("caller")
    caller = sim.pbx.channels.get(caller_id) if caller_id else None
    if caller_id and caller is None:
        fail(404, "Caller channel not found")
    timeout = params.number("timeout", 0.0)
    if not sim.originator.dial(channel, caller, timeout if timeout > 0 else None):
        fail(409, "Channel is not in a dialable state")
    return no_content()


@routes.post("/ari/channels/{channelId}/continue")
async def continue_in_dialplan(request: web.Request) -> web.Response:
    channel, pbx = channel_of(request, in_stasis=True), sim_of(request).pbx
    pbx.leave_stasis(channel)
    pbx.later(channel, 0, lambda: pbx.hangup(channel, NORMAL_CLEARING, "dialplan"))
    return no_content()


@routes.post("/ari/channels/{channelId}/play")
@routes.post("/ari/channels/{channelId}/play/{playbackId}")
async def play(request: web.Request) -> web.Response:
    channel, sim = channel_of(request, in_stasis=True), sim_of(request)
    params = await Params.read(request)
    media = params.items("media")
    if not media:
        fail(400, "Missing required parameter: media")
    playback_id = request.match_info.get("playbackId") or params.get("playbackId")
    if playback_id and playback_id in sim.pbx.media.playbacks:
        fail(409, "Playback with given id already exists")
    playback = sim.pbx.media.play(channel, media, playback_id, params.get("lang") or channel.language)
    return answer(playback.as_json(), status=201)


@routes.post("/ari/channels/{channelId}/record")
async def record(request: web.Request) -> web.Response:
    return await start_recording(request, channel_of(request, in_stasis=True))


async def start_recording(request: web.Request, target: Channel | Bridge) -> web.Response:
    """Shared by channel and bridge recordings."""
    params = await Params.read(request)
    name, fmt = params.require("name"), params.require("format")
    if fmt != "wav":
        fail(422, f"Unknown recording format: {fmt}")
    if ".." in name or name.startswith("/"):
        fail(400, "Invalid recording name")
    if_exists = params.get("ifExists") or "fail"
    if if_exists not in ("fail", "overwrite", "append"):
        fail(400, "ifExists must be fail, overwrite or append")
    try:
        recording = sim_of(request).pbx.media.record(
            target,
            name=name,
            fmt=fmt,
            max_seconds=params.number("maxDurationSeconds", 0.0),
            if_exists=if_exists,
            terminate_on=params.get("terminateOn") or "none",
        )
    except RecordingConflict:
        fail(409, "Recording with the same name already exists")
    return answer(recording.as_json(), status=201)


@routes.post("/ari/channels/{channelId}/moh")
@routes.delete("/ari/channels/{channelId}/moh")
@routes.post("/ari/channels/{channelId}/mute")
@routes.delete("/ari/channels/{channelId}/mute")
@routes.post("/ari/channels/{channelId}/silence")
@routes.delete("/ari/channels/{channelId}/silence")
@routes.delete("/ari/channels/{channelId}/ring")
async def media_toggle(request: web.Request) -> web.Response:
    channel_of(request, in_stasis=True)
    await Params.read(request)
    return no_content()


@routes.post("/ari/channels/{channelId}/hold")
@routes.delete("/ari/channels/{channelId}/hold")
async def hold(request: web.Request) -> web.Response:
    channel, pbx = channel_of(request, in_stasis=True), sim_of(request).pbx
    holding = request.method == "POST"
    pbx.ari("ChannelHold" if holding else "ChannelUnhold", channel)
    pbx.ami("Hold" if holding else "Unhold", channel.ami_fields())
    return no_content()


@routes.post("/ari/channels/{channelId}/dtmf")
async def send_dtmf(request: web.Request) -> web.Response:
    channel_of(request, in_stasis=True)
    (await Params.read(request)).require("dtmf")
    return no_content()


@routes.get("/ari/channels/{channelId}/variable")
async def get_variable(request: web.Request) -> web.Response:
    channel = channel_of(request)
    name = (await Params.read(request)).require("variable")
    value = sim_of(request).channel_variable(channel, name)
    if value is None:
        fail(404, "Provided variable was not found")
    return answer({"value": value})


@routes.post("/ari/channels/{channelId}/variable")
async def set_variable(request: web.Request) -> web.Response:
    channel, pbx = channel_of(request), sim_of(request).pbx
    params = await Params.read(request)
    await pbx.media.until_free(channel)
    pbx.set_var(channel, params.require("variable"), params.get("value") or "")
    return no_content()
