"""Fuzzing the ARI side: WebSocket text frames and decoded messages into :class:`AriTranslator`.

Recorded frames of a real Asterisk with fields removed, retyped and garbled, unknown event types, text that is not
JSON and JSON nested deeper than the parser's stack: no exception escapes, malformed input is one ``BadInput``, and
fields nobody reads change nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config import load_config
from bridge.domain.commands import RingAgent
from bridge.domain.events import CallStarted
from bridge.pbx.ari_commands import CallCommands
from bridge.pbx.events import BadInput, PbxEvent, Resynced
from bridge.pbx.outcomes import EndpointTemplate
from bridge.pbx.translate import AriTranslator
from tests.fuzz.strategies import (
    EXAMPLE_CONFIG,
    fuzz_settings,
    json_values,
    mutated_mapping,
    nested,
    odd_text,
    with_unrelated_fields,
)
from tests.protocol.recorded import SCENARIOS, ari_frames, originated_channels, playback_ids

ARI_SCENARIOS = tuple(scenario for scenario in SCENARIOS if ari_frames(scenario))
FRAMES = {scenario: [json.loads(frame) for frame in ari_frames(scenario)] for scenario in ARI_SCENARIOS}
KNOWN_TYPES = frozenset(AriTranslator(EndpointTemplate("PJSIP/{ext}"))._handlers)


def prepared(scenario: str) -> AriTranslator:
    """A translator that knows the legs and playbacks the recorded application started, as the link would."""
    translator = AriTranslator(EndpointTemplate("Local/{ext}@agents"))
    call = str(FRAMES[scenario][0]["channel"]["id"])
    for leg in originated_channels(scenario):
        translator.expect_leg(leg, call, local=True)
    for n, playback in enumerate(playback_ids(scenario)):
        translator.expect_playback(playback, call, f"prompt-{n}")
    return translator


def feed_all(translator: AriTranslator, messages: list[Any]) -> list[PbxEvent]:
    events: list[PbxEvent] = []
    for message in messages:
        out = translator.feed(message)
        assert isinstance(out, list) and all(isinstance(event, PbxEvent) for event in out)
        events += out
    return events


BASELINE = {scenario: feed_all(prepared(scenario), FRAMES[scenario]) for scenario in ARI_SCENARIOS}


def assert_sane(events: list[PbxEvent]) -> None:
    for event in events:
        if isinstance(event.event, BadInput):
            assert event.call is None
            assert isinstance(event.event.reason, str) and 0 < len(event.event.reason) < 200


@fuzz_settings(60)
@given(scenario=st.sampled_from(ARI_SCENARIOS), data=st.data())
def test_recorded_frames_with_fields_removed_retyped_or_garbled_never_raise(scenario: str, data: st.DataObject) -> None:
    messages: list[Any] = list(FRAMES[scenario])
    for at in data.draw(st.sets(st.integers(0, len(messages) - 1), min_size=1, max_size=10)):
        messages[at] = data.draw(mutated_mapping(messages[at]))
    assert_sane(feed_all(prepared(scenario), messages))


@fuzz_settings(60)
@given(scenario=st.sampled_from(ARI_SCENARIOS), data=st.data())
def test_fields_nobody_reads_change_no_event(scenario: str, data: st.DataObject) -> None:
    rnd = data.draw(st.randoms(use_true_random=False))
    extras = data.draw(st.dictionaries(st.text("abcdefgh_", max_size=8), json_values(6), min_size=1, max_size=4))
    messages = [with_unrelated_fields(message, rnd, extras) for message in FRAMES[scenario]]
    assert feed_all(prepared(scenario), messages) == BASELINE[scenario]


unknown_types = odd_text(20).filter(lambda kind: bool(kind) and kind not in KNOWN_TYPES)


@fuzz_settings(60)
@given(scenario=st.sampled_from(ARI_SCENARIOS), data=st.data())
def test_unknown_event_types_anywhere_give_no_event(scenario: str, data: st.DataObject) -> None:
    messages: list[Any] = list(FRAMES[scenario])
    for at in sorted(data.draw(st.lists(st.integers(0, len(messages)), max_size=8)), reverse=True):
        base = data.draw(st.one_of(st.sampled_from(FRAMES[scenario]), st.dictionaries(odd_text(8), json_values(6))))
        messages.insert(at, {**base, "type": data.draw(unknown_types)})
    assert feed_all(prepared(scenario), messages) == BASELINE[scenario]


@fuzz_settings(200)
@given(frame=st.one_of(odd_text(200), st.binary(max_size=200), json_values().map(json.dumps)))
def test_any_text_frame_gives_a_list_of_events_or_one_bad_input(frame: str | bytes) -> None:
    translator = prepared(ARI_SCENARIOS[0])
    events = translator.feed_text(frame)
    assert all(isinstance(event, PbxEvent) for event in events)
    assert_sane(events)
    try:
        json.loads(frame)
    except (ValueError, RecursionError):
        assert [type(event.event) for event in events] == [BadInput]


@fuzz_settings(100)
@given(message=json_values(20))
def test_any_decoded_message_gives_a_list_of_events(message: Any) -> None:
    events = prepared(ARI_SCENARIOS[0]).feed(message)
    assert_sane(events)
    if not isinstance(message, dict) or not isinstance(message.get("type"), str) or not message["type"]:
        assert [type(event.event) for event in events] == [BadInput]


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_nested_deeper_than_the_stack_is_one_bad_input(depth: int) -> None:
    events = prepared(ARI_SCENARIOS[0]).feed_text(nested(depth))
    assert [type(event.event) for event in events] == [BadInput]


def test_the_frames_after_a_bad_one_still_translate() -> None:
    scenario = ARI_SCENARIOS[0]
    translator = prepared(scenario)
    events: list[PbxEvent] = []
    for frame in ari_frames(scenario):
        events += translator.feed_text(nested(50_000))
        events += translator.feed_text(frame)
    assert [event for event in events if not isinstance(event.event, BadInput)] == BASELINE[scenario]


@fuzz_settings(100)
@given(scenario=st.sampled_from(ARI_SCENARIOS), listing=st.one_of(json_values(), st.lists(json_values(8))))
def test_a_resync_with_any_channel_list_ends_with_resynced(scenario: str, listing: Any) -> None:
    translator = prepared(scenario)
    feed_all(translator, FRAMES[scenario][: len(FRAMES[scenario]) // 2])
    events = translator.resync(listing)
    assert_sane(events)
    if isinstance(listing, list):
        assert isinstance(events[-1].event, Resynced)
    else:
        assert [type(event.event) for event in events] == [BadInput]


# --- what a caller's forged caller ID can reach ------------------------------------------------------------------

CALLER_ID = re.compile(r'(?:"[^"<>\x00-\x1f\x7f]*" )?<\+?[0-9*#]{1,32}>')


@fuzz_settings(100)
@given(
    name=st.one_of(odd_text(40), st.just('Иван "the boss" <7916>')),
    number=st.one_of(odd_text(24), st.from_regex(r"\+?[0-9]{1,20}", fullmatch=True), st.just("7916\r\n;1")),
)
async def test_a_forged_caller_id_reaches_an_agent_originate_only_as_a_clean_caller_id(name: str, number: str) -> None:
    settings = load_config(EXAMPLE_CONFIG).asterisk
    translator = AriTranslator(EndpointTemplate(settings.device))
    channel = {"id": "caller-1", "name": "PJSIP/trunk-00000001", "caller": {"name": name, "number": number}}
    start = {"type": "StasisStart", "args": ["inbound", "74951112233"], "channel": channel}
    [started] = translator.feed(start)
    assert isinstance(started.event, CallStarted) and started.event.caller == number
    requests: list[dict[str, Any]] = []

    async def request(resource: str, operation: str, **params: Any) -> Any:
        requests.append(params)

    commands = CallCommands(settings, translator, request, lambda _event: None)
    await commands.execute("caller-1", RingAgent(leg="leg-1", ext="1001", timeout=10))
    [originate] = requests
    caller_id = originate["callerId"]
    assert caller_id is None or CALLER_ID.fullmatch(caller_id), caller_id
