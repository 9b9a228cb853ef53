"""What the daemon's event loop ran when it stalled: ``BENCH_STALLS_TO=FILE`` in the daemon child's environment.

The loop beats every :data:`BEAT` s; a thread of its own looks every :data:`BEAT` s and, while the last beat is
older than the threshold, samples the main thread's stack (``sys._current_frames``). When the loop beats again,
the stall is appended to ``FILE`` as one JSON line: when (s since the sampler started), how long (wall ms), how
much CPU the main thread used meanwhile (``cpu_ms``: about the wall time for code that stalls the loop, far less
when the machine's other processes kept it off the CPU or it waited in a system call), GC time in it and the
stacks seen, most frequent first. ``python -m bench.stall_sampler FILE [MIN_MS]`` prints them.

A pass over every call or agent shows as a stall whose CPU matches its wall time, with the same stack at every
sample; on a busy machine most stalls are the scheduler's (``cpu_ms`` a fraction of ``wall_ms``). The beat costs
the daemon some CPU: leave it out of CPU figures.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

BEAT = 0.002
THRESHOLD = 0.02
FRAMES = 12
"""Innermost frames kept per sample."""


def _where(frame: traceback.FrameSummary) -> str:
    path = frame.filename.split("site-packages/")[-1]
    return f"{path}:{frame.lineno}:{frame.name}"


class StallSampler:
    def __init__(self, path: Path, threshold: float = THRESHOLD) -> None:
        self.path = path
        self.threshold = threshold
        self._main = threading.main_thread().ident or 0
        self._clock = time.pthread_getcpuclockid(self._main)
        self._started = time.perf_counter()
        self._beat = self._started
        self._beat_cpu = time.clock_gettime(self._clock)
        self._gc_started = 0.0
        self._gc_ms = 0.0
        self._in_gc = False
        self._stall: dict[str, Any] | None = None
        self._running = True
        gc.callbacks.append(self._on_gc)
        threading.Thread(target=self._watch, name="stall-sampler", daemon=True).start()

    async def beat(self) -> None:
        """Run on the daemon's loop (a task) until cancelled; then the sampler stops."""
        try:
            while True:
                self._beat_cpu = time.clock_gettime(self._clock)
                self._gc_ms = 0.0
                self._beat = time.perf_counter()
                await asyncio.sleep(BEAT)
        finally:
            self._running = False
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        self._in_gc = phase == "start"
        if self._in_gc:
            self._gc_started = time.perf_counter()
        else:
            self._gc_ms += (time.perf_counter() - self._gc_started) * 1000

    def _watch(self) -> None:
        while self._running:
            time.sleep(BEAT)
            beat, beat_cpu = self._beat, self._beat_cpu
            if self._stall is not None and self._stall["beat"] != beat:
                self._write(beat, beat_cpu)  # the loop beat again: the stall ended with that beat
            if time.perf_counter() - beat > self.threshold:
                self._sample(beat, beat_cpu)

    def _sample(self, beat: float, beat_cpu: float) -> None:
        if self._stall is None:
            self._stall = {"beat": beat, "cpu0": beat_cpu, "gc": 0.0, "stacks": collections.Counter()}
        frame = sys._current_frames().get(self._main)
        stack = tuple(_where(f) for f in traceback.extract_stack(frame)[-FRAMES:]) if frame is not None else ()
        self._stall["stacks"][(*stack, "<GC>") if self._in_gc else stack] += 1
        self._stall["gc"] = self._gc_ms

    def _write(self, ended: float, ended_cpu: float) -> None:
        stall, self._stall = self._stall, None
        assert stall is not None
        line = {
            "at": round(stall["beat"] - self._started, 3),
            "wall_ms": round((ended - stall["beat"]) * 1000, 1),
            "cpu_ms": round((ended_cpu - stall["cpu0"]) * 1000, 1),
            "gc_ms": round(stall["gc"], 1),
            "stacks": [[count, list(stack)] for stack, count in stall["stacks"].most_common(3)],
        }
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def show(path: Path, min_ms: float = 0.0) -> None:
    if not path.exists():  # the sampler writes the file at the first stall
        print(f"{path}: no stall over the threshold")
        return
    for text in path.read_text(encoding="utf-8").splitlines():
        stall = json.loads(text)
        if stall["wall_ms"] < min_ms:
            continue
        at, wall, cpu, in_gc = stall["at"], stall["wall_ms"], stall["cpu_ms"], stall["gc_ms"]
        print(f"{at:9.2f} s  wall {wall:6.1f} ms  cpu {cpu:6.1f} ms  gc {in_gc:5.1f} ms")
        for count, stack in stall["stacks"]:
            print(f"    {count} x " + " <- ".join(reversed(stack[-7:])))


if __name__ == "__main__":
    show(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
