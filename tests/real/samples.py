"""The repository's ``asterisk-conf/`` samples, installed into the kit's PBX the way its README tells an operator.

An operator copies the samples, changes every ``CHANGE-ME`` and adapts the addresses. Here the addresses are the
session's ports, the agents' passwords are the ones the phone farm registers with, and the "provider" the sample
trunk registers to and dials is the phone farm (an account and a robot added to it). :func:`adapt` insists that
every text it replaces is there, so a sample that changes shape fails the layer instead of being skipped over.

The kit's generated files keep what the test harness itself needs, appended after the sample under a marked
comment: its own AMI/ARI user (``run.sh`` checks readiness with it), the agents 1003..1010 and the inbound caller
robot ``[callers]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.real.kit import REPO, Kit

SAMPLES = REPO / "asterisk-conf"
TRUNK_ACCOUNT = "74951112233"
"""The sample trunk's account at the provider (its ``username`` and ``from_user``)."""
PROVIDER_HOST = "sip.example-provider.net"
NOBODY = "192.0.2.1"
"""The provider's address for the sample's ``identify``: the farm shares 127.0.0.1 with the phones, and matching
that address would take every phone's REGISTER for the trunk; a real provider has an address of its own."""
HARNESS = "\n; ---- test harness (tests/real), not part of the sample ----\n"

SITE_MONITOR_LINE = """
[from-trunk]
; The site's own monitor-only line (bridge.toml: monitor_lines = ["74951112299"]): its dialplan rings a group
; itself and the bridge only watches it on AMI. A context named again adds to the generated one; an exact number
; wins over the generated _X. pattern.
exten => 74951112299,1,NoOp(Monitor-only line ${EXTEN}: call from ${CALLERID(all)})
 same => n,MixMonitor(${ASTSPOOLDIR}/recording/in-${UNIQUEID}.wav,b)
 same => n,Dial(PJSIP/1001&PJSIP/1002,40)
 same => n,Hangup()
"""


@dataclass(frozen=True)
class Credentials:
    """The secrets an operator puts in place of the samples' ``CHANGE-ME``."""

    ari_password: str
    ami_secret: str
    trunk_password: str


def adapt(name: str, text: str, changes: dict[str, str]) -> str:
    for old, new in changes.items():
        if old not in text:
            raise AssertionError(f"asterisk-conf/{name} no longer contains {old!r}: update tests/real/samples.py")
        text = text.replace(old, new)
    return text


def sections(text: str) -> list[tuple[str, str]]:
    """A generated config file as (section name, its text) in order; the name of any lines before the first
    section is ``""``."""
    found: list[tuple[str, str]] = []
    name, lines = "", list[str]()
    for line in text.splitlines(keepends=True):
        header = re.match(r"\[([^\]]+)\]", line)
        if header:
            found.append((name, "".join(lines)))
            name, lines = header.group(1), []
        lines.append(line)
    found.append((name, "".join(lines)))
    return found


def section_text(text: str, wanted: set[str]) -> str:
    return "".join(body for name, body in sections(text) if name in wanted)


def without_sections(text: str, unwanted: set[str]) -> str:
    return "".join(body for name, body in sections(text) if name not in unwanted)


def install(kit: Kit, secrets: Credentials) -> None:
    """Write the samples (adapted) into the PBX's config and the provider account into the farm's."""
    pbx, farm = kit.etc("pbx"), kit.etc("phones")
    ports = kit.ports

    def sample(name: str) -> str:
        return (SAMPLES / name).read_text()

    def generated(path: Path) -> str:
        return path.read_text()

    (pbx / "http.conf").write_text(
        adapt("http.conf", sample("http.conf"), {"bindport = 8088": f"bindport = {ports.pbx_http}"})
    )
    ari = adapt("ari.conf", sample("ari.conf"), {"CHANGE-ME-ari-password": secrets.ari_password})
    (pbx / "ari.conf").write_text(ari + HARNESS + section_text(generated(pbx / "ari.conf"), {kit.ami_user}))
    manager = adapt(
        "manager.conf",
        sample("manager.conf"),
        {"port = 5038": f"port = {ports.pbx_ami}", "CHANGE-ME-ami-secret": secrets.ami_secret},
    )
    (pbx / "manager.conf").write_text(manager + HARNESS + section_text(generated(pbx / "manager.conf"), {kit.ami_user}))
    (pbx / "extensions.conf").write_text(
        sample("extensions.conf")
        + SITE_MONITOR_LINE
        + HARNESS
        + section_text(generated(pbx / "extensions.conf"), {"callers"})
    )
    provider = f"127.0.0.1:{ports.phones_sip}"
    pjsip = adapt(
        "pjsip.conf",
        sample("pjsip.conf"),
        {
            "bind = 0.0.0.0:5060": f"bind = 127.0.0.1:{ports.pbx_sip}",
            "CHANGE-ME-1001": "1001-secret",
            "CHANGE-ME-1002": "1002-secret",
            "CHANGE-ME-trunk": secrets.trunk_password,
            f"match = {PROVIDER_HOST}": f"match = {NOBODY}",
            PROVIDER_HOST: provider,
        },
    )
    kept = without_sections(generated(pbx / "pjsip.conf"), {"transport-udp", "1001", "1002"})
    (pbx / "pjsip.conf").write_text(pjsip + HARNESS + kept)
    # `make install` creates ARI's stored-recordings directory on a real site; the kit's fresh spool lacks it, and
    # without it Asterisk answers a bridge's record with 500 ("No such file or directory")
    (kit.workdir / "pbx" / "spool" / "recording").mkdir(parents=True, exist_ok=True)
    with open(farm / "pjsip.conf", "a") as out:
        out.write(HARNESS + _provider_account(secrets.trunk_password))
    with open(farm / "extensions.conf", "a") as out:
        out.write(HARNESS + PROVIDER_DIALPLAN)


def _provider_account(password: str) -> str:
    """The trunk's account at the "provider": it takes the PBX's REGISTER and INVITEs (authenticated)."""
    return f"""
[{TRUNK_ACCOUNT}]
type = endpoint
transport = transport-udp
context = provider
disallow = all
allow = ulaw,gsm
auth = {TRUNK_ACCOUNT}-auth
aors = {TRUNK_ACCOUNT}
direct_media = no
rtp_symmetric = yes
media_address = 127.0.0.1
bind_rtp_to_media_address = yes
[{TRUNK_ACCOUNT}]
type = aor
max_contacts = 1
remove_existing = yes
[{TRUNK_ACCOUNT}-auth]
type = auth
auth_type = userpass
username = {TRUNK_ACCOUNT}
password = {password}
"""


PROVIDER_DIALPLAN = r"""
; the outside world behind the trunk: global EXT_<number> = "result,ring_secs,talk_secs" (AMI Setvar),
; else it rings 1 s and talks until the PBX hangs up
[provider]
exten => _X.,1,NoOp(PROVIDER call to ${EXTEN} from ${CALLERID(all)})
 same => n,Set(R_CFG=${GLOBAL(EXT_${EXTEN})})
 same => n,GotoIf($["${R_CFG}" != ""]?run)
 same => n,Set(R_CFG=answer,1,0)
 same => n(run),Goto(robot,s,1)
"""
