"""Playbacks, recordings (real small .wav files of silence) and DTMF on channels and bridges.

A ``sound:`` the PBX does not have (``missing_sounds``) plays as Asterisk 20 plays it (res_stasis_playback): the
request is answered 201, ``PlaybackStarted`` goes out, then at once ``PlaybackFinished`` with state ``failed`` (a
list of media goes on to the next one; only the last one failing fails the playback).
"""

from __future__ import annotations

import asyncio
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.sim.asterisk.model import Bridge, Channel, now

if TYPE_CHECKING:
    from bridge.sim.asterisk.pbx import Pbx

SAMPLE_RATE = 8000


class RecordingConflict(Exception):
    """``ifExists=fail`` and a recording of that name exists, or one is live under that name."""


@dataclass(eq=False)
class Playback:
    id: str
    media: list[str]
    target: Channel | Bridge
    language: str = "en"
    state: str = "queued"
    handle: asyncio.TimerHandle | None = None

    @property
    def target_uri(self) -> str:
        kind = "channel" if isinstance(self.target, Channel) else "bridge"
        return f"{kind}:{self.target.id}"

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "media_uri": self.media[0]}
        if len(self.media) > 1:
            data["next_media_uri"] = self.media[1]
        data.update(target_uri=self.target_uri, language=self.language, state=self.state)
        return data


@dataclass(eq=False)
class LiveRecording:
    name: str
    format: str
    target: Channel | Bridge
    terminate_on: str = "none"
    state: str = "queued"
    started_at: float = field(default_factory=now)
    handle: asyncio.TimerHandle | None = None

    @property
    def target_uri(self) -> str:
        kind = "channel" if isinstance(self.target, Channel) else "bridge"
        return f"{kind}:{self.target.id}"

    def as_json(self, duration: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "format": self.format,
            "state": self.state,
            "target_uri": self.target_uri,
        }
        if duration is not None:
            data["duration"] = duration
        return data


