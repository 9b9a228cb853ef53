"""``python -m bridge.sim.bitrix24`` as a real process."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.sim.bitrix24",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_cli_prints_urls_serves_and_stops_on_sigterm() -> None:
    process = await _spawn("--port", "0", "--webhook", "1/clihook", "--plan", "enterprise")
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=15)).decode()
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        assert line.startswith("b24sim ") and fields["url"].startswith("http://127.0.0.1:")
        assert fields["webhook"] == f"{fields['url']}/rest/1/clihook/"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{fields['webhook']}user.current.json") as response:
                assert response.status == 200
                assert (await response.json())["result"]["ID"] == "1"
            async with session.get(f"{fields['url']}/_sim/state") as response:
                assert (await response.json())["bucket"]["capacity"] == 250
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=15)
    assert code == 0


async def test_cli_refuses_a_broken_seed(tmp_path: Path) -> None:
    broken = tmp_path / "seed.json"
    broken.write_text("[1, 2")
    process = await _spawn("--port", "0", "--seed", str(broken))
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=15)
    assert process.returncode == 2
    assert stdout == b"" and b"not valid JSON" in stderr
