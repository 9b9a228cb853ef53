"""Scripted parties: how a dialed agent, phone or external number behaves.

A party is bound to an extension or number; it applies to every endpoint whose resource part is
that extension: ``PJSIP/1001``, ``SIP/1001``, ``Local/1001@agents`` and ``PJSIP/1001@trunk`` all
use the party set for ``"1001"``. Times are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """Rings ``after`` seconds, answers, then hangs up after ``talk`` seconds (None: never)."""

    after: float = 1.0
    talk: float | None = None


@dataclass(frozen=True)
class NeverAnswer:
    """Rings until the caller's timeout: cause 19 "User alerting, no answer" on both halves."""


@dataclass(frozen=True)
class Busy:
    """Dial ``BUSY``; on Local channels the ``;1`` half ends with cause 0, the ``;2`` with 17."""

    after: float = 0.0


@dataclass(frozen=True)
class Unregistered:
    """Dial ``CHANUNAVAIL``, cause 20 "Subscriber absent"."""


@dataclass(frozen=True)
class Reject:
    """Rings ``after`` seconds, then rejects: cause 21 "Call Rejected", Dial ``NOANSWER``."""

    after: float = 2.0


@dataclass(frozen=True)
class Congestion:
    """Dial ``CONGESTION``; on Local channels ``;1`` cause 0, ``;2`` cause 34."""

    after: float = 0.0


Party = Answer | NeverAnswer | Busy | Unregistered | Reject | Congestion


def resource_of(endpoint: str) -> str:
    """The extension/number part of an endpoint: ``PJSIP/1001@trunk`` -> ``1001``."""
    resource = endpoint.split("/", 1)[1] if "/" in endpoint else endpoint
    return resource.split("@", 1)[0]


class PartyBook:
    """Which party answers which extension; unknown extensions get ``default``."""

    def __init__(self, default: Party) -> None:
        self.default = default
        self._parties: dict[str, Party] = {}

    def set(self, extension: str, party: Party) -> None:
        self._parties[resource_of(extension)] = party

    def get(self, extension: str) -> Party | None:
        return self._parties.get(resource_of(extension))

    def for_endpoint(self, endpoint: str, fallback: Party | None = None) -> Party:
        return self._parties.get(resource_of(endpoint)) or fallback or self.default


def _seconds(value: float) -> str:
    return f"{value:g}"


def opening_steps(party: Party, extension: str) -> list[tuple[str, str]]:
    """The dialplan applications a robot runs before its outcome (for ``ChannelDialplan``)."""
    robot = f"Robot {extension}"
    match party:
        case Answer(after=after) if after <= 0:
            return [("NoOp", f"{robot}: answers at once")]
        case Answer(after=after, talk=talk):
            talk_text = "until hung up" if talk is None else f"talks {_seconds(talk)}s"
            return [
                ("NoOp", f"{robot}: answers after {_seconds(after)}s, {talk_text}"),
                ("Ringing", ""),
                ("Wait", _seconds(after)),
            ]
        case NeverAnswer():
            return [("NoOp", f"{robot}: never answers"), ("Ringing", ""), ("Wait", "600")]
        case Busy():
            return [("NoOp", f"{robot}: busy")]
        case Unregistered():
            return [("NoOp", f"{robot}: unavailable")]
        case Reject(after=after):
            return [("NoOp", f"{robot}: rejects"), ("Ringing", ""), ("Wait", _seconds(after))]
        case Congestion():
            return [("NoOp", f"{robot}: congestion")]
    return []


def parse_party(spec: str) -> Party:
    """``answer:3:60``, ``answer``, ``never``, ``busy``, ``unregistered``, ``reject:2``, ``congestion``."""
    name, *numbers = spec.strip().lower().split(":")
    try:
        values = [float(n) for n in numbers if n != ""]
    except ValueError as exc:
        raise ValueError(f"bad party {spec!r}: times must be numbers of seconds") from exc
    if name == "answer" and len(values) <= 2:
        after = values[0] if values else 1.0
        return Answer(after=after, talk=values[1] if len(values) > 1 else None)
    if name in ("never", "noanswer") and not values:
        return NeverAnswer()
    if name == "busy" and len(values) <= 1:
        return Busy(after=values[0] if values else 0.0)
    if name in ("unregistered", "unavailable") and not values:
        return Unregistered()
    if name == "reject" and len(values) <= 1:
        return Reject(after=values[0] if values else 2.0)
    if name == "congestion" and len(values) <= 1:
        return Congestion(after=values[0] if values else 0.0)
    raise ValueError(
        f"bad party {spec!r}: use answer[:after[:talk]], never, busy, unregistered, reject[:after] or congestion"
    )
