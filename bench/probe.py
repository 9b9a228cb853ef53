"""From a PBX event to the matching request on the wire, timed at the two simulators (one process, one clock).

Pairs: a caller's channel entering Stasis -> the ``register`` of that call; the first hangup event of that channel
-> the ``finish`` of that call. The PBX side is stamped when the simulator hands the event to the ARI socket, the
portal side when the simulator starts carrying out the command, so the simulators' own delays count against us.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.sim.asterisk import AsteriskSimulator
from bridge.sim.bitrix24 import Bitrix24Simulator
from bridge.sim.bitrix24.context import Caller, Reply

REGISTER = "telephony.externalcall.register"
FINISH = "telephony.externalcall.finish"
HANGUP_EVENTS = frozenset({"ChannelHangupRequest", "StasisEnd", "ChannelDestroyed"})


def phone_key(number: Any) -> str:
    """The last ten digits: the same subscriber however the number is written (+7..., 8..., 7...)."""
    return "".join(ch for ch in str(number) if ch.isdigit())[-10:]


@dataclass
class Sample:
    event_at: float
    request_at: float

    @property
    def ms(self) -> float:
        return (self.request_at - self.event_at) * 1000


@dataclass
class LatencyProbe:
    """Install with :meth:`attach`; read with :meth:`samples`."""

    clock: Callable[[], float] = time.monotonic
    events: dict[tuple[str, str], float] = field(default_factory=dict)
    """(``start``/``end``, phone key) -> when the PBX event left."""
    requests: dict[tuple[str, str], float] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    """Stasis channel id -> phone key."""
    call_ids: dict[str, str] = field(default_factory=dict)
    """Bitrix24 CALL_ID -> phone key."""

    def attach(self, pbx: AsteriskSimulator, crm: Bitrix24Simulator) -> None:
        bus = pbx.bus
        emit = bus.emit_ari

        def stamped(event: dict[str, Any], **about: Any) -> None:
            self.on_pbx_event(event)
            emit(event, **about)

        bus.emit_ari = stamped  # type: ignore[method-assign]
        methods = crm.core.methods
        for name in (REGISTER, FINISH):
            methods[name] = dataclasses.replace(methods[name], handler=self._timed(name, methods[name].handler))

    def on_pbx_event(self, event: dict[str, Any]) -> None:
        channel = event.get("channel")
        if not isinstance(channel, dict):
            return
        channel_id = str(channel.get("id", ""))
        kind = event.get("type")
        if kind == "StasisStart" and list(event.get("args") or [])[:1] == ["inbound"]:
            key = phone_key((channel.get("caller") or {}).get("number", ""))
            self.channels[channel_id] = key
            self.events.setdefault(("start", key), self.clock())
        elif kind in HANGUP_EVENTS and channel_id in self.channels:
            self.events.setdefault(("end", self.channels[channel_id]), self.clock())

    def _timed(self, name: str, handler: Callable[[Caller, Any], Any]) -> Callable[[Caller, Any], Any]:
        async def timed(caller: Caller, params: Any) -> Reply:
            at = self.clock()
            if name == FINISH:
                key = self.call_ids.get(str(params.get("CALL_ID", "")))
                if key is not None:
                    self.requests.setdefault(("end", key), at)
            reply: Reply = await handler(caller, params)
            if name == REGISTER and isinstance(reply.result, dict):
                key = phone_key(params.get("PHONE_NUMBER", ""))
                self.call_ids[str(reply.result.get("CALL_ID", ""))] = key
                self.requests.setdefault(("start", key), at)
            return reply

        return timed

    def samples(self, since: float = float("-inf"), until: float = float("inf")) -> list[Sample]:
        """Matched pairs whose PBX event happened in [since, until)."""
        found = []
        for pair, event_at in self.events.items():
            request_at = self.requests.get(pair)
            if request_at is not None and since <= event_at < until:
                found.append(Sample(event_at, request_at))
        return found

    def unmatched(self, since: float = float("-inf"), until: float = float("inf")) -> int:
        return sum(1 for pair, at in self.events.items() if since <= at < until and pair not in self.requests)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
