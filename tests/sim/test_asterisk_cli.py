"""``python -m bridge.sim.asterisk`` serves real sockets until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

from tests.sim.asterisk_clients import AmiWire, AriWire


async def test_cli_prints_where_it_listens_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.sim.asterisk", "--ari-port", "0", "--ami-port", "0",
        "--user", "demo", "--password", "pw", "--party", "1001=answer:0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        ari_line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().split()
        ami_line = (await asyncio.wait_for(process.stdout.readline(), 5)).decode().split()
        assert ari_line[0] == "ARI" and ari_line[1].startswith("http://127.0.0.1:")
        assert ami_line[0] == "AMI"
        host, port = ami_line[1].rsplit(":", 1)
        ami = await AmiWire.connect(host, int(port))
        assert (await ami.login("demo", "pw"))["Response"] == "Success"
        await ami.close()
        ari = AriWire(ari_line[1], "demo", "pw")
        status, info = await ari.call("GET", "/asterisk/info")
        assert status == 200 and info["system"]["version"].startswith("20.")
        await ari.close()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 10)
    assert code == 0


async def test_cli_refuses_a_bad_party() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.sim.asterisk", "--ari-port", "0", "--ami-port", "0", "--party", "1001=sing",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert b"bad party 'sing'" in stderr
