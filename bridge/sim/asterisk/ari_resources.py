"""ARI ``/asterisk``, ``/applications``, ``/endpoints``, ``/deviceStates``, ``/recordings``,
``/sounds`` and ``/events/user`` handlers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bridge.sim.asterisk.ari_http import Params, answer, fail, no_content, sim_of
from bridge.sim.asterisk.bus import StasisApp
from bridge.sim.asterisk.causes import DEVICE_STATES
from bridge.sim.asterisk.media import LiveRecording
from bridge.sim.asterisk.model import ari_time, now

routes = web.RouteTableDef()

SOUNDS = {"hello-world": "Hello world.", "beep": "(beep)", "vm-goodbye": "Goodbye."}


# --- asterisk --------------------------------------------------------------------------------
@routes.get("/ari/asterisk/info")
async def info(request: web.Request) -> web.Response:
    sim = sim_of(request)
    started = ari_time(sim.started_at)
    return answer(
        {
            "build": {"os": "Linux", "kernel": "6.1.0", "machine": "x86_64", "options": "", "date": "2026-11-01",
                      "user": "b24-bridge-sim"},
            "system": {"version": "20.20.1", "entity_id": sim.bus.asterisk_id},
            # config.name is asterisk.conf's systemname (ast_config_AST_SYSTEM_NAME), "" when it has none
            "config": {"name": sim.pbx.ids.system_name, "default_language": "en", "setid": {"user": "", "group": ""}},
            "status": {"startup_time": started, "last_reload_time": started},
        }
    )  # fmt: skip


@routes.get("/ari/asterisk/ping")
async def ping(request: web.Request) -> web.Response:
    return answer({"asterisk_id": sim_of(request).bus.asterisk_id, "ping": "pong", "timestamp": ari_time(now())})


@routes.get("/ari/asterisk/variable")
async def global_variable(request: web.Request) -> web.Response:
    name = (await Params.read(request)).require("variable")
    return answer({"value": sim_of(request).global_variables.get(name, "")})


@routes.post("/ari/asterisk/variable")
async def set_global_variable(request: web.Request) -> web.Response:
    params = await Params.read(request)
    sim_of(request).set_global_variable(params.require("variable"), params.get("value") or "")
    return no_content()


# --- applications ----------------------------------------------------------------------------
@routes.get("/ari/applications")
async def list_applications(request: web.Request) -> web.Response:
    apps = sim_of(request).bus.apps.values()
    return answer([app.as_json() for app in apps if app.socket is not None])


def _app(request: web.Request) -> StasisApp:
    app = sim_of(request).bus.apps.get(request.match_info["applicationName"])
    if app is None or app.socket is None:
        fail(404, "Application does not exist")
    return app


@routes.get("/ari/applications/{applicationName}")
async def get_application(request: web.Request) -> web.Response:
    return answer(_app(request).as_json())


@routes.post("/ari/applications/{applicationName}/subscription")
@routes.delete("/ari/applications/{applicationName}/subscription")
async def subscription(request: web.Request) -> web.Response:
    app, pbx = _app(request), sim_of(request).pbx
    subscribe = request.method == "POST"
    for source in (await Params.read(request)).items("eventSource"):
        kind, _, name = source.partition(":")
        if kind == "channel" and name in pbx.channels:
            (app.channels.add if subscribe else app.channels.discard)(name)
        elif kind == "bridge" and name in pbx.bridges:
            (app.bridges.add if subscribe else app.bridges.discard)(name)
        elif kind in ("endpoint", "deviceState") and name:
            (app.sources.add if subscribe else app.sources.discard)(source)
        elif kind in ("channel", "bridge"):
            fail(422, f"Event source does not exist: {source}")
        else:
            fail(400, f"Invalid event source: {source}")
    return answer(app.as_json())


@routes.put("/ari/applications/{applicationName}/eventFilter")
async def event_filter(request: web.Request) -> web.Response:
    """The body itself is the filter (``res_ari_applications.c``: ``args.filter = body``; ``res/stasis/app.c``
    ``stasis_app_event_filter_set``): no body or ``{}`` resets both lists; otherwise each of ``disallowed`` then
    ``allowed`` that is present is set (an array of objects with a ``type``) and one that is absent is left as it
    was, so ``{"filter": {...}}`` changes nothing. A bad list is a 400 (a good ``disallowed`` before it stays set)."""
    app = _app(request)
    raw = await request.text() if request.can_read_body else ""
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError:
        fail(400, "Error parsing request body")
    for name in ("disallowed", "allowed"):
        found = body
        if isinstance(body, dict) and body:
            if name not in body:
                continue
            found = body[name]
        elif isinstance(body, dict):
            found = None
        if found is not None and not (isinstance(found, list) and all(_typed(f) for f in found)):
            fail(400, "Invalid format definition")
        setattr(app, name, list(found or []))
    return answer(app.as_json())


def _typed(item: object) -> bool:
    return isinstance(item, dict) and isinstance(item.get("type"), str) and bool(item["type"])


# --- endpoints -------------------------------------------------------------------------------
def _endpoints(request: web.Request) -> list[dict[str, Any]]:
    pbx = sim_of(request).pbx
    found = []
    for endpoint, state in sorted(pbx.devices.endpoints.items()):
        tech, _, resource = endpoint.partition("/")
        ids = [c.id for c in pbx.channels.values() if c.device == endpoint]
        found.append({"technology": tech, "resource": resource, "state": state, "channel_ids": ids})
    return found


@routes.get("/ari/endpoints")
async def list_endpoints(request: web.Request) -> web.Response:
    return answer(_endpoints(request))


@routes.get("/ari/endpoints/{tech}")
async def list_tech_endpoints(request: web.Request) -> web.Response:
    tech = request.match_info["tech"].lower()
    found = [e for e in _endpoints(request) if e["technology"].lower() == tech]
    if not found:
        fail(404, "No endpoints found for that technology")
    return answer(found)


@routes.get("/ari/endpoints/{tech}/{resource}")
async def get_endpoint(request: web.Request) -> web.Response:
    tech, resource = request.match_info["tech"].lower(), request.match_info["resource"]
    for endpoint in _endpoints(request):
        if endpoint["technology"].lower() == tech and endpoint["resource"] == resource:
            return answer(endpoint)
    fail(404, "Endpoint not found")


# --- device states ---------------------------------------------------------------------------
@routes.get("/ari/deviceStates")
async def list_device_states(request: web.Request) -> web.Response:
    states = sim_of(request).pbx.devices.states
    return answer([{"name": name, "state": state} for name, state in sorted(states.items())])


@routes.get("/ari/deviceStates/{deviceName:.+}")
async def get_device_state(request: web.Request) -> web.Response:
    name = request.match_info["deviceName"]
    return answer({"name": name, "state": sim_of(request).pbx.devices.state_of(name)})


@routes.put("/ari/deviceStates/{deviceName:.+}")
async def put_device_state(request: web.Request) -> web.Response:
    name = request.match_info["deviceName"]
    state = (await Params.read(request)).require("deviceState")
    if not name.startswith("Stasis:"):
        fail(409, "Uncontrolled device specified")
    if state not in DEVICE_STATES:
        fail(400, f"Invalid device state: {state}")
    sim_of(request).pbx.devices.set_state(name, state)
    return no_content()


@routes.delete("/ari/deviceStates/{deviceName:.+}")
async def delete_device_state(request: web.Request) -> web.Response:
    name = request.match_info["deviceName"]
    if not name.startswith("Stasis:"):
        fail(409, "Uncontrolled device specified")
    if sim_of(request).pbx.devices.states.pop(name, None) is None:
        fail(404, "Device name is missing")
    return no_content()


# --- recordings ------------------------------------------------------------------------------
def _stored(request: web.Request) -> dict[str, Any]:
    found = sim_of(request).pbx.media.stored.get(request.match_info["recordingName"])
    if found is None:
        fail(404, "Recording not found")
    return found


def _live(request: web.Request) -> LiveRecording:
    found = sim_of(request).pbx.media.live.get(request.match_info["recordingName"])
    if found is None:
        fail(404, "Recording not found")
    return found


@routes.get("/ari/recordings/stored")
async def list_stored(request: web.Request) -> web.Response:
    stored = sim_of(request).pbx.media.stored
    return answer([{"name": name, "format": rec["format"]} for name, rec in sorted(stored.items())])


@routes.get("/ari/recordings/stored/{recordingName}")
async def get_stored(request: web.Request) -> web.Response:
    return answer({"name": request.match_info["recordingName"], "format": _stored(request)["format"]})


@routes.get("/ari/recordings/stored/{recordingName}/file")
async def get_stored_file(request: web.Request) -> web.Response:
    stored = _stored(request)
    return web.Response(body=stored["path"].read_bytes(), content_type="audio/wav")


@routes.delete("/ari/recordings/stored/{recordingName}")
async def delete_stored(request: web.Request) -> web.Response:
    stored = sim_of(request).pbx.media.stored.pop(request.match_info["recordingName"], None)
    if stored is None:
        fail(404, "Recording not found")
    stored["path"].unlink(missing_ok=True)
    return no_content()


@routes.get("/ari/recordings/live/{recordingName}")
async def get_live(request: web.Request) -> web.Response:
    return answer(_live(request).as_json())


@routes.post("/ari/recordings/live/{recordingName}/stop")
async def stop_live(request: web.Request) -> web.Response:
    sim_of(request).pbx.media.stop_recording(_live(request).name)
    return no_content()


@routes.delete("/ari/recordings/live/{recordingName}")
async def cancel_live(request: web.Request) -> web.Response:
    sim_of(request).pbx.media.stop_recording(_live(request).name, keep=False)
    return no_content()


@routes.post("/ari/recordings/live/{recordingName}/pause")
@routes.delete("/ari/recordings/live/{recordingName}/pause")
@routes.post("/ari/recordings/live/{recordingName}/mute")
@routes.delete("/ari/recordings/live/{recordingName}/mute")
async def toggle_live(request: web.Request) -> web.Response:
    _live(request)
    return no_content()


# --- sounds, user events ---------------------------------------------------------------------
def _sound(sound_id: str) -> dict[str, Any]:
    return {"id": sound_id, "text": SOUNDS[sound_id], "formats": [{"language": "en", "format": "gsm"}]}


@routes.get("/ari/sounds")
async def list_sounds(request: web.Request) -> web.Response:
    return answer([_sound(sound_id) for sound_id in SOUNDS])


@routes.get("/ari/sounds/{soundId}")
async def get_sound(request: web.Request) -> web.Response:
    sound_id = request.match_info["soundId"]
    if sound_id not in SOUNDS:
        fail(404, "Sound not found")
    return answer(_sound(sound_id))


@routes.post("/ari/events/user/{eventName}")
async def user_event(request: web.Request) -> web.Response:
    params, sim = await Params.read(request), sim_of(request)
    application = params.require("application")
    app = sim.bus.apps.get(application)
    if app is None or app.socket is None:
        fail(404, "Application not found")
    app.socket.push(
        {
            "type": "ChannelUserevent",
            "timestamp": ari_time(now()),
            "eventname": request.match_info["eventName"],
            "userevent": params.variables,
            "asterisk_id": sim.bus.asterisk_id,
            "application": application,
        }
    )
    return no_content()
