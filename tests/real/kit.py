"""The Asterisk kit (``../shared/asterisk-kit``) on this machine: built once into a cache, run per test session.

:func:`ensure_built` runs the kit's ``build.sh`` into the cache prefix under an exclusive ``flock`` (two test runs
never build into one prefix at once; when Asterisk is already installed the script exits at once).
:func:`reserve_ports` gives a session its own block of ports, held by a lock file while the session runs, so that
two runs on one machine never collide. :class:`Kit` starts and stops the two instances with the kit's ``run.sh``.

Nothing here skips: a kit that cannot be found, built or started raises :class:`KitError`, whose message says
what failed and where the log is.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ASTERISK_VERSION = "20.20.1"
REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 3600.0
RUN_TIMEOUT = 180.0
SLOTS = 40
SLOT_BASE = 20000
SLOT_SIZE = 250
"""A session's ports: base+0..4 for AMI, HTTP and SIP, base+50.. and base+150.. for the two RTP ranges."""
RTP_PORTS = 100


class KitError(RuntimeError):
    """The kit could not be found, built or started (the message says what and where the log is)."""


def kit_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$B24_ASTERISK_KIT``, else ``shared/asterisk-kit`` beside the checkout (or beside its parent, for a
    worktree one level deeper)."""
    if env.get("B24_ASTERISK_KIT"):
        found = Path(env["B24_ASTERISK_KIT"])
        if not (found / "build.sh").is_file():
            raise KitError(f"B24_ASTERISK_KIT={found} holds no build.sh")
        return found
    candidates = [parent / "shared" / "asterisk-kit" for parent in (REPO.parent, REPO.parent.parent)]
    for candidate in candidates:
        if (candidate / "build.sh").is_file() and (candidate / "run.sh").is_file():
            return candidate
    raise KitError(
        "the Asterisk kit was not found (looked in " + ", ".join(map(str, candidates)) + "); "
        "put shared/asterisk-kit beside the checkout or set B24_ASTERISK_KIT"
    )


def prefix(env: Mapping[str, str] = os.environ) -> Path:
    """Where Asterisk is installed: ``$B24_ASTERISK_PREFIX``, else the user's cache directory."""
    if env.get("B24_ASTERISK_PREFIX"):
        return Path(env["B24_ASTERISK_PREFIX"])
    cache = Path(env.get("XDG_CACHE_HOME") or Path(env.get("HOME", "~")).expanduser() / ".cache")
    return cache / "b24-bridge" / f"asterisk-{ASTERISK_VERSION}"


