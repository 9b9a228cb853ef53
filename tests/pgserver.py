"""A real PostgreSQL server for the tests: Debian's binaries, started in a temporary directory (no system service).

One server per test session (``initdb`` + ``pg_ctl`` on a free port on 127.0.0.1, password authentication over
TCP, as a site's server would ask), a fresh database per test. Run as root, the server runs as the ``postgres``
user (PostgreSQL refuses to run as root) through ``runuser``; otherwise as the user running the tests.
A missing server fails the test with what to install: the suite never skips it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

USER = "bridge"
PASSWORD = "pg-test-" + uuid.uuid4().hex[:12]
"""The role the tests connect as; its password comes to the bridge the way a site's would (env or file)."""

MISSING = (
    "the PostgreSQL server (initdb, pg_ctl) is not installed: `make test` installs it "
    "(apt-get install postgresql), or install it by hand"
)


class ServerMissing(Exception):
    pass


def bin_dir() -> Path:
    """The newest installed server's binaries (Debian keeps them out of PATH, in /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise ServerMissing(MISSING)
    return Path(initdb).resolve().parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PgServer:
    root: Path
    port: int
    bindir: Path
    as_user: str | None
    """``postgres`` when the tests run as root (the server runs as that user), else None."""

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str, *, password: bool = False) -> str:
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_user is not None:
            command = ["runuser", "-u", self.as_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")
        return done

    @classmethod
    def start(cls) -> PgServer:
        bindir = bin_dir()
        as_user = "postgres" if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="b24-pg-"))
        if as_user is not None:
            entry = pwd.getpwnam(as_user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        pwfile = root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if as_user is not None:
            os.chown(pwfile, pwd.getpwnam(as_user).pw_uid, -1)
        server = cls(root, 0, bindir, as_user)
        server._run(
            "initdb", "-D", str(server.data), "-U", USER, f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256",
        )  # fmt: skip
        pwfile.unlink()
        for _attempt in range(5):  # the free port may be taken between the probe and the start
            server.port = _free_port()
            options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} -c fsync=off -c max_connections=200"
            try:
                server._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(server.data), "-l",
                            str(root / "server.log"), "-o", options)  # fmt: skip
                return server
            except RuntimeError as exc:
                if "could not bind" not in str(exc) and "already in use" not in str(exc):
                    server.stop()
                    raise
        server.stop()
        raise RuntimeError("PostgreSQL found no free port")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):  # already gone: nothing to stop
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self) -> str:
        """A fresh, empty database; returns its name."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url("postgres", password=True), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name
