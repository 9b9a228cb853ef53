"""What a well-formed configuration would still get wrong at run time, each named by its key with what to do.

* Problems (the daemon refuses them, ``check-config`` exits 78): routing loops (a queue's final action or a menu's
  ``on_fail`` that leads back to itself with no caller's choice on the way), a journal or token file whose
  directory is missing or not writable.
* Warnings (valid, but not what the author expects): an ``everybody`` group with more members than ring at once,
  a rule that can never match, a journal under a directory the systemd unit cannot write, an extension the plan
  names that only Bitrix24 can resolve (``auto_map``; the daemon logs ``directory.unresolved`` for those it
  cannot).
"""

from __future__ import annotations

import os
from pathlib import Path

from bridge.domain.scheme import (
    MAX_EVERYBODY_DEVICES,
    Action,
    Always,
    CallerPrefix,
    Condition,
    Distribution,
    Hangup,
    HoldUntilFree,
    InHours,
    KnownClient,
    Plan,
    Rule,
    ToEmployee,
    ToIvr,
    ToQueue,
    ToVoicemail,
)

READ_ONLY_UNDER_UNIT = ("/etc", "/usr", "/boot", "/opt")
"""Trees that ``ProtectSystem=strict`` in systemd/b24-bridge.service mounts read-only for the daemon."""


# --- routing loops ---------------------------------------------------------------------------------


def _node(action: Action) -> str | None:
    """Where an action sends the call without asking the caller: ``queue:ID`` / ``ivr:ID``, else None."""
    if isinstance(action, ToQueue):
        return f"queue:{action.queue}"
    if isinstance(action, ToIvr):
        return f"ivr:{action.menu}"
    return None


def _key_of(node: str) -> str:
    kind, _, ident = node.partition(":")
    return f"queues.{ident}.final" if kind == "queue" else f"ivr.{ident}.on_fail"


def routing_loops(plan: Plan) -> list[tuple[str, str]]:
    """(key, message) for every cycle of queue finals and menu ``on_fail`` actions, once per cycle."""
    follows: dict[str, str | None] = {f"queue:{q.id}": _node(q.final) for q in plan.queues.values()}
    follows.update({f"ivr:{m.id}": _node(m.on_fail) for m in plan.menus.values()})
    found: list[tuple[str, str]] = []
    reported: set[frozenset[str]] = set()
    for start in sorted(follows):
        path = [start]
        node = follows[start]
        while node is not None and node in follows and node not in path:
            path.append(node)
            node = follows[node]
        if node != start or frozenset(path) in reported:
            continue
        reported.add(frozenset(path))
        trail = " -> ".join([*path, start])
        found.append(
            (
                _key_of(start),
                f"routing loop {trail}: a call goes round with no caller's choice until the bridge hangs it up as "
                "missed; end the chain with voicemail, an employee, a number or hangup",
            )
        )
    return found


# --- rules that can never match --------------------------------------------------------------------


def _terminal(action: Action, plan: Plan) -> bool:
    """The action never passes the call on to the line's next rule."""
    if isinstance(action, ToVoicemail):
        return action.ext in plan.employees
    return isinstance(action, ToQueue | ToIvr | HoldUntilFree | Hangup)


def _covers(earlier: Condition, later: Condition) -> bool:
    if isinstance(earlier, Always) or earlier == later:
        return True
    if isinstance(earlier, CallerPrefix) and isinstance(later, CallerPrefix):
        return bool(later.prefixes) and all(any(q.startswith(p) for p in earlier.prefixes) for q in later.prefixes)
    return False


def _halves(condition: Condition) -> tuple[str, bool] | None:
    """A condition that, with its opposite, is always true: (what, which half)."""
    if isinstance(condition, InHours):
        return f"schedule {condition.schedule}", condition.inside
    if isinstance(condition, KnownClient):
        return "the CRM lookup", condition.known
    return None


def _describe(index: int, rule: Rule) -> str:
    return f"rules[{index}]" + (f" ({rule.name})" if rule.name else "")


def unreachable_rules(plan: Plan) -> list[str]:
    """A rule after one that takes all its calls and never passes them on, or whose schedule is never open."""
    warnings: list[str] = []
    for number, line in plan.lines.items():
        takers: list[tuple[int, Rule]] = []
        for index, rule in enumerate(line.rules):
            key = f"lines.{number}.rules[{index}]"
            shadow = next((f"{_describe(i, r)} takes its calls first" for i, r in takers if _covers(r.when, rule.when)),
                          None)  # fmt: skip
            halves = {h for h in (_halves(r.when) for _, r in takers) if h is not None}
            both = next((what for what, half in halves if (what, not half) in halves), None)
            if shadow is None and both is not None:
                shadow = f"the rules above take every call whichever way {both} goes"
            schedule = plan.schedules.get(rule.when.schedule) if isinstance(rule.when, InHours) else None
            never_open = schedule is not None and not any((*schedule.weekly.values(), *schedule.overrides.values()))
            if shadow is None and never_open and isinstance(rule.when, InHours) and rule.when.inside:
                shadow = f"schedule {rule.when.schedule} has no open hours"
            if shadow is not None:
                warnings.append(f"{key}: can never match: {shadow}; move it up or remove it")
            if _terminal(rule.then, plan):
                takers.append((index, rule))
    return warnings


