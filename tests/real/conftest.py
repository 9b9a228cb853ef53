"""The real-PBX layer's fixtures: one kit per session (built once into the cache, started on ports of its own,
set up with the ``asterisk-conf`` samples, stopped at the end even on failure) and one site per test.

Where the kit cannot be found, built or started, every test of the layer fails with the reason; none skips.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.real import samples
from tests.real.kit import Kit, KitError, ensure_built, kit_dir, prefix, reserve_ports
from tests.real.site import RealPbx, Site, site

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test waits for the build (minutes on a fresh machine): here the per-test timeout counts the test
    alone, not the session's set-up."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.timeout(240, func_only=True))


@pytest.fixture(scope="session")
def real_pbx(request: pytest.FixtureRequest) -> Iterator[RealPbx]:
    problem = ""
    try:
        kit, where = kit_dir(), prefix()
        ensure_built(kit, where)
    except KitError as exc:
        problem = str(exc)
    if problem:  # failed outside the except block: the message alone, without a chained traceback
        pytest.fail(f"the real-PBX layer needs the Asterisk kit: {problem}", pytrace=False)
    with reserve_ports(where.parent / "ports") as ports:
        # short: the control socket's path must stay under the AF_UNIX limit (run.sh refuses 90 characters)
        workdir = Path(tempfile.mkdtemp(prefix="b24r-", dir="/tmp"))
        running = Kit(kit, where, workdir, ports, ami_user="astkit", ami_secret=secrets.token_hex(12))
        creds = samples.Credentials(
            ari_password=secrets.token_urlsafe(18), ami_secret=secrets.token_urlsafe(18),
            trunk_password=secrets.token_urlsafe(12),
        )  # fmt: skip
        try:
            try:
                # the first start writes the kit's config; the samples go in over it and Asterisk starts on them
                running.start()
                running.stop()
                samples.install(running, creds)
                for instance in ("pbx", "phones"):  # what the start on the samples logs, alone
                    running.log(instance).rename(running.log(instance).with_suffix(".kit-config.log"))
                running.start(keep_config=True)
            except KitError as exc:
                problem = str(exc)
            if problem:
                pytest.fail(f"the kit's Asterisk did not start: {problem}", pytrace=False)
            yield RealPbx(running, creds, boot_log=running.log("pbx").read_text())
        finally:
            try:
                running.stop()
            finally:
                if problem or request.session.testsfailed:
                    print(f"\nreal PBX logs kept in {workdir}")
                else:
                    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def real_site(real_pbx: RealPbx, tmp_path: Path) -> AsyncIterator[Site]:
    async with site(real_pbx, tmp_path) as s:
        yield s
