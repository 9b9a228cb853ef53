"""The AMI byte stream -> messages, decoding UTF-8 incrementally.

panoramisk 1.4 decodes every socket read on its own and drops broken bytes, so a read that splits a multi-byte
character loses it (``Иван`` -> ``ван``). :class:`AmiStreamDecoder` keeps the incomplete tail of a character
for the next read, and reports frames that are not AMI messages instead of dropping them silently.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

from panoramisk.message import Message

EOL = "\r\n"
BANNER = "Asterisk Call Manager/"
MAX_BUFFER = 1024 * 1024
"""A peer that sends this much without a blank line is not speaking AMI; the buffer is dropped."""


@dataclass(frozen=True)
class BadFrame:
    reason: str


class AmiStreamDecoder:
    """Feed it bytes as they arrive; it returns the complete messages (panoramisk ``Message``) and bad frames."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self.version: str | None = None

    def feed(self, data: bytes) -> list[Any]:
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
        parts = text.split(EOL + EOL)
        self._pending = parts.pop()
        out: list[Any] = []
        if len(self._pending) > MAX_BUFFER:
            self._pending = ""
            out.append(BadFrame(f"more than {MAX_BUFFER} bytes without a message end"))
        for part in parts:
            part = part.strip()
            if not part:
                continue
            message = Message.from_line(part)
            if message is None:
                out.append(BadFrame(f"not an AMI message ({len(part)} characters, no Event or Response)"))
            else:
                out.append(message)
        return out


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
