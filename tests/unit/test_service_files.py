"""systemd unit, watchdog pings and Dockerfile: what can be checked without systemd or docker running."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from bridge.ops.systemd import Notifier

ROOT = Path(__file__).resolve().parents[2]


def test_notifier_sends_ready_and_watchdog_pings_to_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "40000"})
        assert notifier.watchdog_interval == pytest.approx(0.02)
        assert notifier.ready()
        assert server.recv(100) == b"READY=1"

        async def ping_a_while() -> None:
            task = asyncio.create_task(notifier.watchdog(lambda: True))
            await asyncio.sleep(0.07)
            task.cancel()

        asyncio.run(ping_a_while())
        assert notifier.stopping()
        messages = []
        while (message := server.recv(100)) != b"STOPPING=1":
            messages.append(message)
        assert len(messages) >= 3 and set(messages) == {b"WATCHDOG=1"}


def test_unhealthy_daemon_sends_no_watchdog_pings(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.setblocking(False)
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000"})

        async def run() -> None:
            task = asyncio.create_task(notifier.watchdog(lambda: False))
            await asyncio.sleep(0.05)
            task.cancel()

        asyncio.run(run())
        with pytest.raises(BlockingIOError):
            server.recv(100)


def test_without_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.ready() and notifier.watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_unit_file_is_notify_with_watchdog_state_dir_and_hardening(tmp_path: Path) -> None:
    unit = (ROOT / "systemd" / "b24-bridge.service").read_text()
    for line in ("Type=notify", "Restart=on-failure", "StateDirectory=b24-bridge", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "WatchdogSec="):  # fmt: skip
        assert line in unit
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    # verify needs the ExecStart binary to exist; point it at one that does, keep everything else
    copy = tmp_path / "b24-bridge.service"
    copy.write_text(unit.replace("/opt/b24-bridge/.venv/bin/b24-bridge", shutil.which("true") or "/bin/true"))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in result.stderr.splitlines() if "b24-bridge.service" in ln]
    assert result.returncode == 0 and not problems, result.stderr


def test_dockerfile_runs_as_non_root_with_healthcheck_and_volume() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "\nUSER b24bridge" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'VOLUME ["/var/lib/b24-bridge"]' in text
