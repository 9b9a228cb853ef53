"""The container's health check and stop: the probe follows ``http.listen``; the documented stop timeouts outlast
the daemon's own shutdown."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.daemon import STOP_ROUND_SECONDS, STOP_ROUNDS, Timing
from bridge.ops.probe import main, probe_url

ROOT = Path(__file__).resolve().parents[2]
SHUTDOWN = Timing().grace + Timing().flush + STOP_ROUNDS * STOP_ROUND_SECONDS
"""The longest a SIGTERM'd daemon takes: grace for the calls, then Bitrix24's flush, then the task rounds."""


def test_the_probe_asks_the_configured_port_on_loopback() -> None:
    assert probe_url('[http]\nlisten = "0.0.0.0:9000"\n', "livez") == "http://127.0.0.1:9000/livez"
    assert probe_url('[http]\nlisten = "[::]:9001"\n', "readyz") == "http://[::1]:9001/readyz"
    assert probe_url('[http]\nlisten = "10.0.0.5:9002"\n', "livez") == "http://10.0.0.5:9002/livez"
    assert probe_url("[journal]\npath = 'x.db'\n", "livez") == "http://127.0.0.1:8480/livez"


def test_the_probe_fails_without_a_daemon_or_a_config(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    assert main(["--config", str(config)]) == 1
    config.write_text('[http]\nlisten = "127.0.0.1:1"\n')
    assert main(["--config", str(config), "--timeout", "2"]) == 1


def test_dockerfile_checks_livez_on_the_configured_port_and_stops_gracefully() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "\nSTOPSIGNAL SIGTERM" in text
    check = text[text.index("HEALTHCHECK") :].split("\n", 2)[:2]
    assert '"bridge.ops.probe"' in check[1] and '"livez"' in check[1] and "8480" not in check[1]
    documented = [
        int(n) for n in re.findall(r"--stop-timeout (\d+)", text) + re.findall(r"stop_grace_period: (\d+)s", text)
    ]
    assert len(documented) == 2 and min(documented) > SHUTDOWN


def test_systemd_waits_longer_than_the_daemon_takes_to_stop() -> None:
    unit = (ROOT / "systemd" / "b24-bridge.service").read_text()
    (seconds,) = re.findall(r"^TimeoutStopSec=(\d+)s$", unit, re.MULTILINE)
    assert int(seconds) > SHUTDOWN
