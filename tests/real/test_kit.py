"""The layer's own machinery, without Asterisk: one build at a time into the cache, a build failure that says where
its log is, and port blocks that two sessions never share."""

from __future__ import annotations

import socket
import stat
import threading
from pathlib import Path

import pytest

from tests.real import kit
from tests.real.kit import KitError, ensure_built, kit_dir, reserve_ports

FAKE_BUILD = """#!/bin/sh
# stands in for the kit's build.sh: counts its runs, then installs an "asterisk" that says its version
echo run >> "{runs}"
sleep 0.3
[ -n "{fail}" ] && {{ echo "configure: error: no compiler"; exit 3; }}
mkdir -p "$1/sbin" "$1/lib/asterisk/modules"
printf '#!/bin/sh\\necho Asterisk 20.20.1\\n' > "$1/sbin/asterisk"
chmod +x "$1/sbin/asterisk"
touch "$1/lib/asterisk/modules/chan_pjsip.so"
"""


def fake_kit(tmp_path: Path, *, fail: bool = False) -> tuple[Path, Path]:
    where, runs = tmp_path / "kit", tmp_path / "runs"
    where.mkdir()
    script = where / "build.sh"
    script.write_text(FAKE_BUILD.format(runs=runs, fail="yes" if fail else ""))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return where, runs


def test_concurrent_sessions_build_once(tmp_path: Path) -> None:
    source, runs = fake_kit(tmp_path)
    target = tmp_path / "cache" / "asterisk-20.20.1"
    errors: list[BaseException] = []

    def session() -> None:
        try:
            ensure_built(source, target)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=session) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert runs.read_text().splitlines() == ["run"], "the second and third session must wait and reuse the build"
    ensure_built(source, target)
    assert runs.read_text().splitlines() == ["run"]


def test_a_failed_build_says_where_its_output_is(tmp_path: Path) -> None:
    source, _ = fake_kit(tmp_path, fail=True)
    target = tmp_path / "cache" / "asterisk-20.20.1"
    with pytest.raises(KitError) as failed:
        ensure_built(source, target)
    message = str(failed.value)
    assert "exit 3" in message and str(target.parent / "asterisk-20.20.1.build.log") in message
    assert "configure: error: no compiler" in message


def test_a_missing_kit_is_an_error_naming_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(KitError, match=r"holds no build\.sh"):
        kit_dir({"B24_ASTERISK_KIT": str(tmp_path)})


def test_two_sessions_get_different_ports_and_busy_ones_are_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kit, "SLOT_BASE", 21000)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 21000 + 3))  # slot 0's AMI port of the phone farm is taken by someone else
        squatter.listen()
        with reserve_ports(tmp_path) as first, reserve_ports(tmp_path) as second:
            assert first.pbx_ami == 21000 + kit.SLOT_SIZE, "slot 0 has a busy port"
            assert second.pbx_ami == 21000 + 2 * kit.SLOT_SIZE, "slot 1 is held by the first session"
            mine = {*first.env().values()} & {*second.env().values()}
            assert mine == set(), f"shared ports: {mine}"
        with reserve_ports(tmp_path) as again:
            assert again.pbx_ami == 21000 + kit.SLOT_SIZE, "a finished session's block is free again"
