"""The routing half of the config: schedules, regions, employees, queues, IVR menus and lines -> ``Plan``.

Every reference (a queue named by a rule, an extension named by a queue) is checked, and each problem is
reported with its key, so an operator fixes a broken scheme in one pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import date, time
from typing import Any

from bridge.config.checks import routing_loops
from bridge.config.grammar import DTMF_RE, EXT_RE, NUMBER_RE, Grammar, Problem, Ref
from bridge.config.leads import LeadParser
from bridge.domain.schedule import Hours, Schedule
from bridge.domain.scheme import (
    MAX_RINGS,
    RING_SECONDS,
    Action,
    Distribution,
    Employee,
    IvrMenu,
    Line,
    Plan,
    QueueGroup,
    Rule,
    ToEmployee,
    ToIvr,
    ToNumber,
    ToResponsible,
    ToVoicemail,
)

_MEDIA_RE = re.compile(r"(sound|recording|tone|digits|number|characters):[A-Za-z0-9_./;=-]{1,200}")
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")
_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


class RoutingParser:
    """Builds a :class:`Plan`; reports problems through ``problem(key, message)``."""

    def __init__(
        self,
        problem: Problem,
        timezone_ok: Callable[[str], bool],
        parse_hours: Callable[[str], tuple[time, time]],
    ) -> None:
        self.problem = problem
        self.timezone_ok = timezone_ok
        self.parse_hours = parse_hours
        self._refs: list[Ref] = []  # checked once everything is read
        self.grammar = Grammar(problem, self._refs)

    # -- sections ------------------------------------------------------------------------------------

    def plan(self, data: dict[str, Any]) -> Plan:
        routing = self._table(data, "routing")
        known = {"ring_seconds", "crm_lookup_timeout", "voicemail_max_seconds", "voicemail_prompt", "greeting",
                 "intercept_code"}  # fmt: skip
        for name in routing:
            if name not in known:
                self.problem(f"routing.{name}", "unknown key")
        self.grammar.regions = {
            name: tuple(self.grammar.digits_list(f"regions.{name}", v))
            for name, v in self._table(data, "regions").items()
        }
        schedules = {sid: self._schedule(sid, s) for sid, s in self._tables(data, "schedules").items()}
        employees = self._employees(self._table(data, "employees"))
        queues = {qid: self._queue(qid, q) for qid, q in self._tables(data, "queues").items()}
        menus = {mid: self._menu(mid, m) for mid, m in self._tables(data, "ivr").items()}
        lines = {str(num): self._line(str(num), ln) for num, ln in self._tables(data, "lines").items()}
        leads = LeadParser(self.problem, self.grammar, self._refs)
        distributions = {
            did: leads.distribution(did, d, queues) for did, d in self._tables(data, "lead_distribution").items()
        }
        for num in lines:
            if not NUMBER_RE.fullmatch(num):
                self.problem(f"lines.{num}", "a line number must be digits (optionally a leading +)")
        present: dict[str, set[str]] = {
            "queue": set(queues),
            "ivr": set(menus),
            "employee": set(employees),
            "schedule": set(schedules),
            "line": set(lines),
            "lead distribution": set(distributions),
        }
        auto_map = self._table(data, "employees").get("auto_map", True) is True
        for key, kind, ident in self._refs:
            if kind == "employee" and auto_map and ident not in present[kind]:
                continue  # resolved from Bitrix24 at start (check-config warns)
            if ident not in present[kind]:
                extra = " (not in [employees.map], and employees.auto_map is off)" if kind == "employee" else ""
                self.problem(key, f"unknown {kind} {ident!r}{extra}")
        plan = Plan(
            lines=lines,
            queues=queues,
            menus=menus,
            employees=employees,
            schedules=schedules,
            ring_seconds=self._number(routing, "routing.", "ring_seconds", RING_SECONDS),
            crm_lookup_timeout=self._number(routing, "routing.", "crm_lookup_timeout", 2.0),
            voicemail_max_seconds=self._number(routing, "routing.", "voicemail_max_seconds", 120.0),
            voicemail_prompt=self._media(routing, "routing.voicemail_prompt", "sound:vm-intro"),
            greeting=self._media(routing, "routing.greeting", ""),
            intercept_code=self._code(routing, "routing.intercept_code"),
            lead_distributions=distributions,
        )
        for queue in queues.values():
            if plan.intercept_code and queue.intercept_code == plan.intercept_code:
                self.problem("routing.intercept_code", f"is also queues.{queue.id}.intercept_code: a group's own code "
                             "takes only that group's calls, so this telephony-wide code could never take another "
                             "group's; choose two different codes")  # fmt: skip
        for key, message in routing_loops(plan):
            self.problem(key, message)
        return plan

    def _schedule(self, sid: str, data: dict[str, Any]) -> Schedule:
        key = f"schedules.{sid}"
        tz = data.get("timezone", "UTC")
        if not isinstance(tz, str) or not self.timezone_ok(tz):
            self.problem(f"{key}.timezone", f"unknown timezone {tz!r}")
            tz = "UTC"
        weekly: dict[int, Hours] = {}
        holidays: set[date] = set()
        overrides: dict[date, Hours] = {}
        for name, value in data.items():
            if name in _DAYS:
                weekly[_DAYS[name]] = self._hours(f"{key}.{name}", value)
            elif name == "holidays":
                if not isinstance(value, list):
                    self.problem(f"{key}.holidays", 'must be a list of dates like ["2027-01-01"]')
                    continue
                holidays.update(d for d in (self._date(f"{key}.holidays", v) for v in value) if d)
            elif name == "overrides":
                for day, hours in self._table(data, "overrides", key).items():
                    parsed = self._date(f"{key}.overrides", day)
                    if parsed:
                        overrides[parsed] = self._hours(f"{key}.overrides.{day}", hours)
            elif name != "timezone":
                self.problem(f"{key}.{name}", "unknown key (days are mon..sun, plus holidays, overrides)")
        return Schedule(sid, tz, weekly, frozenset(holidays), overrides)

    def _employees(self, data: dict[str, Any]) -> dict[str, Employee]:
        result: dict[str, Employee] = {}
        for name in data:
            if name not in ("auto_map", "time_tracking", "skip_absent", "require_online", "online_minutes", "map"):
                self.problem(
                    f"employees.{name}",
                    "unknown key (auto_map, time_tracking, skip_absent, require_online, online_minutes,"
                    " [employees.map.EXT])",
                )
        for ext, emp in self._tables(data, "map", "employees").items():
            key = f"employees.map.{ext}"
            if not EXT_RE.fullmatch(ext):
                self.problem(key, "an extension is 1-20 letters, digits, - or _")
            known = {"user_id", "name", "mobile", "supervisor", "on_busy", "unavailable_to_mobile",
                     "no_answer_to_mobile", "no_answer_rings"}  # fmt: skip
            for name in emp:
                if name not in known:
                    self.problem(f"{key}.{name}", "unknown key")
            user_id = emp.get("user_id")
            if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
                self.problem(f"{key}.user_id", "must be the Bitrix24 user id (a positive integer)")
                user_id = 0
            mobile = str(emp.get("mobile", ""))
            if mobile and not NUMBER_RE.fullmatch(mobile):
                self.problem(f"{key}.mobile", "must be digits with an optional leading +")
            on_busy: ToVoicemail | ToNumber | None = None
            if "on_busy" in emp:
                action = self.grammar.action(f"{key}.on_busy", emp["on_busy"])
                if isinstance(action, ToVoicemail | ToNumber):
                    on_busy = action
                else:
                    self.problem(f"{key}.on_busy", "must be voicemail[:EXT] or number:DIGITS")
            supervisor = str(emp.get("supervisor", ""))
            if supervisor:
                self._refs.append((f"{key}.supervisor", "employee", supervisor))
            for flag in ("unavailable_to_mobile", "no_answer_to_mobile"):
                if emp.get(flag) and not mobile:
                    self.problem(f"{key}.{flag}", "needs a mobile number")
            no_answer_rings = 0
            if "no_answer_rings" in emp:
                no_answer_rings = self._rings(f"{key}.no_answer_rings", emp["no_answer_rings"]) or 0
                if not emp.get("no_answer_to_mobile"):
                    self.problem(f"{key}.no_answer_rings", "rings before the mobile: needs no_answer_to_mobile = true")
            result[ext] = Employee(
                ext=ext,
                user_id=user_id,
                name=str(emp.get("name", "")),
                mobile=mobile,
                supervisor_ext=supervisor,
                on_busy=on_busy,
                unavailable_to_mobile=bool(emp.get("unavailable_to_mobile", False)),
                no_answer_to_mobile=bool(emp.get("no_answer_to_mobile", False)),
                no_answer_rings=no_answer_rings,
            )
        return result

    def _queue(self, qid: str, data: dict[str, Any]) -> QueueGroup:
        key = f"queues.{qid}"
        known = {"members", "distribution", "rings_per_member", "passes", "final", "missed_owner",
                 "intercept_code", "name", "workload_of"}  # fmt: skip
        for name in data:
            if name not in known:
                self.problem(f"{key}.{name}", "unknown key")
        members = data.get("members", [])
        if not isinstance(members, list) or not members:
            self.problem(f"{key}.members", "must be a non-empty list of extensions")
            members = []
        members = [str(m) for m in members]
        for m in members:
            self._refs.append((f"{key}.members", "employee", m))
        if len(set(members)) != len(members):
            self.problem(f"{key}.members", "lists an extension twice")
        dist_name = data.get("distribution", "in_order")
        try:
            distribution = Distribution(dist_name)
        except ValueError:
            self.problem(f"{key}.distribution", f"must be evenly, in_order, everybody or workload, got {dist_name!r}")
            distribution = Distribution.IN_ORDER
        rings = data.get("rings_per_member", 3)
        min_rings = 0 if distribution is Distribution.EVERYBODY else 1
        if not isinstance(rings, int) or isinstance(rings, bool) or rings < min_rings:
            self.problem(f"{key}.rings_per_member", f"must be an integer >= {min_rings}")
            rings = 3
        passes = data.get("passes", 1)
        if not isinstance(passes, int) or isinstance(passes, bool) or passes < 1:
            self.problem(f"{key}.passes", "must be an integer >= 1")
            passes = 1
        missed_owner = str(data.get("missed_owner", ""))
        if missed_owner:
            self._refs.append((f"{key}.missed_owner", "employee", missed_owner))
        workload_of = str(data.get("workload_of", "leads"))
        if workload_of not in ("leads", "deals"):
            self.problem(f"{key}.workload_of", f"must be leads or deals, got {workload_of!r}")
            workload_of = "leads"
        code = self._code(data, f"{key}.intercept_code")
        return QueueGroup(
            id=qid,
            members=tuple(members),
            distribution=distribution,
            rings_per_member=rings,
            passes=passes,
            final=self.grammar.action(f"{key}.final", data.get("final", "hangup")),
            missed_owner=missed_owner,
            intercept_code=code,
            name=str(data.get("name", qid)),
            workload_of=workload_of,
        )

    def _menu(self, mid: str, data: dict[str, Any]) -> IvrMenu:
        key = f"ivr.{mid}"
        known = {"prompt", "options", "timeout", "max_replays", "on_fail", "invalid_prompt"}
        for name in data:
            if name not in known:
                self.problem(f"{key}.{name}", "unknown key")
        if not isinstance(data.get("prompt"), str):
            self.problem(f"{key}.prompt", "missing (a media URI such as sound:ivr-main)")
        options: list[tuple[str, Action]] = []
        for digit, target in self._table(data, "options", key).items():
            if not DTMF_RE.fullmatch(digit):
                self.problem(f"{key}.options.{digit}", "a key is one of 0-9 * #")
            options.append((digit, self.grammar.action(f"{key}.options.{digit}", target)))
        if not options:
            self.problem(f"{key}.options", "a menu needs at least one key")
        replays = data.get("max_replays", 2)
        if not isinstance(replays, int) or isinstance(replays, bool) or replays < 0:
            self.problem(f"{key}.max_replays", "must be an integer >= 0")
            replays = 2
        return IvrMenu(
            id=mid,
            prompt=str(data.get("prompt", "")),
            options=tuple(options),
            timeout=self._number(data, f"{key}.", "timeout", 5.0),
            max_replays=replays,
            on_fail=self.grammar.action(f"{key}.on_fail", data.get("on_fail", "hangup")),
            invalid_prompt=str(data.get("invalid_prompt", "sound:option-is-invalid")),
        )

    def _line(self, num: str, data: dict[str, Any]) -> Line:
        key = f"lines.{num}"
        known = {"name", "rules", "fallback", "default_ext", "crm_create", "crm_source", "missed_task",
                 "missed_notify", "record", "callback_queue", "pbx_fallback", "moh_class", "greeting",
                 "voicemail_prompt", "lead_distribution", "add_to_chat"}  # fmt: skip
        for name in data:
            if name not in known:
                self.problem(f"{key}.{name}", "unknown key")
        rules: list[Rule] = []
        raw_rules = data.get("rules", [])
        if not isinstance(raw_rules, list):
            self.problem(f"{key}.rules", "must be a list of {when = ..., then = ...}")
            raw_rules = []
        for i, raw in enumerate(raw_rules):
            rkey = f"{key}.rules[{i}]"
            if not isinstance(raw, dict) or "then" not in raw:
                self.problem(rkey, "must be a table with `then` (and optionally `when`, `name`)")
                continue
            for name in raw:
                if name not in ("when", "then", "name", "rings"):
                    self.problem(f"{rkey}.{name}", "unknown key")
            then = self.grammar.action(f"{rkey}.then", raw["then"])
            if "rings" in raw:
                then = self._rule_rings(f"{rkey}.rings", then, raw["rings"])
            rules.append(
                Rule(
                    when=self.grammar.condition(f"{rkey}.when", raw.get("when", "always")),
                    then=then,
                    name=str(raw.get("name", "")),
                )
            )
        default_ext = str(data.get("default_ext", ""))
        if default_ext:
            self._refs.append((f"{key}.default_ext", "employee", default_ext))
        callback_queue = str(data.get("callback_queue", ""))
        lead_distribution = str(data.get("lead_distribution", ""))
        if lead_distribution:
            self._refs.append((f"{key}.lead_distribution", "lead distribution", lead_distribution))
        if callback_queue:
            self._refs.append((f"{key}.callback_queue", "queue", callback_queue))
        flags = {n: data.get(n, d) for n, d in (("crm_create", True), ("missed_task", False),
                                                  ("missed_notify", False), ("record", True),
                                                  ("add_to_chat", True))}  # fmt: skip
        for name, value in flags.items():
            if not isinstance(value, bool):
                self.problem(f"{key}.{name}", "must be true or false")
        if lead_distribution and flags["crm_create"] is False:
            self.problem(f"{key}.lead_distribution", "needs crm_create = true: without it the calls make no leads")
        return Line(
            number=num,
            name=str(data.get("name", num)),
            rules=tuple(rules),
            fallback=self.grammar.action(f"{key}.fallback", data.get("fallback", "hangup")),
            default_ext=default_ext,
            crm_create=bool(flags["crm_create"]),
            crm_source=str(data.get("crm_source", "")),
            missed_task=bool(flags["missed_task"]),
            missed_notify=bool(flags["missed_notify"]),
            add_to_chat=bool(flags["add_to_chat"]),
            record=bool(flags["record"]),
            callback_queue=callback_queue,
            pbx_fallback=self._pbx_fallback(key, data.get("pbx_fallback", "auto")),
            moh_class=self._moh_class(data, f"{key}.moh_class"),
            greeting=self._media(data, f"{key}.greeting", ""),
            voicemail_prompt=self._media(data, f"{key}.voicemail_prompt", ""),
            lead_distribution=lead_distribution,
        )

    def _rings(self, key: str, value: Any) -> int | None:
        """A ring count: an integer 1..MAX_RINGS (else a problem and None)."""
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RINGS:
            self.problem(key, f"must be a whole number of rings from 1 to {MAX_RINGS} (routing.ring_seconds each), "
                              f"got {value!r}")  # fmt: skip
            return None
        return value

    def _rule_rings(self, key: str, action: Action, value: Any) -> Action:
        """``rings`` of a rule: how long its employee, number or responsible manager (and supervisor) ring."""
        if not isinstance(action, ToEmployee | ToNumber | ToResponsible):
            self.problem(key, "only employee:, number: and responsible rules ring for a number of rings")
            return action
        rings = self._rings(key, value)
        return action if rings is None else replace(action, rings=rings)

    def _pbx_fallback(self, key: str, text: Any) -> Action | None:
        """``auto`` (None: the dialplan generator approximates the rules) or an action the dialplan can run."""
        if text == "auto":
            return None
        action = self.grammar.action(f"{key}.pbx_fallback", text)
        if isinstance(action, ToIvr | ToResponsible):
            self.problem(f"{key}.pbx_fallback", "the dialplan cannot run menus or CRM lookups: use auto, queue:, "
                         "employee:, hold:, number:, voicemail or hangup")  # fmt: skip
        return action

    def _media(self, data: dict[str, Any], key: str, default: str) -> str:
        """A media URI Asterisk plays (``sound:NAME``, ``recording:NAME``, ``tone:...``); ``default`` when absent."""
        value = data.get(key.rpartition(".")[2], default)
        if value == default:
            return default
        if not isinstance(value, str) or not _MEDIA_RE.fullmatch(value):
            self.problem(key, f"must be a media URI such as sound:custom/greeting (sound:, recording:, tone:, "
                              f"digits:, number:; no spaces or commas), got {value!r}")  # fmt: skip
            return default
        return value

    def _moh_class(self, data: dict[str, Any], key: str) -> str:
        value = data.get("moh_class", "")
        if not isinstance(value, str) or (value and not _NAME_RE.fullmatch(value)):
            self.problem(key, f"must be a musiconhold.conf class name (letters, digits, - or _), got {value!r}")
            return ""
        return value

    def _code(self, data: dict[str, Any], key: str) -> str:
        code = data.get("intercept_code", "")
        if not isinstance(code, str) or (code and not re.fullmatch(r"[0-9*#]{1,10}", code)):
            self.problem(key, "must be 1-10 of 0-9 * #")
            return ""
        return code

    # -- small readers ----------------------------------------------------------------------------

    def _table(self, data: dict[str, Any], name: str, parent: str = "") -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.problem(f"{parent}.{name}" if parent else name, "must be a table")
            return {}
        return value

    def _tables(self, data: dict[str, Any], name: str, parent: str = "") -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        prefix = f"{parent}.{name}" if parent else name
        for ident, value in self._table(data, name, parent).items():
            if isinstance(value, dict):
                result[str(ident)] = value
            else:
                self.problem(f"{prefix}.{ident}", "must be a table")
        return result

    def _number(self, data: dict[str, Any], key: str, name: str, default: float) -> float:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            self.problem(f"{key}{name}", f"must be a finite number > 0, got {value!r}")
            return default
        return float(value)

    def _hours(self, key: str, value: Any) -> Hours:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.problem(key, 'must be a list like ["09:00-13:00", "14:00-18:00"]')
            return ()
        result: list[tuple[time, time]] = []
        for text in value:
            try:
                start, end = self.parse_hours(str(text))
            except ValueError:
                self.problem(key, f"bad interval {text!r} (HH:MM-HH:MM)")
                continue
            if end <= start and end != time(0, 0):
                self.problem(key, f"interval {text!r} ends before it starts")
                continue
            result.append((start, end))
        return tuple(result)

    def _date(self, key: str, value: Any) -> date | None:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.problem(key, f"bad date {value!r} (YYYY-MM-DD)")
            return None