# --- groups larger than what rings at once ---------------------------------------------------------


def crowded_groups(plan: Plan) -> list[str]:
    warnings = []
    for queue in plan.queues.values():
        if queue.distribution is Distribution.EVERYBODY and len(queue.members) > MAX_EVERYBODY_DEVICES:
            dropped = ", ".join(queue.members[MAX_EVERYBODY_DEVICES:])
            warnings.append(
                f"queues.{queue.id}.members: everybody rings at most {MAX_EVERYBODY_DEVICES} phones at once, the "
                f"first available in list order: {dropped} ring only while one of the first "
                f"{MAX_EVERYBODY_DEVICES} cannot; split the group or use in_order"
            )
    return warnings


# --- extensions only Bitrix24 knows ----------------------------------------------------------------


def _action_ext(action: Action | None) -> str:
    return action.ext if isinstance(action, ToEmployee | ToVoicemail) else ""


def named_extensions(plan: Plan) -> list[tuple[str, str]]:
    """(key, extension) for every extension the plan names: members, rules' and finals' employees, voicemail
    boxes, supervisors, lines' defaults and missed-call owners."""
    found: list[tuple[str, str]] = []
    for ext, emp in plan.employees.items():
        found += [(f"employees.map.{ext}.supervisor", emp.supervisor_ext), (f"employees.map.{ext}.on_busy",
                  _action_ext(emp.on_busy))]  # fmt: skip
    for queue in plan.queues.values():
        key = f"queues.{queue.id}"
        found += [(f"{key}.members", m) for m in queue.members]
        found += [(f"{key}.final", _action_ext(queue.final)), (f"{key}.missed_owner", queue.missed_owner)]
    for menu in plan.menus.values():
        found += [(f"ivr.{menu.id}.options.{key}", _action_ext(a)) for key, a in menu.options]
        found.append((f"ivr.{menu.id}.on_fail", _action_ext(menu.on_fail)))
    for number, line in plan.lines.items():
        key = f"lines.{number}"
        found += [(f"{key}.rules[{i}].then", _action_ext(rule.then)) for i, rule in enumerate(line.rules)]
        found += [(f"{key}.fallback", _action_ext(line.fallback)), (f"{key}.pbx_fallback",
                  _action_ext(line.pbx_fallback)), (f"{key}.default_ext", line.default_ext)]  # fmt: skip
    return [(key, ext) for key, ext in found if ext]


def unmapped(plan: Plan, known: set[str] | None = None) -> dict[str, list[str]]:
    """Extension -> the keys that name it, for those not in ``known`` (default: the plan's own employees)."""
    have = set(plan.employees) if known is None else known
    result: dict[str, list[str]] = {}
    for key, ext in named_extensions(plan):
        if ext not in have:
            result.setdefault(ext, []).append(key)
    return result


def auto_mapped(plan: Plan) -> list[str]:
    """One warning per extension the plan names that is not in ``[employees.map]`` (``auto_map`` is on)."""
    return [f"{', '.join(keys)}: extension {ext} is not in [employees.map]: it is looked up in Bitrix24 "
            "(UF_PHONE_INNER of an active user) at start; until then, or if no user has it, calls skip it as "
            "unavailable" for ext, keys in sorted(unmapped(plan).items())]  # fmt: skip


# --- files the daemon writes -----------------------------------------------------------------------


def writable_file_problems(key: str, path: Path) -> list[str]:
    """The daemon must create and rewrite ``path``: its directory must exist and be writable."""
    directory = path.parent
    if directory.exists() and not directory.is_dir():
        return [f"{key}: {directory} is not a directory; point {key} into a directory"]
    if not directory.is_dir():
        return [f"{key}: directory {directory} does not exist; create it (writable by the daemon's user) or point "
                f"{key} at one that does"]  # fmt: skip
    if not os.access(directory, os.W_OK | os.X_OK):
        return [f"{key}: directory {directory} is not writable by this user (uid {os.getuid()}); the journal needs "
                f"to create files beside {path.name}: fix its owner or mode, or use another directory"]  # fmt: skip
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return [f"{key}: {path} is not readable and writable by this user (uid {os.getuid()}); fix its owner or mode"]
    return []


def under_read_only_tree(key: str, path: Path) -> list[str]:
    if any(path.is_relative_to(tree) for tree in READ_ONLY_UNDER_UNIT):
        return [f"{key}: {path} is read-only for the daemon under systemd/b24-bridge.service (ProtectSystem=strict); "
                "use a relative path (it then goes into the unit's StateDirectory, /var/lib/b24-bridge) or put it "
                "under /var/lib/b24-bridge"]  # fmt: skip
    return []
