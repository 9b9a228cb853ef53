"""Read the recordings of real Asterisk 20 traffic in ``tests/fixtures/transcripts/`` (see its README)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bridge.pbx.ami_stream import AmiStreamDecoder, BadFrame

TRANSCRIPTS = Path(__file__).resolve().parent.parent / "fixtures" / "transcripts"
SCENARIOS = (
    "a_inbound_noanswer_then_answer",
    "b_inbound_busy_unavailable_missed",
    "c_inbound_dtmf",
    "d_outbound_dialplan",
)


def ari_frames(scenario: str) -> list[str]:
    """The raw ARI WebSocket text frames, one per line."""
    text = (TRANSCRIPTS / f"{scenario}.ari.jsonl").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def originated_channels(scenario: str) -> list[str]:
    """Ids of the channels the recorded app originated (``POST /ari/channels`` answers), in order."""
    text = (TRANSCRIPTS / f"{scenario}.ari-rest.txt").read_text(encoding="utf-8")
    ids = []
    for block in text.split("\n\n"):
        if ">>> POST /ari/channels?" in block and "<<< 200" in block:
            answer = block[block.index("<<< 200") :]
            ids.append(json.loads(answer[answer.index("{") :])["id"])
    return ids


def playback_ids(scenario: str) -> list[str]:
    text = (TRANSCRIPTS / f"{scenario}.ari-rest.txt").read_text(encoding="utf-8")
    return re.findall(r'"id":"([^"]+)","media_uri"', text)


def ami_reads(scenario: str) -> list[tuple[float, bytes]]:
    """The AMI session as the socket reads delivered it: (time, bytes) per read."""
    raw = (TRANSCRIPTS / f"{scenario}.ami.txt").read_bytes()
    reads = []
    for line in (TRANSCRIPTS / f"{scenario}.ami.chunks.jsonl").read_text().splitlines():
        chunk = json.loads(line)
        reads.append((float(chunk["t"]), raw[chunk["offset"] : chunk["offset"] + chunk["len"]]))
    assert sum(len(data) for _, data in reads) == len(raw), "the chunks cover the whole recording"
    return reads


def ami_messages(scenario: str) -> list[tuple[float, Any]]:
    """(time of the read that completed it, panoramisk Message) for every message of the session."""
    decoder = AmiStreamDecoder()
    messages = []
    for t, data in ami_reads(scenario):
        for item in decoder.feed(data):
            assert not isinstance(item, BadFrame), item
            messages.append((t, item))
    return messages
