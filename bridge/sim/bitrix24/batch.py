"""``batch``: up to 50 PHP-style query strings run in order, with ``$result[key][FIELD]`` references."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.sim.bitrix24 import errors
from bridge.sim.bitrix24.context import Caller, Reply
from bridge.sim.bitrix24.errors import RestError
from bridge.sim.bitrix24.params import Params, flag, parse_query, to_str, upper_keys

MAX_COMMANDS = 50
_REFERENCE = re.compile(r"\$(result_error|result_total|result_next|result_time|result)((?:\[[^\[\]]*\])+)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")

# (caller, method, params) -> (reply, time block of that command)
Invoke = Callable[[Caller, str, Params], Awaitable[tuple[Reply, dict[str, Any]]]]


def _pack(values: dict[str, Any]) -> Any:
    """PHP's view of an array: empty -> ``[]``, keys ``0..n-1`` -> a list, otherwise an object."""
    if values and list(values) == [str(index) for index in range(len(values))]:
        return list(values.values())
    return values if values else []


def _resolve(stores: dict[str, dict[str, Any]], store: str, path: list[str]) -> Any:
    node: Any = stores[store]
    for segment in path:
        if isinstance(node, dict) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            raise LookupError(segment)
    return node


def _substitute(value: Any, stores: dict[str, dict[str, Any]]) -> Any:
    """Replace references inside string values; an unresolvable reference stays as written."""
    if isinstance(value, dict):
        return {key: _substitute(item, stores) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, stores) for item in value]
    if not isinstance(value, str) or "$result" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        try:
            found = _resolve(stores, match.group(1), _SEGMENT.findall(match.group(2)))
        except LookupError:
            return match.group(0)
        return match.group(0) if isinstance(found, dict | list) else to_str(found)

    return _REFERENCE.sub(replace, value)


def command_count(params: Params) -> int:
    cmd = params.get("CMD")
    return len(cmd) if isinstance(cmd, dict | list) else 0


async def run_batch(invoke: Invoke, caller: Caller, params: Params) -> Reply:
    raw = params.get("CMD")
    if isinstance(raw, list):
        commands = [(str(index), command) for index, command in enumerate(raw)]
    elif isinstance(raw, dict):
        commands = [(str(key), command) for key, command in raw.items()]
    else:
        commands = []
    if len(commands) > MAX_COMMANDS:
        raise RestError("Max batch length exceeded", "ERROR_BATCH_LENGTH_EXCEEDED", 400)
    halt = flag(params, "HALT", False)
    stores: dict[str, dict[str, Any]] = {
        name: {} for name in ("result", "result_error", "result_total", "result_next", "result_time")
    }
    inner = caller.inside_batch()
    for key, command in commands:
        try:
            method, _, query = to_str(command).partition("?")
            method = method.strip().strip("/").removesuffix(".json")
            if not method:
                raise errors.method_not_found()
            if method.lower() == "batch":
                raise errors.batch_not_allowed()
            sub_params = upper_keys(parse_query(query))
            sub_params.pop("AUTH", None)
            reply, time_block = await invoke(inner, method, _substitute(sub_params, stores))
        except RestError as exc:
            stores["result_error"][key] = exc.body()
            if halt:
                break
            continue
        stores["result"][key] = reply.result
        if reply.total is not None:
            stores["result_total"][key] = reply.total
        if reply.next is not None:
            stores["result_next"][key] = reply.next
        stores["result_time"][key] = time_block
    return Reply({name: _pack(values) for name, values in stores.items()})
