"""One writer per journal: replay refuses while the daemon (or another replay) holds the lock."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.journal import Journal
from bridge.journal.lock import JournalBusy, exclusive, lock_path
from bridge.replay import EXIT_USAGE, main

HOLD = """
import sys, time
from pathlib import Path
from bridge.journal.lock import exclusive
with exclusive(Path(sys.argv[1]), holder="b24-bridge run"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    busy = pytest.raises(JournalBusy, match=r"in use by b24-bridge run \(pid \d+\)")
    with exclusive(journal, holder="b24-bridge run"), busy, exclusive(journal, holder="x"):
        pass
    with exclusive(journal, holder="again"):  # released at the end of the block
        assert "again" in lock_path(journal).read_text()


def test_the_lock_dies_with_its_holder_even_on_kill_9(tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(journal)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(JournalBusy), exclusive(journal, holder="replay"):
            pass
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    deadline = time.monotonic() + 5
    while True:
        try:
            with exclusive(journal, holder="replay"):
                break
        except JournalBusy:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_replay_refuses_while_the_journal_is_held(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "journal.db"
    Journal.open(journal).close()
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"""
[asterisk]
ari_password = "x1234"
ami_secret = "y1234"
[bitrix24]
webhook_url = "http://127.0.0.1:9/rest/1/code1234/"
events = "off"
[journal]
path = "{journal}"
"""
    )
    args = argparse.Namespace(config=str(config), since=None, call=None, dry_run=False)
    with exclusive(journal, holder="b24-bridge run"):
        assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "in use by b24-bridge run" in err and "while the daemon is stopped" in err
