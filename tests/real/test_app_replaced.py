"""What Asterisk 20 does when a second WebSocket subscribes to the bridge's application: it hands the application to
the newest socket and sends ``ApplicationReplaced`` to the older one, which stays open but silent (res/stasis/app.c
``app_update``). The older link must stop for good, not take it back."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from bridge.config import AsteriskSettings, Secret
from bridge.pbx.ari import AriLink
from bridge.pbx.events import PbxEvent
from tests.eventually import eventually
from tests.real.site import RealPbx


def link(pbx: RealPbx) -> tuple[AriLink, asyncio.Queue[PbxEvent]]:
    ports = pbx.kit.ports
    settings = AsteriskSettings(
        ari_url=f"http://127.0.0.1:{ports.pbx_http}", ari_user="b24bridge",
        ari_password=Secret(pbx.secrets.ari_password), app="b24bridge", ami_host="127.0.0.1",
        ami_port=ports.pbx_ami, ami_secret=Secret(pbx.secrets.ami_secret),
        reconnect_max_delay=0.5,
    )  # fmt: skip
    queue: asyncio.Queue[PbxEvent] = asyncio.Queue()
    return AriLink(settings, queue), queue


async def test_a_second_subscriber_replaces_the_first_which_stops(real_pbx: RealPbx) -> None:
    (first, _), (second, _) = link(real_pbx), link(real_pbx)
    first.retry_initial = second.retry_initial = 0.05
    with capture_logs() as logs:
        first_task = asyncio.create_task(first.run())
        await eventually(lambda: first.connected, timeout=15)
        second_task = asyncio.create_task(second.run())
        try:
            await eventually(lambda: second.connected and first_task.done(), timeout=15)
            assert first.replaced.is_set() and not second.replaced.is_set()
            app = await second.request("applications", "get", applicationName="b24bridge")
            assert app["name"] == "b24bridge"
        finally:
            await second.stop()
            await first.stop()
            await asyncio.gather(first_task, second_task)
    assert [e["event"] for e in logs].count("pbx.app_replaced") == 1
    assert "Replacing Stasis app 'b24bridge'" in real_pbx.kit.log("pbx").read_text()
