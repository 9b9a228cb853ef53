"""The simulated PBX core: channels, their state changes, Stasis entry and exit, hangups.

Every change emits the AMI event and the ARI event a real Asterisk 20 emits for it, in the
recorded order. All methods are synchronous and run on the event loop; timed behaviour is armed
with :meth:`Pbx.later` and cancelled when the channel goes away.

Hangup order (recorded): the initiator gets a soft hangup request (``32`` when the app deleted
it, ``16`` when its dialplan hung up), leaves its bridge and Stasis; then its Local peer gets a
hard request with the cause, the initiator is destroyed, the peer leaves its bridge and Stasis,
a ``;2`` peer gets a soft request ``16``, and the peer is destroyed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

import structlog

from bridge.sim.asterisk.bridging import Bridging
from bridge.sim.asterisk.bus import EventBus
from bridge.sim.asterisk.causes import (
    SOFT_HANGUP_APPUNLOAD,
    SOFT_HANGUP_EXPLICIT,
    cause_text,
)
from bridge.sim.asterisk.devices import Devices
from bridge.sim.asterisk.fallback import FallbackDialplan
from bridge.sim.asterisk.media import Media
from bridge.sim.asterisk.model import Bridge, CallerId, Channel, Headers, IdSource, ari_time, now
from bridge.sim.asterisk.parties import PartyBook

log = structlog.get_logger(__name__)

HangupHow = Literal["app", "dialplan", "timeout", "remote"]


class Pbx:
    def __init__(self, bus: EventBus, parties: PartyBook) -> None:
        self.bus = bus
        self.parties = parties
        self.ids = IdSource()
        self.channels: dict[str, Channel] = {}
        self.creation_order: dict[str, int] = {}  # uniqueid -> creation rank: the oldest linkedid wins
        self.bridges: dict[str, Bridge] = {}
        self.destroy_hooks: list[Callable[[Channel], None]] = []
        self.bridge_hooks: list[Callable[[Bridge], None]] = []
        self.devices = Devices(self)
        self.bridging = Bridging(self)
        self.media = Media(self)
        self.astdb: dict[str, str] = {}
        """AstDB: full key (``/family/key``) -> value; what the dialplan's ``DB()`` writes and AMI ``DB*`` reads."""
        self.fallback_dialplan: FallbackDialplan | None = None
        """``[b24-fallback]`` of the generated dialplan, when loaded: where a line goes when ``Stasis()`` fails."""

    # --- emitting --------------------------------------------------------------------------
    def ari(
        self,
        event_type: str,
        channel: Channel | None = None,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        channels: tuple[Channel | None, ...] = (),
        bridges: tuple[Bridge, ...] = (),
        sources: tuple[str, ...] = (),
    ) -> None:
        event: dict[str, Any] = {**(before or {}), "type": event_type, "timestamp": ari_time(now())}
        event.update(after or {})
        if channel is not None:
            event["channel"] = channel.as_json()
        about = [c.id for c in (channel, *channels) if c is not None]
        self.bus.emit_ari(event, channels=about, bridges=[b.id for b in bridges], sources=sources)

    def ami(self, event: str, fields: Headers, privilege: str = "call") -> None:
        self.bus.emit_ami(event, privilege, fields)

    # --- timers ----------------------------------------------------------------------------
    def later(self, owner: Channel | None, delay: float, action: Callable[[], None]) -> None:
        def run() -> None:
            try:
                action()
            except Exception:
                log.exception("sim.timer_failed", action=getattr(action, "__name__", repr(action)))

        handle = asyncio.get_running_loop().call_later(max(0.0, delay), run)
        if owner is not None:
            owner.timers.append(handle)

    # --- channel creation ------------------------------------------------------------------
    def new_channel(
        self,
        *,
        name: str,
        device: str,
        state: str,
        context: str,
        exten: str,
        linkedid: str | None = None,
        uniqueid: str | None = None,
    ) -> Channel:
        created = now()
        uid = uniqueid or self.ids.uniqueid(created)
        channel = Channel(
            id=uid,
            name=name,
            device=device,
            state=state,
            created_at=created,
            linkedid=linkedid or uid,
            context=context,
            exten=exten,
        )
        self.devices.forget(self.channels.get(uid))
        self.channels[uid] = channel
        self.devices.track(channel)
        self.creation_order[uid] = len(self.creation_order)
        self.ami("Newchannel", channel.ami_fields())
        self.ari("ChannelCreated", channel)
        return channel

    def local_pair(
        self, resource: str, *, linkedid: str | None = None, ids: tuple[str | None, str | None] = (None, None)
    ) -> tuple[Channel, Channel]:
        """Create ``Local/<resource>-N;1`` (Down) and ``;2`` (Ring), linked as peers."""
        exten, _, context = resource.partition("@")
        context = context or "default"
        base = f"Local/{resource}-{self.ids.unreal_suffix()}"
        device = f"Local/{resource}"
        one = self.new_channel(
            name=f"{base};1", device=device, state="Down", context=context, exten=exten,
            linkedid=linkedid, uniqueid=ids[0],
        )  # fmt: skip
        two = self.new_channel(
            name=f"{base};2", device=device, state="Ring", context=context, exten=exten,
            linkedid=one.linkedid, uniqueid=ids[1],
        )  # fmt: skip
        one.peer, two.peer = two, one
        return one, two

    @staticmethod
    def device_of(endpoint: str) -> str:
        """The device a one-channel endpoint dials: ``PJSIP/1001`` -> itself, ``PJSIP/7916...@trunk`` ->
        ``PJSIP/trunk``."""
        tech, resource = endpoint.split("/", 1)
        number, _, host = resource.partition("@")
        return f"{tech}/{host or number}"

    def single_channel(
        self, endpoint: str, *, state: str = "Down", linkedid: str | None = None, uniqueid: str | None = None
    ) -> Channel:
        """A one-channel technology (``PJSIP/1001``, ``PJSIP/79161234567@trunk``)."""
        tech = endpoint.split("/", 1)[0]
        number = endpoint.split("/", 1)[1].partition("@")[0]
        device = self.device_of(endpoint)
        name = f"{device}-{self.ids.tech_suffix(tech)}"
        return self.new_channel(
            name=name, device=device, state=state, context="default", exten=number or "s",
            linkedid=linkedid, uniqueid=uniqueid,
        )  # fmt: skip

    def local_bridge_event(self, one: Channel, two: Channel) -> None:
        self.ami(
            "LocalBridge",
            [
                *one.ami_fields("LocalOne"),
                *two.ami_fields("LocalTwo"),
                ("Context", one.context),
                ("Exten", one.exten),
                ("LocalOptimization", "Yes"),
            ],
        )

    # --- channel changes -------------------------------------------------------------------
    def set_state(self, channel: Channel, state: str) -> None:
        if channel.state == state or channel.destroyed:
            return
        channel.state = state
        self.ari("ChannelStateChange", channel)
        self.ami("Newstate", channel.ami_fields())
        self.devices.refresh(channel.device)

    def set_hold(self, channel: Channel, held: bool) -> None:
        """The phone puts its call on hold (or takes it back): AMI ``Hold``/``Unhold``, ARI ``ChannelHold``/
        ``ChannelUnhold``, and the device shows ``ONHOLD``."""
        if channel.on_hold == held or channel.destroyed:
            return
        channel.on_hold = held
        self.ari("ChannelHold" if held else "ChannelUnhold", channel)
        self.ami("Hold" if held else "Unhold", channel.ami_fields())
        self.devices.refresh(channel.device)

    def answer(self, channel: Channel) -> None:
        if channel.state == "Up" or channel.destroyed:
            return
        channel.answered_at = now()
        self.set_state(channel, "Up")
        if channel.on_answer is not None:
            hook, channel.on_answer = channel.on_answer, None
            hook()

    def set_var(self, channel: Channel, name: str, value: str) -> None:
        channel.variables[name] = value
        self.ari("ChannelVarset", channel, before={"variable": name, "value": value})
        self.ami("VarSet", [*channel.ami_fields(), ("Variable", name), ("Value", value)], "dialplan")

    def set_caller(self, channel: Channel, caller: CallerId) -> None:
        channel.caller = CallerId(caller.name, caller.number)
        self.ari(
            "ChannelCallerId",
            channel,
            after={"caller_presentation": 0, "caller_presentation_txt": "Presentation Allowed, Not Screened"},
        )
        self.ami("NewCallerid", [*channel.ami_fields(), ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])

    def set_connected(self, channel: Channel, connected: CallerId) -> None:
        if channel.connected == connected:
            return
        channel.connected = CallerId(connected.name, connected.number)
        self.ari("ChannelConnectedLine", channel)
        self.ami("NewConnectedLine", channel.ami_fields())

    def dialplan_step(self, channel: Channel, app: str, data: str, *, priority: int | None = None) -> None:
        channel.set_dialplan(app, data, priority)
        self.ari("ChannelDialplan", channel, after={"dialplan_app": app, "dialplan_app_data": data})
        self.ami(
            "Newexten",
            [*channel.ami_fields(), ("Extension", channel.exten), ("Application", app), ("AppData", data)],
            "dialplan",
        )

    # --- Stasis ----------------------------------------------------------------------------
    def enter_stasis(self, channel: Channel, app: str, args: list[str], replacing: Channel | None = None) -> bool:
        """Stasis(app,args...): False (and STASISSTATUS=FAILED) when no WebSocket serves ``app``."""
        channel.set_dialplan("Stasis", ",".join([app, *args]))
        if not self.bus.is_active(app):
            log.warning("sim.stasis_app_inactive", app=app, channel=channel.name)
            self.set_var(channel, "STASISSTATUS", "FAILED")
            return False
        self.set_var(channel, "STASISSTATUS", "")
        self.bus.app(app).stasis_channels.add(channel.id)
        channel.stasis_app, channel.stasis_args = app, list(args)
        after: dict[str, Any] = {"args": list(args)}
        if replacing is not None:
            after["replace_channel"] = replacing.as_json()
        self.ari("StasisStart", channel, after=after)
        return True

    def leave_stasis(self, channel: Channel) -> None:
        if channel.stasis_app is None:
            return
        self.ari("StasisEnd", channel)
        self.bus.app(channel.stasis_app).stasis_channels.discard(channel.id)
        channel.stasis_app = None
        self.set_var(channel, "STASISSTATUS", "SUCCESS")
        if channel.home_dialplan is not None:
            channel.set_dialplan(*channel.home_dialplan)

    # --- hangup ----------------------------------------------------------------------------
    def hangup_request(self, channel: Channel, cause: int, *, soft: bool) -> None:
        before: dict[str, Any] = {"cause": cause, "soft": True} if soft else {"cause": cause}
        self.ari("ChannelHangupRequest", channel, before=before)
        self.ami("SoftHangupRequest" if soft else "HangupRequest", [*channel.ami_fields(), ("Cause", str(cause))])

    def hangup(self, channel: Channel, cause: int, how: HangupHow, between: Callable[[], None] | None = None) -> None:
        """Hang up ``channel`` (and its Local peer); ``between`` runs after the first destroy."""
        if not self.begin_hangup(channel):
            return
        if how == "app":
            self.hangup_request(channel, SOFT_HANGUP_EXPLICIT, soft=True)
        elif how == "dialplan":
            self.hangup_request(channel, SOFT_HANGUP_APPUNLOAD, soft=True)
        elif how == "remote":
            self.hangup_request(channel, cause, soft=False)
        self.detach(channel)
        peer = channel.peer
        if peer is None or not self.begin_hangup(peer):
            self.destroy(channel, cause)
            if between is not None:
                between()
            return
        self.hangup_request(peer, cause, soft=False)
        self.destroy(channel, cause)
        if between is not None:
            between()
        self.detach(peer)
        if peer.name.endswith(";2"):
            self.hangup_request(peer, SOFT_HANGUP_APPUNLOAD, soft=True)
        self.destroy(peer, cause)

    def begin_hangup(self, channel: Channel) -> bool:
        if channel.hanging_up or channel.destroyed:
            return False
        channel.hanging_up = True
        channel.cancel_timers()
        channel.on_answer = None
        for hook in list(channel.hangup_hooks):
            hook()
        return True

    def detach(self, channel: Channel) -> None:
        """Stop media, leave the bridge and Stasis (the steps before a channel is destroyed)."""
        self.media.stop_channel_media(channel)
        if channel.bridge is not None:
            self.bridging.remove(channel)
        self.leave_stasis(channel)

    def destroy(self, channel: Channel, cause: int) -> None:
        if channel.destroyed:
            return
        channel.destroyed = True
        channel.hanging_up = True
        channel.cancel_timers()
        self.devices.forget(channel)
        self.devices.forget(self.channels.pop(channel.id, None))
        self.ari("ChannelDestroyed", channel, after={"cause": cause, "cause_txt": cause_text(cause)})
        self.ami("Hangup", [*channel.ami_fields(), ("Cause", str(cause)), ("Cause-txt", cause_text(cause))])
        self.ami("Cdr", channel.cdr_fields(cause), "cdr")
        self.bus.forget_channel(channel.id)
        self.devices.refresh(channel.device)
        for hook in list(self.destroy_hooks):
            hook(channel)
