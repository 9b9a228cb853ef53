"""Fuzzing the AMI side: the byte stream decoder, panoramisk's dispatch behind our protocol, and the translator.

Recorded sessions of a real Asterisk split into arbitrary reads, with garbage, poisoned frames (headers that must
be single given twice) and megabyte-long frames between the good frames: no exception escapes, every bad frame
is reported once, and the good frames around them come through exactly as without the noise.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.pbx.ami_protocol import LinkManager, Utf8AmiProtocol
from bridge.pbx.ami_stream import EOL, MAX_BUFFER, AmiStreamDecoder, BadFrame
from bridge.pbx.events import BadInput, PbxEvent
from bridge.pbx.observe import AmiTranslator
from bridge.pbx.outcomes import EndpointTemplate
from tests.fuzz.capture import LogCapture
from tests.fuzz.strategies import ODD_NUMBERS, cuts, fuzz_settings, garbage_bytes, odd_text, split
from tests.protocol.recorded import SCENARIOS, TRANSCRIPTS

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
END = (EOL + EOL).encode()
SINGLE_HEADERS = ("Event", "Response", "ActionID", "CommandID", "Message", "SubEvent", "EventList")


def recorded(scenario: str) -> bytes:
    return (TRANSCRIPTS / f"{scenario}.ami.txt").read_bytes()


def recorded_frames(scenario: str) -> list[bytes]:
    """The messages of a recorded session as raw frames (without the banner and the blank line after each)."""
    raw = recorded(scenario)
    assert raw.startswith(BANNER)
    return [frame for frame in raw[len(BANNER) :].split(END) if frame.strip()]


FRAMES = {scenario: recorded_frames(scenario) for scenario in SCENARIOS}


def decode(reads: list[bytes]) -> list[Any]:
    decoder = AmiStreamDecoder()
    out: list[Any] = []
    for data in reads:
        out += decoder.feed(data)
    return out


def comparable(items: list[Any]) -> list[Any]:
    """Messages as (headers, body) and bad frames as they are: what two decodings must agree on."""
    return [item if isinstance(item, BadFrame) else (dict(item.items()), item.content) for item in items]


def translator() -> AmiTranslator:
    return AmiTranslator(EndpointTemplate("Local/{ext}@phones"), ("from-agents",), ("74951112233",))


def non_blank_parts(garbage: bytes) -> int:
    """How many frames the decoder sees in a piece of garbage (each must come out as one BadFrame)."""
    text = garbage.decode("utf-8", "replace")
    return sum(1 for part in text.split(EOL + EOL) if part.strip())


@st.composite
def poisoned_frames(draw: st.DrawFn) -> bytes:
    """A frame that looks like a message but repeats a header that must be single (panoramisk chokes on it)."""
    base = draw(st.sampled_from(["Event: Hangup", "Response: Success", "Event: FullyBooted"]))
    repeated = draw(st.sampled_from(SINGLE_HEADERS))
    values = draw(st.lists(st.text("abcXYZ019./-", min_size=1, max_size=12), min_size=2, max_size=3))
    lines = [base, *[f"{repeated}: {value}" for value in values], "Uniqueid: 1.2", "Linkedid: 1.2"]
    return EOL.join(draw(st.permutations(lines))).encode()


@st.composite
def noisy_sessions(draw: st.DrawFn) -> tuple[bytes, list[bytes], int]:
    """(stream, the good frames in it, how many bad frames it holds)."""
    frames = FRAMES[draw(st.sampled_from(SCENARIOS[:3]))]
    start = draw(st.integers(0, len(frames) - 1))
    good = frames[start : start + draw(st.integers(1, 25))]
    pieces: list[bytes] = []
    bad = 0
    for frame in good:
        for noise in draw(st.lists(st.one_of(garbage_bytes(), poisoned_frames()), max_size=2)):
            pieces.append(noise)
            bad += non_blank_parts(noise)
        pieces.append(frame)
    return BANNER + b"".join(piece + END for piece in pieces), good, bad


# --- the decoder ---------------------------------------------------------------------------------------


@fuzz_settings(60)
@given(scenario=st.sampled_from(SCENARIOS), data=st.data())
def test_a_recorded_session_split_anywhere_gives_the_same_messages(scenario: str, data: st.DataObject) -> None:
    raw = recorded(scenario)
    positions = data.draw(cuts(len(raw), max_cuts=80))
    whole = decode([raw])
    assert not any(isinstance(item, BadFrame) for item in whole)
    assert comparable(decode(split(raw, positions))) == comparable(whole)


@fuzz_settings(80)
@given(session=noisy_sessions(), data=st.data())
def test_garbage_between_frames_is_reported_and_the_good_frames_come_through(
    session: tuple[bytes, list[bytes], int], data: st.DataObject
) -> None:
    stream, good, bad = session
    out = decode(split(stream, data.draw(cuts(len(stream)))))
    expected = decode([BANNER + b"".join(frame + END for frame in good)])
    assert comparable([item for item in out if not isinstance(item, BadFrame)]) == comparable(expected)
    reasons = [item.reason for item in out if isinstance(item, BadFrame)]
    assert len(reasons) == bad
    assert all(isinstance(reason, str) and len(reason) < 200 for reason in reasons)
    assert comparable(out) == comparable(decode([stream])), "the reads do not change what is reported"


@st.composite
def huge_frames(draw: st.DrawFn) -> bytes:
    """A frame over the size limit: one endless header line, inside a real event or with no message at all."""
    size = MAX_BUFFER + draw(st.integers(1, 4096))
    line = b"X-Huge: " + draw(st.sampled_from([b"y", b"\x00", b"\xff", "Ж".encode(), b"\r"])) * size
    head = draw(st.sampled_from([b"Event: Newchannel\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\n", b""]))
    return head + line


@fuzz_settings(12)
@given(data=st.data())
def test_a_megabyte_header_line_is_one_bad_frame_and_the_stream_goes_on(data: st.DataObject) -> None:
    frames = FRAMES[data.draw(st.sampled_from(SCENARIOS))]
    at = data.draw(st.integers(1, len(frames) - 1))
    huge = data.draw(huge_frames())
    stream = BANNER + b"".join(frame + END for frame in [*frames[:at], huge, *frames[at:]])
    out = decode(split(stream, data.draw(cuts(len(stream), max_cuts=30))))
    bad = [item for item in out if isinstance(item, BadFrame)]
    assert len(bad) == 1, bad
    expected = decode([BANNER + b"".join(frame + END for frame in frames)])
    assert comparable([item for item in out if not isinstance(item, BadFrame)]) == comparable(expected)
    assert comparable(out) == comparable(decode([stream]))


def test_a_frame_that_never_ends_is_reported_once() -> None:
    decoder = AmiStreamDecoder()
    decoder.feed(BANNER)
    reported = []
    for _ in range(5):
        reported += decoder.feed(b"y" * (MAX_BUFFER // 2))
    assert [type(item) for item in reported] == [BadFrame]
    assert [item.event for item in decoder.feed(b"\r\n\r\nEvent: Ping\r\n\r\n")] == ["Ping"]


# --- the translator ------------------------------------------------------------------------------------


def header_values() -> st.SearchStrategy[str | list[str]]:
    single = st.one_of(odd_text(), st.sampled_from(ODD_NUMBERS), st.sampled_from(["", "<unknown>", "ANSWER"]))
    return st.one_of(single, st.lists(single, min_size=2, max_size=3))


AMI_EVENTS = ("Hangup", "Newchannel", "DialEnd", "DeviceStateChange", "BridgeEnter", "VarSet", "DialBegin")


@st.composite
def mutated_messages(draw: st.DrawFn, message: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for key, value in message.items():
        choice = draw(st.sampled_from(("keep", "keep", "drop", "garble")))
        if choice == "keep":
            out[key] = value
        elif choice == "garble":
            out[key] = draw(header_values())
    if draw(st.booleans()):
        out["Event"] = draw(st.one_of(st.sampled_from(AMI_EVENTS), odd_text(12)))
    return out


def messages_of(scenario: str) -> list[dict[str, str | list[str]]]:
    return [dict(item.items()) for item in decode([recorded(scenario)])]


MESSAGES = {scenario: messages_of(scenario) for scenario in SCENARIOS}


NUMERIC_HEADERS = ("Cause", "BridgeNumChannels", "ChannelState", "Priority")


@fuzz_settings(80)
@given(scenario=st.sampled_from(SCENARIOS), data=st.data())
def test_the_translator_never_raises_on_mutated_recorded_messages(scenario: str, data: st.DataObject) -> None:
    messages = list(MESSAGES[scenario])
    for at in data.draw(st.sets(st.integers(0, len(messages) - 1), max_size=12)):
        messages[at] = data.draw(mutated_messages(messages[at]))
    for at in data.draw(st.sets(st.integers(0, len(messages) - 1), max_size=6)):
        numeric = {name: data.draw(header_values()) for name in NUMERIC_HEADERS if name in messages[at]}
        messages[at] = {**messages[at], **numeric}
    ami = translator()
    for message in messages:
        events = ami.feed(message)
        assert all(isinstance(event, PbxEvent) for event in events)
        for event in events:
            if isinstance(event.event, BadInput):
                assert event.call is None and len(event.event.reason) < 200


@fuzz_settings(40)
@given(scenario=st.sampled_from(SCENARIOS), data=st.data())
def test_unknown_headers_change_no_event(scenario: str, data: st.DataObject) -> None:
    names = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabc", min_size=1, max_size=10).map(lambda name: f"XFuzz{name}")
    extra = data.draw(st.dictionaries(names, header_values(), min_size=1, max_size=3))
    messages = MESSAGES[scenario]
    chosen = data.draw(st.sets(st.integers(0, len(messages) - 1), min_size=1, max_size=40))
    plain, extended = translator(), translator()
    for at, message in enumerate(messages):
        assert plain.feed(message) == extended.feed({**message, **extra} if at in chosen else message)


# --- our protocol behind panoramisk, as the link runs it ---------------------------------------------------


class DiscardingTransport(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize("straight", [True, False], ids=["straight to the translator", "through panoramisk"])
@fuzz_settings(60)
@given(session=noisy_sessions(), data=st.data())
async def test_the_link_logs_each_bad_frame_and_translates_the_good_ones(
    capture: LogCapture, straight: bool, session: tuple[bytes, list[bytes], int], data: st.DataObject
) -> None:
    capture.clear()
    stream, good, bad = session
    loop = asyncio.get_running_loop()
    events: list[PbxEvent] = []
    ami = translator()
    manager = LinkManager(asyncio.Event(), loop=loop, ping_delay=3600)
    manager.register_event("*", lambda _manager, message: events.extend(ami.feed(message)))
    protocol = Utf8AmiProtocol()
    if straight:
        protocol.on_event = lambda message: events.extend(ami.feed(message))
    made: asyncio.Future[tuple[asyncio.Transport, Utf8AmiProtocol]] = loop.create_future()
    protocol.connection_made(DiscardingTransport())
    made.set_result((protocol.transport, protocol))
    manager.connection_made(made)
    try:
        for read in split(stream, data.draw(cuts(len(stream)))):
            protocol.data_received(read)
    finally:
        manager.close()
    assert len(capture.events("pbx.bad_input")) == bad
    reference = translator()
    expected = [
        event for frame in decode([BANNER + b"".join(f + END for f in good)]) for event in reference.feed(frame)
    ]
    assert [e for e in events if not isinstance(e.event, BadInput)] == [
        e for e in expected if not isinstance(e.event, BadInput)
    ]
    assert protocol.version == "9.0.0"
    await asyncio.sleep(0)  # let panoramisk's FullyBooted callback task finish


@pytest.mark.parametrize("cause", ["²", "٣", "--1", "9" * 5000, "1_6", "16.0"])
def test_a_cause_that_only_looks_like_a_number_is_bad_input(cause: str) -> None:
    ami = translator()
    ami.feed({"Event": "Newchannel", "Uniqueid": "1.1", "Linkedid": "1.1", "Channel": "PJSIP/1001-00000001",
              "Context": "from-agents", "Exten": "84951234567"})  # fmt: skip
    [event] = ami.feed({"Event": "Hangup", "Uniqueid": "1.1", "Linkedid": "1.1", "Cause": cause})
    assert isinstance(event.event, BadInput) and "Cause" in event.event.reason