def installed(where: Path) -> bool:
    binary = where / "sbin" / "asterisk"
    if not binary.is_file() or not (where / "lib" / "asterisk" / "modules" / "chan_pjsip.so").is_file():
        return False
    out = subprocess.run([binary, "-V"], capture_output=True, text=True, check=False, timeout=30)
    return out.stdout.strip() == f"Asterisk {ASTERISK_VERSION}"


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def ensure_built(kit: Path, where: Path) -> None:
    """Build Asterisk into ``where`` unless it is there; one builder at a time (the others wait for it)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    log = where.parent / f"{where.name}.build.log"
    with open(where.parent / f"{where.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed(where):
            return
        with open(log, "w") as out:
            try:
                done = subprocess.run(
                    [kit / "build.sh", where], stdout=out, stderr=subprocess.STDOUT, check=False, timeout=BUILD_TIMEOUT
                )
            except subprocess.TimeoutExpired as exc:
                raise KitError(f"building Asterisk into {where} took over {BUILD_TIMEOUT:g} s; output: {log}") from exc
        if done.returncode != 0 or not installed(where):
            raise KitError(
                f"building Asterisk {ASTERISK_VERSION} with {kit}/build.sh into {where} failed "
                f"(exit {done.returncode}); output: {log}, compiler log: {where}/.astkit-build/build.log\n{_tail(log)}"
            )


@dataclass(frozen=True)
class Ports:
    pbx_ami: int
    pbx_http: int
    pbx_sip: int
    phones_ami: int
    phones_sip: int
    pbx_rtp: tuple[int, int]
    phones_rtp: tuple[int, int]

    def env(self) -> dict[str, str]:
        return {
            "PBX_AMI_PORT": str(self.pbx_ami),
            "PBX_HTTP_PORT": str(self.pbx_http),
            "PBX_SIP_PORT": str(self.pbx_sip),
            "PHONES_AMI_PORT": str(self.phones_ami),
            "PHONES_SIP_PORT": str(self.phones_sip),
            "PBX_RTP_START": str(self.pbx_rtp[0]),
            "PBX_RTP_END": str(self.pbx_rtp[1]),
            "PHONES_RTP_START": str(self.phones_rtp[0]),
            "PHONES_RTP_END": str(self.phones_rtp[1]),
        }


def _free(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _slot_ports(slot: int) -> Ports | None:
    base = SLOT_BASE + slot * SLOT_SIZE
    ports = Ports(
        pbx_ami=base, pbx_http=base + 1, pbx_sip=base + 2, phones_ami=base + 3, phones_sip=base + 4,
        pbx_rtp=(base + 50, base + 50 + RTP_PORTS - 1), phones_rtp=(base + 150, base + 150 + RTP_PORTS - 1),
    )  # fmt: skip
    tcp = [ports.pbx_ami, ports.pbx_http, ports.phones_ami]
    udp = [ports.pbx_sip, ports.phones_sip, *range(base + 50, base + 50 + RTP_PORTS), *range(base + 150, base + 250)]
    if all(_free(p, socket.SOCK_STREAM) for p in tcp) and all(_free(p, socket.SOCK_DGRAM) for p in udp):
        return ports
    return None


@contextlib.contextmanager
def reserve_ports(lock_dir: Path) -> Iterator[Ports]:
    """A block of free ports that no other session on this machine holds while this one runs."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(SLOTS):
        lock: IO[str] = open(lock_dir / f"ports-{slot}.lock", "w")  # noqa: SIM115 (held for the session)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        ports = _slot_ports(slot)
        if ports is None:  # something else (a stale Asterisk?) listens there: try the next block
            lock.close()
            continue
        try:
            yield ports
        finally:
            lock.close()
        return
    raise KitError(f"no free block of ports among {SLOTS} from {SLOT_BASE} (locks in {lock_dir})")


@dataclass
class Kit:
    """Both instances of one session: the PBX under test and the phone farm, in ``workdir``."""

    kit: Path
    prefix: Path
    workdir: Path
    ports: Ports
    ami_user: str
    ami_secret: str

    @property
    def run_log(self) -> Path:
        return self.workdir / "run.log"

    def log(self, instance: str) -> Path:
        return self.workdir / instance / "log" / "messages.log"

    def etc(self, instance: str) -> Path:
        return self.workdir / instance / "etc"

    def _env(self, keep_config: bool) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.ports.env())
        env.update(AMI_USER=self.ami_user, AMI_SECRET=self.ami_secret, ARI_APP="b24bridge")
        env.update(PHONE_DEFAULT="answer,1,0", QUALIFY_FREQUENCY="10", ASTKIT_KEEP_CONFIG="1" if keep_config else "0")
        return env

    def _run(self, action: str, *, keep_config: bool = False) -> None:
        with open(self.run_log, "a") as out:
            try:
                done = subprocess.run(
                    [self.kit / "run.sh", self.prefix, self.workdir, action],
                    env=self._env(keep_config), stdout=out, stderr=subprocess.STDOUT, check=False, timeout=RUN_TIMEOUT,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise KitError(f"run.sh {action} took over {RUN_TIMEOUT:g} s; see {self.run_log}") from exc
        if done.returncode != 0:
            raise KitError(
                f"run.sh {action} failed (exit {done.returncode}); see {self.run_log} and "
                f"{self.log('pbx')}, {self.log('phones')}\n{_tail(self.run_log)}"
            )

    def start(self, *, keep_config: bool = False) -> None:
        """Start both instances; with ``keep_config`` the config files already in ``workdir`` are used as they are."""
        self._run("start", keep_config=keep_config)

    def stop(self) -> None:
        self._run("stop")

    def cli(self, instance: str, command: str) -> str:
        """One Asterisk CLI command on ``instance`` (``pbx`` or ``phones``); its output."""
        conf = self.etc(instance) / "asterisk.conf"
        done = subprocess.run(
            [self.prefix / "sbin" / "asterisk", "-C", conf, "-rx", command],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        if done.returncode != 0:
            raise KitError(f"CLI {command!r} on {instance} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout
