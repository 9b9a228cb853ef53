"""The AMI byte stream -> messages, decoding UTF-8 incrementally.

panoramisk 1.4 decodes every socket read on its own and drops broken bytes, so a read that splits a multi-byte
character loses it (``Иван`` -> ``ван``). :class:`AmiStreamDecoder` keeps the incomplete tail of a character
for the next read, and reports frames that are not AMI messages instead of dropping them silently.

Frames become panoramisk ``Message`` objects (its actions and dispatch read them) through :func:`parse_frame`,
which gives what ``Message.from_line`` gives at a third of the cost: it fills the case-insensitive store in one
pass instead of one ``MutableMapping.update`` step per header, and its ``get`` / ``[]`` skip the abstract
``Mapping`` layers (every event goes through several of them on its way to the translator).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from panoramisk.message import Message

EOL = "\r\n"
FRAME_END = EOL + EOL
BANNER = "Asterisk Call Manager/"
MAX_BUFFER = 1024 * 1024
"""A frame longer than this (in characters) is not AMI; it is reported once and skipped up to its end."""
SINGLE_HEADERS = ("Event", "Response", "ActionID", "CommandID", "Message", "SubEvent", "EventList")
"""Headers panoramisk reads as one string; a frame that repeats one would crash its dispatch."""


@dataclass(frozen=True)
class BadFrame:
    reason: str


class AmiStreamDecoder:
    """Feed it bytes as they arrive; it returns the complete messages (panoramisk ``Message``) and bad frames.

    However the stream is cut into reads, the result is the same.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._skipping = False
        """The frame being received is already reported as too long; drop it up to its end."""
        self.version: str | None = None

    def feed(self, data: bytes) -> list[Any]:
        return [parse(item) if isinstance(item, str) else item for item in self.frames(data)]

    def frames(self, data: bytes) -> list[str | BadFrame]:
        """Like :meth:`feed`, with each complete frame's text (stripped) instead of its message."""
        text = self._pending + self._decoder.decode(data)
        if self.version is None:
            if BANNER.startswith(text) or (text.startswith(BANNER) and EOL not in text and len(text) < MAX_BUFFER):
                self._pending = text  # the banner line is not complete yet
                return []
            if text.startswith(BANNER):
                line, _, text = text.partition(EOL)
                self.version = line[len(BANNER) :].strip()
            else:
                self.version = ""  # a peer that starts without a banner
        parts = text.split(FRAME_END)
        pending = parts.pop()
        if self._skipping and parts:
            parts.pop(0)  # the end of the frame reported as too long
            self._skipping = False
        out: list[str | BadFrame]
        if len(text) <= MAX_BUFFER:  # no frame can be too long: strip them without a Python call (a listcomp's)
            out = list(filter(None, map(str.strip, parts)))
        else:
            out = [part.strip() if len(part) <= MAX_BUFFER else _too_long() for part in parts if part.strip()]
        # the pending text may end with the first three characters of a frame end
        if len(pending) > MAX_BUFFER + len(FRAME_END) - 1:
            if not self._skipping:
                out.append(_too_long())
                self._skipping = True
            pending = pending[-(len(FRAME_END) - 1) :]
        self._pending = pending
        return out


