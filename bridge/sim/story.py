"""The demo's console: the daemon's JSON log lines go to a file, and a few of them, retold in one short line each,
to the console, so that a person watching ``b24-bridge demo`` reads each call's story step by step."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

Teller = Callable[[dict[str, Any]], str]


def _transition(line: dict[str, Any]) -> str:
    return {
        "talking": "answered: talking",
        "holding": "waits with music until someone is free",
        "voicemail_recording": "leaves a voicemail",
        "menu_prompt": "hears the menu" if line.get("from") not in ("menu_prompt", "menu_wait") else "",
    }.get(line.get("to", ""), "")


def _delivered(line: dict[str, Any]) -> str:
    method = str(line.get("method", ""))
    if method.endswith(".finish"):
        return "Bitrix24 holds the call (finish)"
    if method.endswith(".attachRecord"):
        return "Bitrix24 has the recording"
    if method.endswith(".register"):
        return f"Bitrix24 registered it as {line.get('b24_call_id', '?')}"
    return ""


TELLERS: dict[str, Teller] = {
    "call.started": lambda x: f"call from {x.get('caller')} on line {x.get('line')}",
    "leg.ringing": lambda x: f"rings {x.get('endpoint')}",
    "leg.released": lambda x: f"stops ringing {x.get('ext') or x.get('leg')} ({x.get('reason')})",
    "call.transition": _transition,
    "call.ended": lambda x: (
        f"ended: status {x.get('status')}, {x.get('duration')} s, handled by {x.get('handled_by') or 'nobody'}"
    ),
    "crm.delivered": _delivered,
    "crm.offline": lambda _x: "Bitrix24 does not answer: the call is mirrored once it is back",
    "crm.replayed": lambda _x: "mirrored to Bitrix24 after the outage",
    "leads.distributed": lambda x: f"its lead goes to user {x.get('user_id')}: {x.get('why')}",
    "leads.assigned": lambda x: f"Bitrix24: lead {x.get('lead')} is user {x.get('user_id')}'s, who is notified",
    "crm.failed": lambda x: f"Bitrix24 refused {x.get('method')}: {x.get('reason')}",
    "clicktocall.started": lambda x: f"click-to-call from Bitrix24: rings {x.get('ext')}",
    "callback.dialling": lambda x: f"callback: dials the client for line {x.get('line')}",
    "demo.scenario": lambda x: f"▶ {x.get('scenario')}: {x.get('story')}",
    "demo.outage": lambda x: f"⚡ Bitrix24 goes away for {x.get('seconds')} s",
    "demo.outage_over": lambda _x: "⚡ Bitrix24 is back",
    "demo.scenario_failed": lambda x: f"! {x.get('scenario')} could not be played: {x.get('error')}",
}


class StoryStream(io.TextIOBase):
    """A text stream for the log renderer: every line goes to ``log``; the story of it to ``console``.

    ``callers`` maps a caller's digits to a name for the call (the demo's scenario), else the call's id is shown.
    """

    def __init__(self, log: TextIO, console: TextIO, callers: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.log = log
        self.console = console
        self.callers = dict(callers or {})
        self.names: dict[str, str] = {}
        self.started = time.monotonic()
        self._pending = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self.log.write(text)
        self._pending += text
        *complete, self._pending = self._pending.split("\n")
        for line in complete:
            self._tell(line)
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.console.flush()

    def _tell(self, text: str) -> None:
        try:
            line = json.loads(text)
        except ValueError:
            return
        if not isinstance(line, dict):
            return
        event = str(line.get("event", ""))
        teller = TELLERS.get(event)
        told = teller(line) if teller else ""
        if not told and line.get("level") == "error":
            told = f"! {event}: {line.get('reason') or line.get('error') or ''}"
        if not told:
            return
        who = self._name(line)
        at = time.monotonic() - self.started
        self.console.write(f"{at:6.1f}s  {who:<34} {told}\n" if who else f"{at:6.1f}s  {told}\n")

    def _name(self, line: dict[str, Any]) -> str:
        call = str(line.get("call_id") or "")
        if not call:
            return ""
        if call not in self.names and line.get("event") == "call.started":
            digits = "".join(ch for ch in str(line.get("caller", "")) if ch.isdigit())
            scenario = self.callers.get(digits)
            if scenario:
                self.names[call] = f"{scenario} ({call})"
        return self.names.get(call, call)
