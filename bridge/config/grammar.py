"""The small grammar of the routing config: actions (``queue:sales``, ``number:+7...``, ``voicemail``, ...) and
conditions (``hours:office``, ``prefix:7495,7499``, ``crm:OPPORTUNITY>=100000``, ...).

Problems go to ``problem(key, message)``; every id an action or condition names is collected in ``refs`` as
``(key, kind, id)`` and checked once the whole file is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bridge.domain.scheme import (
    Action,
    Always,
    CallerPrefix,
    Condition,
    CrmField,
    Hangup,
    HoldUntilFree,
    InHours,
    KnownClient,
    ToEmployee,
    ToIvr,
    ToNumber,
    ToQueue,
    ToResponsible,
    ToVoicemail,
)

CRM_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|!=|=|>|<)\s*(.+)$")
NUMBER_RE = re.compile(r"\+?[0-9]{3,20}")
EXT_RE = re.compile(r"[0-9A-Za-z_-]{1,20}")
DTMF_RE = re.compile(r"[0-9*#]")
"""Matched with ``fullmatch``: ``$`` would let a trailing line break through into a dial string."""

Problem = Callable[[str, str], None]
Ref = tuple[str, str, str]
"""(key, kind, id): a reference to a queue, employee, IVR menu or schedule, checked when everything is read."""


class Grammar:
    """Parses action and condition strings; ``regions`` (name -> prefixes) is set once ``[regions]`` is read."""

    def __init__(self, problem: Problem, refs: list[Ref]) -> None:
        self.problem = problem
        self.refs = refs
        self.regions: dict[str, tuple[str, ...]] = {}

    def action(self, key: str, text: Any) -> Action:
        if not isinstance(text, str):
            self.problem(key, f"an action must be a string, got {text!r}")
            return Hangup()
        kind, _, arg = text.strip().partition(":")
        refs = {"queue": "queue", "employee": "employee", "ivr": "ivr", "hold": "queue"}
        if kind in refs:
            if not arg:
                self.problem(key, f"{kind}: needs an id, e.g. {kind}:sales")
                return Hangup()
            self.refs.append((key, refs[kind], arg))
            if kind == "queue":
                return ToQueue(arg)
            if kind == "employee":
                return ToEmployee(arg)
            if kind == "ivr":
                return ToIvr(arg)
            return HoldUntilFree(arg)
        if kind == "number":
            if not NUMBER_RE.fullmatch(arg):
                self.problem(key, f"number: must be digits with an optional leading +, got {arg!r}")
                return Hangup()
            return ToNumber(arg)
        if kind == "voicemail":
            if arg:
                self.refs.append((key, "employee", arg))
            return ToVoicemail(arg)
        if kind == "responsible" and arg in ("", "nosupervisor"):
            return ToResponsible(supervisor=arg != "nosupervisor")
        if kind == "hangup" and not arg:
            return Hangup()
        self.problem(key, f"unknown action {text!r} (queue:, employee:, number:, ivr:, hold:, responsible, "
                          "voicemail, hangup)")  # fmt: skip
        return Hangup()

    def condition(self, key: str, text: Any) -> Condition:
        if not isinstance(text, str):
            self.problem(key, f"a condition must be a string, got {text!r}")
            return Always()
        kind, _, arg = text.strip().partition(":")
        if kind == "always" and not arg:
            return Always()
        if kind in ("hours", "closed") and arg:
            self.refs.append((key, "schedule", arg))
            return InHours(arg, inside=kind == "hours")
        if kind == "prefix" and arg:
            return CallerPrefix(tuple(self.digits_list(key, arg.split(","))))
        if kind == "region" and arg:
            if arg not in self.regions:
                self.problem(key, f"unknown region {arg!r}")
                return Always()
            return CallerPrefix(self.regions[arg])
        if kind in ("known", "unknown") and not arg:
            return KnownClient(known=kind == "known")
        if kind == "crm":
            match = CRM_RE.match(arg)
            if match:
                return CrmField(match.group(1), match.group(2), match.group(3).strip())
        self.problem(key, f"unknown condition {text!r} (always, hours:, closed:, prefix:, region:, known, unknown, "
                          "crm:FIELD>=VALUE)")  # fmt: skip
        return Always()

    def digits_list(self, key: str, values: Any) -> list[str]:
        if not isinstance(values, list):
            self.problem(key, "must be a list of digit prefixes")
            return []
        result = [str(v).strip().lstrip("+") for v in values]
        for v in result:
            if not (v.isascii() and v.isdigit()):
                self.problem(key, f"a prefix is digits only, got {v!r}")
        return result
