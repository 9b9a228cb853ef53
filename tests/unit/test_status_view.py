"""The status page's data and HTML from the daemon's state: a pure function, tested on the core's own calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

from bridge.config import load_config
from bridge.domain import call as core
from bridge.domain import observed as watch
from bridge.domain.events import CallStarted, CrmLookedUp, Direction, LegAnswered, ObservedAnswered, ObservedStarted
from bridge.domain.scheme import Availability
from bridge.domain.state import Call
from bridge.ops.status import render
from bridge.ops.status.model import (
    DeliveryFigures,
    Finished,
    HeldLeg,
    LinkState,
    ParkedOp,
    Sources,
    action_text,
    status_data,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "bridge.example.toml"
PLAN = load_config(EXAMPLE).plan
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # Monday, office hours: the sales queue rings 1001 first
EVIL = '<script>alert("x")</script> & <b>Bob</b>'


def ringing_call() -> Call:
    call = core.start_call(PLAN, "1795306061.1", T0)
    call, _ = core.step(call, CallStarted(line="74951112233", caller="79991234567"), T0)
    call, _ = core.step(call, CrmLookedUp(None), T0)
    return call


def sources(calls: list[Call], now: datetime, **changes: object) -> Sources:
    base = {
        "now": now,
        "plan": PLAN,
        "links": {
            "ari": LinkState(True, T0 - timedelta(hours=1)),
            "ami": LinkState(False, T0 - timedelta(seconds=30), "ConnectionRefusedError: [Errno 111]", T0),
        },
        "calls": calls,
        "observed": [],
        "caller_names": {"1795306061.1": EVIL},
        "devices": {"1002": "INUSE", "1003": "UNAVAILABLE", "1005": "NOT_INUSE"},
        "crm_day": {"1004": Availability.ABSENT, "1006": Availability.NOT_CLOCKED_IN},
        "answered_today": {"1005": 3},
        "delivery": DeliveryFigures(4, 12.4, 7.0, 50.0, 30.0, 42.0, (ParkedOp("x.1", "finish", "ACCESS_DENIED", T0),)),
    }
    base.update(changes)
    return Sources(**base)  # type: ignore[arg-type]


def test_a_ringing_call_shows_who_rings_for_how_long_the_next_step_and_the_card() -> None:
    call = ringing_call()
    data = status_data(sources([call], T0 + timedelta(seconds=7)))
    (shown,) = data["calls"]
    assert shown["state"] == "ringing" and shown["line"] == "74951112233" and shown["caller"] == "79991234567"
    assert shown["caller_name"] == EVIL
    assert shown["ringing"] == [{"ext": "1001", "number": "", "name": PLAN.employees["1001"].name, "seconds": 7}]
    assert shown["next"] == "ring 1002"
    assert shown["card_shown_to"] == [f"{PLAN.employees['1001'].name} (1001)"]
    assert shown["talking"] is None and shown["age_seconds"] == 7


def test_a_talking_call_shows_the_talker_and_talk_time() -> None:
    call = ringing_call()
    call, _ = core.step(call, LegAnswered(call.ringing[0].id), T0 + timedelta(seconds=5))
    data = status_data(sources([call], T0 + timedelta(seconds=65)))
    (shown,) = data["calls"]
    assert shown["state"] == "talking" and shown["ringing"] == []
    assert shown["talking"] == {"ext": "1001", "name": PLAN.employees["1001"].name, "seconds": 60}


def test_agents_say_why_they_are_or_are_not_available() -> None:
    call = ringing_call()
    agents = {a["ext"]: a for a in status_data(sources([call], T0))["agents"]}
    assert (agents["1001"]["availability"], agents["1001"]["reason"]) == ("on_call", "ringing for 79991234567")
    assert (agents["1002"]["availability"], agents["1002"]["reason"]) == ("busy", "busy (device INUSE)")
    assert agents["1003"]["availability"] == "unregistered" and "not registered" in agents["1003"]["reason"]
    assert agents["1004"]["availability"] == "absent" and "absence chart" in agents["1004"]["reason"]
    assert agents["1006"]["availability"] == "not_clocked_in"
    assert agents["1005"]["availability"] == "available" and agents["1005"]["answered_today"] == 3
    assert agents["1005"]["user_id"] == PLAN.employees["1005"].user_id


def test_links_delivery_and_finished_calls() -> None:
    held = HeldLeg("1795306061.1.1", "externalCall.abc", PLAN.employees["1001"].user_id, 42, "200", True, "done")
    done = Finished("1795306061.1", "inbound", "74951112233", "79991234567", EVIL, "1001", "200", 42, T0, (held,))
    data = status_data(sources([], T0 + timedelta(seconds=5), finished=[done]))
    ami = next(link for link in data["links"] if link["name"] == "ami")
    assert ami["up"] is False and ami["for_seconds"] == 35 and ami["last_error"].startswith("ConnectionRefused")
    assert data["delivery"]["journal_depth"] == 4 and data["delivery"]["oldest_pending_seconds"] == 12
    assert data["delivery"]["parked"] == [
        {"crm_leg": "x.1", "kind": "finish", "reason": "ACCESS_DENIED", "at": T0.isoformat()}
    ]
    (recent,) = data["recent"]
    assert recent["bitrix24"][0]["user"] == f"{PLAN.employees['1001'].name} (1001)"
    assert (recent["bitrix24"][0]["duration"], recent["bitrix24"][0]["status_code"]) == (42, "200")


def test_only_the_last_hundred_finished_calls_newest_first() -> None:
    many = [Finished(f"c{i}", "inbound", "1", "2", "", "", "304", 0, T0, ()) for i in range(130)]
    recent = status_data(sources([], T0, finished=many))["recent"]
    assert len(recent) == 100 and recent[0]["call_id"] == "c129" and recent[-1]["call_id"] == "c30"


class TextAndTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_a_caller_name_with_html_is_rendered_as_text() -> None:
    held = HeldLeg("l", "externalCall.abc", 0, 0, "304", False, "failed")
    done = Finished("c2", "inbound", "74951112233", "79990000000", EVIL, "", "304", 0, T0, (held,))
    html = render.page(status_data(sources([ringing_call()], T0, finished=[done])), token_query='?token="><x')
    parser = TextAndTags()
    parser.feed(html)
    assert "b" not in parser.tags and parser.tags.count("script") == 1, "only the page's own script tag"
    assert "".join(parser.text).count(EVIL) == 2, "the name shows as written, in the call and in the finished call"
    assert '"><x' not in html


def test_actions_read_as_the_config_writes_them() -> None:
    finals = {q.id: action_text(q.final) for q in PLAN.queues.values()}
    assert all(":" in text or text in ("hangup", "voicemail", "responsible") for text in finals.values())
    line = PLAN.lines["74951112233"]
    assert [action_text(rule.then) for rule in line.rules] == ["voicemail:1005", "employee:1005", "responsible",
                                                                 "queue:sales"]  # fmt: skip


def test_an_outbound_call_from_a_desk_phone_shows_who_talks_with_whom() -> None:
    obs = watch.start_observed(PLAN, "1795306099.7", T0)
    obs, _ = watch.step(obs, ObservedStarted(Direction.OUTBOUND, "79995550011", ext="1002"), T0)
    obs, _ = watch.step(obs, ObservedAnswered(), T0 + timedelta(seconds=4))
    data = status_data(sources([], T0 + timedelta(seconds=34), observed=[obs]))
    (shown,) = data["calls"]
    assert (shown["kind"], shown["caller"], shown["state"]) == ("outbound", "79995550011", "talking")
    assert shown["talking"] == {"ext": "1002", "name": PLAN.employees["1002"].name, "seconds": 30}
    agents = {a["ext"]: a for a in data["agents"]}
    assert agents["1002"]["availability"] == "on_call" and "79995550011" in agents["1002"]["reason"]
