"""The ``asterisk-conf/`` samples on a real Asterisk: the session's PBX runs on them (tests/real/samples.py installs
them as their README says), so every call of this layer goes through them; here the parts no call shows.
"""

from __future__ import annotations

import base64
import re

import aiohttp
import pytest

from bridge.check import check
from tests.real.ami import Ami
from tests.real.samples import SAMPLES
from tests.real.site import RealPbx, Site


def test_the_samples_load_without_a_complaint(real_pbx: RealPbx) -> None:
    complaints = [line for line in real_pbx.boot_log.splitlines() if re.search(r"\] (ERROR|WARNING)\[", line)]
    assert complaints == [], "\n".join(complaints)
    assert "Asterisk Ready." in real_pbx.boot_log


def test_the_sample_dialplan_is_what_asterisk_runs(real_pbx: RealPbx) -> None:
    cli = real_pbx.kit.cli
    inbound = cli("pbx", "dialplan show from-trunk")
    assert "Stasis(${B24_APP},inbound,${EXTEN})" in inbound
    assert "'74951112299'" in inbound and "Dial(PJSIP/1001&PJSIP/1002,40)" in inbound  # the monitor-only line
    assert "Stasis(${B24_APP},intercept,${CALLERID(num)},*8)" in cli("pbx", "dialplan show *8@phones")
    assert "Stasis(${B24_APP},intercept,${CALLERID(num)},*9)" in cli("pbx", "dialplan show *9@phones")
    outbound = cli("pbx", "dialplan show from-agents")
    assert "MixMonitor(${ASTSPOOLDIR}/recording/out-${UNIQUEID}.wav,b)" in outbound
    assert "Dial(PJSIP/${EXTEN}@trunk,60)" in outbound
    assert "B24_APP=b24bridge" in cli("pbx", "dialplan show globals")


def test_the_sample_trunk_registers_with_its_credentials(real_pbx: RealPbx) -> None:
    registrations = real_pbx.kit.cli("pbx", "pjsip show registrations")
    assert re.search(r"trunk/sip:127\.0\.0\.1:\d+\s+trunk-auth\s+Registered", registrations), registrations
    endpoints = real_pbx.kit.cli("pbx", "pjsip show endpoints")
    for name in ("1001", "1002", "trunk"):
        assert re.search(rf"Endpoint:\s+{name}\b", endpoints), endpoints


async def test_the_sample_ami_user_has_the_least_privilege_it_documents(real_pbx: RealPbx) -> None:
    ami = await Ami.connect(real_pbx.kit.ports.pbx_ami, "b24bridge", real_pbx.secrets.ami_secret, "sample")
    try:
        pong = await ami.action("Ping")  # all that `b24-bridge check` asks of AMI
        assert pong.get("Response") == "Success", pong
        cli = await ami.action("Command", Command="core show version")  # the CLI is not the bridge's
        assert cli.get("Response") == "Error" and "Permission denied" in cli.get("Message", ""), cli
        listing = await ami.listing("DeviceStateList")
        assert {"PJSIP/1001", "PJSIP/1009"} <= {e.get("Device") for e in listing}
        refused = await ami.action("Setvar", Variable="SOMETHING", Value="1")
        assert refused.get("Response") == "Error" and "Permission denied" in refused.get("Message", ""), refused
    finally:
        await ami.close()
    user = real_pbx.kit.cli("pbx", "manager show user b24bridge")
    for perm in ("read", "write"):
        shown = re.search(rf"{perm} perm: (\S*)", user)
        assert shown is not None, user
        assert set(shown.group(1).split(",")) == sample_classes(perm), user


def sample_classes(perm: str) -> set[str]:
    """The classes the sample manager.conf gives its user for ``read`` or ``write``."""
    found = re.search(rf"^{perm}\s*=\s*(\S+)", (SAMPLES / "manager.conf").read_text(), re.MULTILINE)
    assert found is not None, f"asterisk-conf/manager.conf has no {perm} line"
    return set(found.group(1).split(","))


@pytest.mark.parametrize(("password", "status"), [("right", 200), ("wrong", 401)])
async def test_the_sample_ari_user(real_pbx: RealPbx, password: str, status: int) -> None:
    secret = real_pbx.secrets.ari_password if password == "right" else "not-" + real_pbx.secrets.ari_password
    auth = {"Authorization": "Basic " + base64.b64encode(f"b24bridge:{secret}".encode()).decode()}
    url = f"http://127.0.0.1:{real_pbx.kit.ports.pbx_http}/ari/asterisk/info"
    async with aiohttp.ClientSession(headers=auth) as session, session.get(url) as response:
        assert response.status == status


async def test_b24_bridge_check_passes_on_the_sample_setup(real_site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert await check(real_site.daemon.settings) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("ok ", "FAIL "))]
    assert all(line.startswith("ok ") for line in lines), lines
    assert [line.split()[1] for line in lines][:3] == ["ari", "ami", "bitrix24"], lines
    assert "Asterisk 20.20.1" in lines[0] and "the app is connected" in lines[0]
