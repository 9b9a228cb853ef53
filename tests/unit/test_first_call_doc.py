"""docs/first-call.md walks an operator from a bare machine to a first call: what it tells them to type, the keys
it names, the AMI rights it promises and the log lines it quotes must be those of this code and these samples."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import bridge.logs
from bridge.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "first-call.md").read_text(encoding="utf-8")
EXAMPLE = (ROOT / "bridge.example.toml").read_text(encoding="utf-8")
SAMPLES = ROOT / "asterisk-conf"
DOCUMENTED = set(re.findall(r"^``([a-z_]+\.[a-z_]+)``", bridge.logs.__doc__ or "", re.M))


def subcommands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # argparse keeps the subcommands there
    return set(sub.choices or {})


def test_the_readme_links_the_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count("(docs/first-call.md)") >= 2  # Contents and "Running it"


def test_every_command_it_gives_parses() -> None:
    """Each ``b24-bridge COMMAND ...`` in the page's shell blocks is accepted by the CLI as written, options and
    all; the commands its prose names exist."""
    shell = "\n".join(re.findall(r"```sh\n(.*?)```", DOC, re.S))
    given = re.findall(r"(?:/bin/|(?<![\w/.-]))b24-bridge ([a-z]+(?:-[a-z]+)?\b[^`'\n|;)]*)", shell)
    assert {g.split()[0] for g in given} >= {"check-config", "check", "dialplan"}
    for command in given:
        build_parser().parse_args(shlex.split(command))  # SystemExit (a failed test) on a wrong command or option
    named = set(re.findall(r"`b24-bridge ([a-z]+(?:-[a-z]+)?)[ `]", DOC))
    assert {"check", "journal"} <= named <= subcommands()


def test_every_config_key_it_names_is_in_the_example() -> None:
    keys = set(re.findall(r"`(?:asterisk|bitrix24|http|journal|routing)\.([a-z_]+)`", DOC))
    keys |= set(re.findall(r"`([a-z_]+) = ", DOC))
    keys -= {"conf"}  # `http.conf`, a file
    keys -= {"type", "client_uri", "contact_user", "context", "write", "read"}  # pjsip.conf's, manager.conf's
    assert {"ari_url", "events_url", "token_file", "client_secret_env", "device"} <= keys
    # a secret's <key>_env is documented once for all (`<key>_env = "VAR"`): its <key> must be there
    missing = {key for key in keys if not re.search(rf"\b{key.removesuffix('_env')}\s*=", EXAMPLE)}
    assert not missing, f"the page names keys bridge.example.toml does not have: {missing}"


def ami_classes(perm: str, text: str) -> set[str]:
    """The classes ``perm = a,b`` gives: in the sample its own line, on the page in backticks."""
    found = re.search(rf"^{perm} = ([a-z,]+)$|`{perm} = ([a-z,]+)`", text, re.M)
    assert found is not None, perm
    return set((found.group(1) or found.group(2)).split(","))


def test_the_ami_rights_it_promises_are_the_samples() -> None:
    sample = (SAMPLES / "manager.conf").read_text(encoding="utf-8")
    for perm in ("read", "write"):
        assert ami_classes(perm, DOC) == ami_classes(perm, sample)
    assert "command" not in ami_classes("write", sample) and "system" not in ami_classes("write", sample)


def test_the_sample_trunk_registers_the_did_as_its_contact() -> None:
    """Without contact_user Asterisk registers "s": the provider's calls would miss every line in [from-trunk]."""
    pjsip = (SAMPLES / "pjsip.conf").read_text(encoding="utf-8")
    registration = pjsip[pjsip.index("type = registration") : pjsip.index("[trunk-auth]")]
    did = re.search(r"client_uri = sip:(\d+)@", registration)
    assert did is not None
    assert f"contact_user = {did.group(1)}" in registration
    assert f'`[lines."{did.group(1)}"]`' in DOC


def test_the_quoted_log_is_one_call_in_order_with_documented_events() -> None:
    block = DOC[DOC.index("```json\n") + len("```json\n") :]
    lines = [json.loads(raw) for raw in block[: block.index("```")].splitlines()]
    assert len(lines) >= 10
    assert {line["event"] for line in lines} <= DOCUMENTED
    assert {(line["call_id"], line["line"]) for line in lines} == {(lines[0]["call_id"], lines[0]["line"])}
    assert all("linkedid" in line for line in lines)
    assert all(not line["call_id"].startswith("externalCall.") for line in lines)
    assert [line["timestamp"] for line in lines] == sorted(line["timestamp"] for line in lines)
    events = [line["event"] for line in lines]
    assert events[0] == "call.started" and "call.ended" in events
    for needed in ("leg.ringing", "leg.released", "call.transition", "crm.queued", "crm.delivered"):
        assert needed in events, needed
    methods = [line["method"] for line in lines if line["event"] == "crm.delivered"]
    assert methods[0] == "telephony.externalCall.register" and "telephony.externalCall.finish" in methods
