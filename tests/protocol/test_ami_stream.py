"""The AMI byte stream: incremental UTF-8, message framing, Command output."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from panoramisk.message import Message

from bridge.pbx.ami_protocol import _unsolicited
from bridge.pbx.ami_stream import AmiStreamDecoder, BadFrame, command_output, event_headers, parse_frame
from tests.protocol.recorded import SCENARIOS, TRANSCRIPTS, ami_messages


def decode_in_reads(raw: bytes, cuts: list[int]) -> list[object]:
    decoder = AmiStreamDecoder()
    out: list[object] = []
    for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        out += decoder.feed(raw[start:end])
    return out


def test_a_caller_name_split_inside_a_character_stays_whole() -> None:
    raw = (TRANSCRIPTS / "a_inbound_noanswer_then_answer.ami.txt").read_bytes()
    name = "Иван Петров".encode()
    at = raw.index(name)
    whole = decode_in_reads(raw, [])
    for inside in range(1, len(name)):
        split = decode_in_reads(raw, [at + inside])
        assert [dict(m.items()) for m in split] == [dict(m.items()) for m in whole]  # type: ignore[attr-defined]
    names = {m.get("CallerIDName") for m in whole}  # type: ignore[attr-defined]
    assert "Иван Петров" in names and "ван Петров" not in names


def test_panoramisk_alone_would_lose_the_split_character() -> None:
    """The gap we wrap: decoding each read on its own drops the broken bytes."""
    name = "Иван".encode()
    first, second = name[:1], name[1:]
    assert (first.decode("utf8", "ignore") + second.decode("utf8", "ignore")) == "ван"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_byte_by_itself_gives_the_same_messages(scenario: str) -> None:
    raw = (TRANSCRIPTS / f"{scenario}.ami.txt").read_bytes()
    bytewise = decode_in_reads(raw, list(range(1, len(raw))))
    recorded = [m for _, m in ami_messages(scenario)]
    assert [dict(m.items()) for m in bytewise] == [dict(m.items()) for m in recorded]  # type: ignore[attr-defined]
    assert len(recorded) > 50


def test_the_banner_gives_the_version_and_is_not_a_message() -> None:
    decoder = AmiStreamDecoder()
    assert decoder.feed(b"Asterisk Call") == []
    out = decoder.feed(b" Manager/9.0.0\r\nResponse: Success\r\nMessage: Authentication accepted\r\n\r\n")
    assert decoder.version == "9.0.0"
    assert len(out) == 1 and out[0].response == "Success"


def test_garbage_between_messages_is_reported_and_the_stream_goes_on() -> None:
    decoder = AmiStreamDecoder()
    out = decoder.feed(
        b"Asterisk Call Manager/9.0.0\r\n\r\nthis is not AMI\r\n\r\nEvent: Hangup\r\nUniqueid: 1.2\r\n\r\n"
    )
    assert isinstance(out[0], BadFrame) and "not an AMI message" in out[0].reason
    assert out[1].event == "Hangup" and out[1].uniqueid == "1.2"


def test_invalid_utf8_is_replaced_not_dropped() -> None:
    out = AmiStreamDecoder().feed(b"Event: Newchannel\r\nCallerIDName: A\xffB\r\n\r\n")
    assert out[0].calleridname == "A\ufffdB"


def test_an_endless_frame_is_dropped() -> None:
    decoder = AmiStreamDecoder()
    decoder.feed(b"Asterisk Call Manager/9.0.0\r\n")
    out = decoder.feed(b"X: " + b"y" * (1024 * 1024 + 10))
    assert isinstance(out[-1], BadFrame)
    assert decoder.feed(b"\r\n\r\nEvent: Ping\r\n\r\n")[-1].event == "Ping"


def parsed(text: str) -> Message:
    message = Message.from_line(text.replace("\n", "\r\n"))
    assert message is not None
    return message


@pytest.mark.parametrize(
    ("response", "lines"),
    [
        ("Response: Success\nMessage: Command output follows\nOutput: one\nOutput: two", ["one", "two"]),
        ("Response: Success\nMessage: Command output follows\nOutput: only one", ["only one"]),
        ("Response: Success\nMessage: Command output follows\nOutput: ", []),
        ("Response: Success\nMessage: Command output follows\nOutput:", []),
        ("Response: Success\nMessage: Command output follows", []),
        ("Response: Success\nOutput: a\nOutput: \nOutput: b\nOutput: ", ["a", "", "b"]),
    ],
)
def test_command_output_is_always_a_list_of_lines(response: str, lines: list[str]) -> None:
    assert command_output(parsed(response)) == lines


def test_legacy_follows_body_with_bare_newlines() -> None:
    message = Message.from_line("Response: Follows\r\nPrivilege: Command\r\nline 1\nline 2\n--END COMMAND--")
    assert command_output(message) == ["line 1", "line 2"]


NAMES = st.sampled_from(["Event", "event", "Response", "ActionID", "Output", "output", "Result", "Content", "Uniqueid",
                         "ChanVariable", "Message", "X"])  # fmt: skip
VALUES = st.text(st.sampled_from('ab: %20"\t\nИ1'), max_size=8)
LINES = st.one_of(
    st.tuples(NAMES, VALUES).map(": ".join),
    st.sampled_from(["Response: Follows", "Response: Fail", "Response: Success", "", "--END COMMAND--", "bare"]),
    VALUES,
)


@given(st.lists(LINES, max_size=10))
def test_frames_parse_as_panoramisk_parses_them(lines: list[str]) -> None:
    text = "\r\n".join(lines)
    ours, theirs = parse_frame(text), Message.from_line(text)
    if theirs is None:
        assert ours is None
        return
    assert ours is not None
    assert list(ours.items()) == list(theirs.items())
    for name in ("event", "EVENT", "Output", "result", "content", "missing"):
        assert ours.get(name) == theirs.get(name) and (name in ours) == (name in theirs)
        assert getattr(ours, name.lower()) == getattr(theirs, name.lower())
    assert (ours.id, ours.action_id, ours.success, ours.manager) == (theirs.id, theirs.action_id, theirs.success, None)


def test_recorded_sessions_parse_as_panoramisk_parses_them() -> None:
    parsed = 0
    for transcript in TRANSCRIPTS.glob("*.ami.txt"):
        text = transcript.read_bytes().decode("utf-8")
        for frame in text.split("\r\n\r\n"):
            theirs = Message.from_line(frame.strip())
            ours = parse_frame(frame.strip())
            assert (ours is None) == (theirs is None)
            if ours is not None:
                assert list(ours.items()) == list(theirs.items())
                parsed += 1
    assert parsed > 100


def same_event(text: str) -> dict[str, str] | None:
    """What :func:`event_headers` makes of a frame, checked against panoramisk's message of it."""
    headers = event_headers(text)
    if headers is not None:
        theirs = Message.from_line(text)
        assert theirs is not None and _unsolicited(theirs._store), "only events no action waits for"
        assert list(headers.items()) == [(name, value) for name, value in theirs.items() if name != "content"]
    return headers