def write_silence(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(b"\x00\x00" * int(max(0.0, seconds) * SAMPLE_RATE))


HOLD_POLL = 0.02
"""Seconds between looks at a channel whose queue a prompt holds."""


class Media:
    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.recordings_dir = Path(".")
        self.media_seconds = 0.3
        self.media_durations: dict[str, float] = {}
        self.missing_sounds: set[str] = set()
        """Media URIs (``sound:NAME``) whose files are not installed."""
        self.playbacks: dict[str, Playback] = {}
        self.live: dict[str, LiveRecording] = {}
        self.stored: dict[str, dict[str, Any]] = {}  # name -> {"format", "duration", "path"}

    # --- what holds a channel's command queue ----------------------------------------------------
    def holds(self, channel: Channel) -> bool:
        """A prompt plays or a recording runs on ``channel`` itself: Asterisk runs it in the channel's thread, so the
        operations that go through the channel's command queue (answer, setChannelVar, addChannel) wait for its end
        (``tests/real/test_ari_over_websocket.py``); on other channels they do not."""
        return any(p.target is channel and p.state in ("queued", "playing") for p in self.playbacks.values()) or any(
            r.target is channel for r in self.live.values()
        )

    async def until_free(self, channel: Channel) -> None:
        while self.holds(channel):  # noqa: ASYNC110 (prompts and recordings end in many places; a look is cheap)
            await asyncio.sleep(HOLD_POLL)

    # --- playbacks -------------------------------------------------------------------------
    def play(self, target: Channel | Bridge, media: list[str], playback_id: str | None, lang: str) -> Playback:
        playback = Playback(id=playback_id or str(uuid.uuid4()), media=media, target=target, language=lang)
        self.playbacks[playback.id] = playback
        asyncio.get_running_loop().call_soon(self._start_playback, playback)
        return playback

    def _duration(self, media: str) -> float | None:
        if media in self.missing_sounds:
            return 0.0
        if media in self.media_durations:
            return self.media_durations[media]
        if media.startswith("tone:"):
            return None  # tones play until stopped
        if media.startswith("recording:") and media[10:] in self.stored:
            return float(self.stored[media[10:]]["duration"])
        return self.media_seconds

    def _start_playback(self, playback: Playback) -> None:
        if playback.state != "queued":
            return
        playback.state = "playing"
        self._playback_event("PlaybackStarted", playback)
        durations = [self._duration(m) for m in playback.media]
        if any(d is None for d in durations):
            return
        total = sum(d for d in durations if d is not None)
        loop = asyncio.get_running_loop()
        failed = playback.media[-1] in self.missing_sounds
        playback.handle = loop.call_later(total, self.finish_playback, playback, failed)

    def finish_playback(self, playback: Playback, failed: bool = False) -> None:
        if self.playbacks.pop(playback.id, None) is None:
            return
        if playback.handle is not None:
            playback.handle.cancel()
        was_playing = playback.state == "playing"
        playback.state = "failed" if failed else "done"
        if was_playing:
            self._playback_event("PlaybackFinished", playback)

    def _playback_event(self, event_type: str, playback: Playback) -> None:
        target = playback.target
        self.pbx.ari(
            event_type,
            after={"playback": playback.as_json()},
            channels=(target,) if isinstance(target, Channel) else (),
            bridges=(target,) if isinstance(target, Bridge) else (),
        )

    # --- recordings ------------------------------------------------------------------------
    def record(
        self,
        target: Channel | Bridge,
        *,
        name: str,
        fmt: str,
        max_seconds: float,
        if_exists: str,
        terminate_on: str,
    ) -> LiveRecording:
        if name in self.live or (name in self.stored and if_exists == "fail"):
            raise RecordingConflict(name)
        recording = LiveRecording(name=name, format=fmt, target=target, terminate_on=terminate_on)
        self.live[name] = recording
        asyncio.get_running_loop().call_soon(self._start_recording, recording, max_seconds)
        return recording

    def _start_recording(self, recording: LiveRecording, max_seconds: float) -> None:
        if recording.state != "queued":
            return
        recording.state = "recording"
        recording.started_at = now()
        self._recording_event("RecordingStarted", recording)
        if max_seconds > 0:
            loop = asyncio.get_running_loop()
            recording.handle = loop.call_later(max_seconds, self.stop_recording, recording.name)

    def stop_recording(self, name: str, *, keep: bool = True) -> None:
        recording = self.live.pop(name, None)
        if recording is None:
            return
        if recording.handle is not None:
            recording.handle.cancel()
        duration = now() - recording.started_at if recording.state == "recording" else 0.0
        recording.state = "done" if keep else "canceled"
        if keep:
            path = self.recordings_dir / f"{name}.{recording.format}"
            write_silence(path, duration)
            self.stored[name] = {"format": recording.format, "duration": duration, "path": path}
        self._recording_event("RecordingFinished", recording, round(duration))

    def _recording_event(self, event_type: str, recording: LiveRecording, duration: int | None = None) -> None:
        target = recording.target
        self.pbx.ari(
            event_type,
            after={"recording": recording.as_json(duration)},
            channels=(target,) if isinstance(target, Channel) else (),
            bridges=(target,) if isinstance(target, Bridge) else (),
        )

    def mixmonitor(self, channel: Channel, name: str) -> Path:
        """MixMonitor on a dialplan channel: the file is written when the channel goes away."""
        path = self.recordings_dir / f"{name}.wav"
        started = now()

        def finish() -> None:
            duration = now() - started
            write_silence(path, duration)
            self.stored[name] = {"format": "wav", "duration": duration, "path": path}

        channel.hangup_hooks.append(finish)
        self.pbx.ami("MixMonitorStart", channel.ami_fields())
        return path

    # --- DTMF ------------------------------------------------------------------------------
    def dtmf_received(self, channel: Channel, digit: str, duration_ms: int = 100) -> None:
        fields = channel.ami_fields()
        self.pbx.ami("DTMFBegin", [*fields, ("Digit", digit), ("Direction", "Received")], "dtmf")
        self.pbx.ami(
            "DTMFEnd",
            [*fields, ("Digit", digit), ("DurationMs", str(duration_ms)), ("Direction", "Received")],
            "dtmf",
        )
        self.pbx.ari("ChannelDtmfReceived", channel, after={"digit": digit, "duration_ms": duration_ms})
        for recording in list(self.live.values()):
            ends = recording.terminate_on == "any" or digit in recording.terminate_on
            if recording.target is channel and recording.terminate_on != "none" and ends:
                self.stop_recording(recording.name)

    # --- cleanup ---------------------------------------------------------------------------
    def stop_channel_media(self, channel: Channel) -> None:
        self._stop_for(channel)

    def stop_bridge_media(self, bridge: Bridge) -> None:
        self._stop_for(bridge)

    def _stop_for(self, target: Channel | Bridge) -> None:
        for playback in [p for p in self.playbacks.values() if p.target is target]:
            self.finish_playback(playback)
        for recording in [r for r in self.live.values() if r.target is target]:
            self.stop_recording(recording.name)
