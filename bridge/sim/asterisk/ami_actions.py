"""AMI actions: Ping, Events, Filter, Originate, CoreShowChannels, Status, Getvar, Setvar, Hangup,
DeviceStateList and Command (Asterisk 14+ style: one ``Output:`` header per line).

``Originate`` understands the recorded set-ups: ``Local/<DID>@<inbound context>`` is an inbound
customer (the recorded robot's ``CALLER_HANGUP_AFTER``, ``CALLER_DTMF``, ``CALLER_DTMF_DELAY``
variables script it, counted from the answer); ``Application: Stasis`` puts the answered channel
into an app; anything with ``Context``/``Exten`` is a phone that, once it picks up, dials
``Exten`` out through the trunk (recording ``d``, or click-to-call).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING

import structlog

from bridge.dialplan.trace import FORGET_CONTEXT
from bridge.sim.asterisk.ami import AmiRequest, AmiSession
from bridge.sim.asterisk.ami_command import run_command
from bridge.sim.asterisk.calls import CallHandle, OriginateReport
from bridge.sim.asterisk.causes import NORMAL_CLEARING
from bridge.sim.asterisk.fallback import run_forget
from bridge.sim.asterisk.inbound import CallerScript, place_inbound
from bridge.sim.asterisk.model import CallerId, Channel, Headers
from bridge.sim.asterisk.originate import (
    AllocationFailed,
    OriginateError,
    OriginateRequest,
    parse_caller_id,
    split_endpoint,
)
from bridge.sim.asterisk.outbound import Phone, dial_out, start_phone

if TYPE_CHECKING:
    from bridge.sim.asterisk.simulator import AsteriskSimulator

log = structlog.get_logger(__name__)


def _variables(request: AmiRequest) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in request.getall("Variable"):
        for item in header.split(","):
            name, sep, value = item.partition("=")
            if sep and name.strip():
                found[name.strip()] = value
    return found


def _number(text: str, default: float) -> float:
    try:
        return float(text) if text.strip() else default
    except ValueError:
        return default


def _caller_robot(variables: dict[str, str]) -> CallerScript:
    """The recorded caller robot: after the answer, Wait(CALLER_DTMF_DELAY), SendDTMF(CALLER_DTMF),
    then Wait(CALLER_HANGUP_AFTER) and Hangup (without DTMF: just the last wait)."""
    digits = variables.get("CALLER_DTMF", "")
    delay = _number(variables.get("CALLER_DTMF_DELAY", ""), 0.0) if digits else 0.0
    hangup_after = _number(variables.get("CALLER_HANGUP_AFTER", ""), -1.0)
    return CallerScript(
        hangup_after=None if hangup_after < 0 else delay + hangup_after,
        dtmf=[(delay, digits)] if digits else [],
        timing="answer",
        variables=variables,
    )


class AmiActions:
    def __init__(self, sim: AsteriskSimulator) -> None:
        self.sim = sim

    async def handle(self, session: AmiSession, request: AmiRequest) -> None:
        self.sim.record_request("ami", request.action, "", dict(request.headers))
        handler = {
            "ping": self.ping,
            "events": self.events,
            "filter": self.filter,
            "originate": self.originate,
            "coreshowchannels": self.core_show_channels,
            "status": self.status,
            "getvar": self.getvar,
            "setvar": self.setvar,
            "hangup": self.hangup,
            "devicestatelist": self.device_state_list,
            "command": self.command,
            "dbgettree": self.db_get_tree,
            "dbget": self.db_get,
            "dbput": self.db_put,
            "dbdeltree": self.db_del_tree,
        }.get(request.action.lower())
        if handler is None:
            session.send(request.reply(("Response", "Error"), ("Message", "Invalid/unknown command")))
            return
        await handler(session, request)

    async def ping(self, session: AmiSession, request: AmiRequest) -> None:
        stamp = f"{time.time():.6f}"
        session.send(request.reply(("Response", "Success"), ("Ping", "Pong"), ("Timestamp", stamp)))

    async def events(self, session: AmiSession, request: AmiRequest) -> None:
        mask = session.access.set_mask(request.get("EventMask"))
        if mask is None:
            session.send(request.reply(("Response", "Error"), ("Message", "Invalid event mask")))
            return
        session.send(request.reply(("Response", "Success"), ("Events", "On" if mask > 0 else "Off")))

    async def filter(self, session: AmiSession, request: AmiRequest) -> None:
        if request.get("Operation").lower() != "add":
            session.send(request.reply(("Response", "Error"), ("Message", "Unknown operation")))
            return
        error = session.access.add_filter(request.get("Filter"))
        message = ("Response", "Error") if error else ("Response", "Success")
        session.send(request.reply(message, ("Message", error or "Success")))

    # --- Originate -------------------------------------------------------------------------
    async def originate(self, session: AmiSession, request: AmiRequest) -> None:
        is_async = request.get("Async", "false").lower() in ("true", "yes", "1", "y", "t")
        report = OriginateReport(action_id=request.get("ActionID") or None, emit_event=is_async)
        if not is_async:
            report.outcome = asyncio.get_running_loop().create_future()
        try:
            self._start_originate(request, report)
        except OriginateError as exc:
            log.warning("sim.ami_originate_rejected", reason=str(exc))
            session.send(request.reply(("Response", "Error"), ("Message", str(exc))))
            return
        if report.outcome is None:
            session.send(request.reply(("Response", "Success"), ("Message", "Originate successfully queued")))
            return
        status = await report.outcome
        if status == "ANSWER":
            session.send(request.reply(("Response", "Success"), ("Message", "Originate successfully queued")))
        else:
            session.send(request.reply(("Response", "Error"), ("Message", "Originate failed")))

    def _start_originate(self, request: AmiRequest, report: OriginateReport) -> None:
        sim, pbx = self.sim, self.sim.pbx
        channel = request.get("Channel")
        if not channel:
            raise OriginateError("Channel not specified")
        tech, resource = split_endpoint(channel)
        timeout = _number(request.get("Timeout"), 30000.0) / 1000.0
        variables = _variables(request)
        caller = parse_caller_id(request.get("CallerID")) if request.get("CallerID") else CallerId()
        exten, _, context = resource.partition("@")
        application = request.get("Application")
        if tech.lower() == "local" and context == sim.dialplan_context:
            script = _caller_robot(variables)
            place_inbound(
                pbx, app=sim.stasis_app, context=context, did=exten, caller=caller, script=script,
                originate_timeout=timeout, report=report,
            )  # fmt: skip
        elif tech.lower() == "local" and context == FORGET_CONTEXT:
            run_forget(pbx, resource, report)
        elif application:
            self._originate_application(request, report, channel, timeout, variables)
        elif request.get("Exten"):
            target = request.get("Exten")
            phone = Phone(
                device=channel, caller=caller, context=request.get("Context") or sim.outbound_context,
                party=pbx.parties.for_endpoint(channel), originated=True,
            )  # fmt: skip

            def then(phone_channel: Channel, handle: CallHandle) -> None:
                party = pbx.parties.for_endpoint(target)
                dial_out(pbx, phone_channel, handle, number=target, trunk=sim.trunk_template, party=party, timeout=60.0)

            start_phone(pbx, phone, target, then, report=report, timeout=timeout)
        else:
            raise OriginateError("Exten or Application not specified")

    def _originate_application(
        self,
        request: AmiRequest,
        report: OriginateReport,
        channel: str,
        timeout: float,
        variables: dict[str, str],
    ) -> None:
        pbx = self.sim.pbx
        application, data = request.get("Application"), request.get("Data")
        try:
            leg = self.sim.originator.prepare(
                OriginateRequest(endpoint=channel, caller_id=request.get("CallerID") or None, timeout=timeout,
                                 variables=variables)
            )  # fmt: skip
        except AllocationFailed:
            report.not_created(pbx, [("Channel", channel), ("Application", application), ("Data", data)])
            return
        outer = leg.outer

        def answered() -> None:
            report(pbx, outer, "", "", "ANSWER")
            if application.lower() == "stasis":
                app, *args = data.split(",")
                if not pbx.enter_stasis(outer, app, args):
                    pbx.hangup(outer, NORMAL_CLEARING, "dialplan")
            else:
                pbx.dialplan_step(outer, application, data, priority=1)

        leg.on_answer = answered
        leg.on_fail = lambda status: report(pbx, outer, "", "", status)
        leg.begin(variables)

    # --- AstDB (main/db.c) -------------------------------------------------------------------
    def _db_prefix(self, request: AmiRequest) -> str:
        family, key = request.get("Family"), request.get("Key")
        return (f"/{family}" if family else "") + (f"/{key}" if family and key else "")

    async def db_get_tree(self, session: AmiSession, request: AmiRequest) -> None:
        prefix = self._db_prefix(request)
        rows: list[Headers] = [
            [("Event", "DBGetTreeResponse"), ("Key", key), ("Val", value)]
            for key, value in sorted(self.sim.pbx.astdb.items())
            if not prefix or key == prefix or key.startswith(prefix + "/")
        ]
        self._list(session, request, "Result", rows, "DBGetTreeComplete")

    async def db_get(self, session: AmiSession, request: AmiRequest) -> None:
        key = f"/{request.get('Family')}/{request.get('Key')}"
        if key not in self.sim.pbx.astdb:
            session.send(request.reply(("Response", "Error"), ("Message", "Database entry not found")))
            return
        rows: list[Headers] = [
            [("Event", "DBGetResponse"), ("Family", request.get("Family")), ("Key", request.get("Key")),
             ("Val", self.sim.pbx.astdb[key])]
        ]  # fmt: skip
        self._list(session, request, "Result", rows, "DBGetComplete")

    async def db_put(self, session: AmiSession, request: AmiRequest) -> None:
        if not request.get("Family") or not request.get("Key"):
            session.send(request.reply(("Response", "Error"), ("Message", "No family specified.")))
            return
        self.sim.pbx.astdb[f"/{request.get('Family')}/{request.get('Key')}"] = request.get("Val")
        session.send(request.reply(("Response", "Success"), ("Message", "Updated database successfully")))

    async def db_del_tree(self, session: AmiSession, request: AmiRequest) -> None:
        if not request.get("Family"):
            session.send(request.reply(("Response", "Error"), ("Message", "No family specified.")))
            return
        prefix = self._db_prefix(request)
        keys = [k for k in self.sim.pbx.astdb if k == prefix or k.startswith(prefix + "/")]
        for key in keys:
            del self.sim.pbx.astdb[key]
        if keys:
            session.send(request.reply(("Response", "Success"), ("Message", "Key tree deleted successfully")))
        else:
            session.send(request.reply(("Response", "Error"), ("Message", "Database entry not found")))

    # --- lists -----------------------------------------------------------------------------
    def _list(self, session: AmiSession, request: AmiRequest, what: str, items: list[Headers], done: str) -> None:
        session.send(request.reply(("Response", "Success"), ("EventList", "start"), ("Message", f"{what} will follow")))
        action_id = [("ActionID", request.get("ActionID"))] if request.get("ActionID") else []
        for item in items:
            name, *fields = item
            session.send([name, *action_id, *fields])
        session.send([("Event", done), *action_id, ("EventList", "Complete"), ("ListItems", str(len(items)))])

    def _channel_row(self, channel: Channel, event: str) -> Headers:
        seconds = int(time.time() - channel.created_at)
        duration = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        return [
            ("Event", event),
            *channel.ami_fields(),
            ("Application", channel.app_name),
            ("ApplicationData", channel.app_data),
            ("Duration", duration),
            ("BridgeId", channel.bridge.id if channel.bridge else ""),
        ]

    async def core_show_channels(self, session: AmiSession, request: AmiRequest) -> None:
        rows = [self._channel_row(c, "CoreShowChannel") for c in self.sim.pbx.channels.values()]
        self._list(session, request, "Channels", rows, "CoreShowChannelsComplete")

    async def status(self, session: AmiSession, request: AmiRequest) -> None:
        wanted = request.get("Channel")
        channels = [c for c in self.sim.pbx.channels.values() if not wanted or c.name == wanted]
        self._list(session, request, "Channel status", [self._channel_row(c, "Status") for c in channels],
                   "StatusComplete")  # fmt: skip

    async def device_state_list(self, session: AmiSession, request: AmiRequest) -> None:
        rows: list[Headers] = [
            [("Event", "DeviceStateChange"), ("Device", device), ("State", state)]
            for device, state in sorted(self.sim.pbx.devices.states.items())
        ]
        self._list(session, request, "Device State Changes", rows, "DeviceStateListComplete")

    # --- single channel actions ------------------------------------------------------------
    def _find(self, name: str) -> list[Channel]:
        channels = list(self.sim.pbx.channels.values())
        if len(name) > 1 and name.startswith("/") and name.endswith("/"):
            try:
                pattern = re.compile(name[1:-1])
            except re.error:
                return []
            return [c for c in channels if pattern.search(c.name)]
        return [c for c in channels if c.name == name or c.id == name]

    async def getvar(self, session: AmiSession, request: AmiRequest) -> None:
        variable = request.get("Variable")
        found = self._find(request.get("Channel"))
        if not found:
            session.send(request.reply(("Response", "Error"), ("Message", "No such channel")))
            return
        value = self.sim.channel_variable(found[0], variable)
        session.send(request.reply(("Response", "Success"), ("Variable", variable), ("Value", value or "")))

    async def setvar(self, session: AmiSession, request: AmiRequest) -> None:
        """Without ``Channel`` the variable is a global one."""
        variable, value = request.get("Variable"), request.get("Value")
        if not variable:
            session.send(request.reply(("Response", "Error"), ("Message", "No variable specified")))
            return
        if not request.get("Channel"):
            self.sim.set_global_variable(variable, value)
        elif found := self._find(request.get("Channel")):
            self.sim.pbx.set_var(found[0], variable, value)
        else:
            session.send(request.reply(("Response", "Error"), ("Message", "No such channel")))
            return
        session.send(request.reply(("Response", "Success"), ("Message", "Variable Set")))

    async def hangup(self, session: AmiSession, request: AmiRequest) -> None:
        found = self._find(request.get("Channel"))
        if not found:
            session.send(request.reply(("Response", "Error"), ("Message", "No such channel")))
            return
        cause = int(_number(request.get("Cause"), NORMAL_CLEARING))
        for channel in found:
            self.sim.pbx.hangup(channel, cause, "app")
        session.send(request.reply(("Response", "Success"), ("Message", "Channel Hungup")))

    async def command(self, session: AmiSession, request: AmiRequest) -> None:
        ok, lines = run_command(self.sim, request.get("Command"))
        response = ("Response", "Success" if ok else "Error")
        session.send(
            request.reply(response, ("Message", "Command output follows"), *[("Output", line) for line in lines])
        )