@given(st.lists(LINES, max_size=10))
def test_a_plain_event_reads_as_panoramisk_reads_it(lines: list[str]) -> None:
    same_event("\r\n".join(["Event: Hangup", *lines]))
    same_event("\r\n".join(lines))


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("Event: Hangup\r\nUniqueid: 1.1\r\nCause: 16", True),
        ("Event: Hangup\r\nActionID: 1", False),  # an action waits for it
        ("Event: Hangup\r\nactionid: 1", False),
        ("Event: Hangup\r\nCommandID: 1", False),
        ("Event: Shutdown\r\nShutdown: Cleanly", False),  # panoramisk closes on it
        ("Event: Hangup\r\nResult: %20x", False),  # unquoted
        ("Event: Hangup\r\nContent: x", False),  # panoramisk's name for a body
        ("Event: Hangup\r\nUniqueid: 1.1\r\nuniqueid: 1.2", False),  # twice
        ("Event: Hangup\r\nno colon", False),
        ("Privilege: call,all\r\nEvent: Hangup", False),  # not first
    ],
)
def test_only_a_plain_event_is_a_plain_dict(text: str, plain: bool) -> None:
    assert (same_event(text) is not None) == plain


def test_the_events_of_the_recorded_sessions_are_plain_dicts() -> None:
    plain = 0
    for transcript in TRANSCRIPTS.glob("*.ami.txt"):
        for frame in transcript.read_bytes().decode("utf-8").split("\r\n\r\n"):
            theirs = Message.from_line(frame.strip())
            if theirs is not None and theirs.get("Event") and "ActionID" not in theirs:
                if same_event(frame.strip()) is None:  # an empty last value: stripped, its line has no ": "
                    assert any(": " not in line for line in frame.strip().split("\r\n")), frame
                else:
                    plain += 1
    assert plain > 100