class AmiFrame(Message):  # type: ignore[misc]
    """A panoramisk ``Message`` whose lookups go straight to its store (same keys, values and behaviour)."""

    repeats = False
    """A header name came twice (in any case): some values may be lists."""

    def get(self, key: str, default: Any = None) -> Any:
        found = self._store.get(key.lower())
        return default if found is None else found[1]

    def __getitem__(self, key: str) -> Any:
        return self._store[key.lower()][1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._store


BODY_RESPONSES = ("Response: Follows", "Response: Fail")


def parse_frame(text: str) -> AmiFrame | None:
    """One frame (without its blank line) -> the message ``Message.from_line`` makes of it, None when it has neither
    ``Event`` nor ``Response``: headers split at the first ``": "`` (a line without one is dropped), a repeated header
    becomes a list, ``Result`` is unquoted, and a ``Follows``/``Fail`` response's last non-empty line is its body.

    One pass fills the store; a frame where a name comes twice in any case (rare) is parsed again by the rules of
    panoramisk's repeats (:func:`_parse_repeats`)."""
    lines = text.split(EOL)
    content = ""
    if lines[0].startswith(BODY_RESPONSES):
        content = lines.pop()
        while not content and lines:
            content = lines.pop()
    store: dict[str, tuple[str, Any]] = {}
    for line in lines:
        name, sep, value = line.partition(": ")
        if not sep:
            continue
        key = name.lower()
        if key in store:
            return _parse_repeats(lines, content)
        if key == "result":
            value = unquote(value).strip()
        store[key] = (name, value)
    event, response = store.get("event"), store.get("response")
    if (event is None or event[0] != "Event") and (response is None or response[0] != "Response"):
        return None  # panoramisk looks for these two names as written
    return _message(store, content)


def _parse_repeats(lines: list[str], content: str) -> AmiFrame | None:
    headers: dict[str, Any] = {}
    for line in lines:
        name, sep, value = line.partition(": ")
        if not sep:
            continue
        if name.lower() == "result":
            value = unquote(value).strip()
        seen = headers.get(name)  # case-sensitive, as panoramisk's: "Foo" then "foo" is not a repeat
        if seen is None:
            headers[name] = value
        elif isinstance(seen, list):
            seen.append(value)
        else:
            headers[name] = [seen, value]
    if "Event" not in headers and "Response" not in headers:
        return None
    frame = _message({name.lower(): (name, value) for name, value in headers.items()}, content)
    frame.repeats = True
    return frame


def _message(store: dict[str, tuple[str, Any]], content: str) -> AmiFrame:
    store["content"] = ("content", content)
    frame: AmiFrame = AmiFrame.__new__(AmiFrame)
    frame._store = store
    frame.manager = None
    return frame


def parse(text: str) -> AmiFrame | BadFrame:
    """A frame's stripped text -> its message, or the reason it is not one."""
    message = parse_frame(text)
    if message is None:
        return BadFrame(f"not an AMI message ({len(text)} characters, no Event or Response)")
    if message.repeats:  # rare: a repeated header
        repeated = [name for name in SINGLE_HEADERS if isinstance(message.get(name), list)]
        if repeated:
            return BadFrame(f"{repeated[0]} header repeated in one message")
    return message


NOT_PLAIN = frozenset({"actionid", "commandid", "result", "content"})
"""Headers (lower case) that send an event the way of :func:`parse`: an action waits for it, a value to unquote, or
the name panoramisk gives a message's body."""


def event_headers(text: str) -> dict[str, str] | None:
    """An event no action waits for, as a plain dict (header -> value, names as Asterisk writes them), when its frame
    is as plain as Asterisk's are: it starts ``Event: ``, every line is ``Name: value``, no name comes twice, none
    of :data:`NOT_PLAIN` in any case, and it is not ``Shutdown``. Else None: the frame takes :func:`parse` (the rules
    of panoramisk's ``Message``).

    A dict built in one step instead of the case-insensitive store header by header: events are nearly all the
    stream, and each is read a few times on its way to the translator."""
    if not text.startswith("Event: "):
        return None
    lines = text.split(EOL)
    try:
        headers = dict([line.split(": ", 1) for line in lines])  # faster than map(methodcaller) despite the call
    except ValueError:  # a line without ": "
        return None
    names = set(map(str.lower, headers))
    if len(names) != len(lines) or not names.isdisjoint(NOT_PLAIN) or headers["Event"].lower() == "shutdown":
        return None
    return headers


def _too_long() -> BadFrame:
    return BadFrame(f"a frame of more than {MAX_BUFFER} characters")


END_COMMAND = "--END COMMAND--"


def command_output(message: Any) -> list[str]:
    """The output lines of a ``Command`` response, whichever way Asterisk and panoramisk shaped them.

    Asterisk 14+ repeats ``Output:`` headers; panoramisk makes a list of several but leaves a single one a str, and
    drops an empty ``Output:`` line. Older Asterisk sent ``Response: Follows`` with a body ending in
    ``--END COMMAND--``. Empty output -> ``[]``.
    """
    value = message.get("Output")
    if isinstance(value, list):
        lines = [str(line) for line in value]
    elif isinstance(value, str):
        lines = [value]
    else:
        content = getattr(message, "content", "") or ""
        lines = content.replace("\r\n", "\n").split("\n") if content else []
        lines = [line for line in lines if line.strip() != END_COMMAND]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines
