"""What the REST client makes of a portal's HTTP beyond the simulator's: redirects, silence, its connections."""

from __future__ import annotations

import asyncio

import pytest

from bridge.config import Bitrix24Settings
from bridge.config.reader import Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.errors import PermanentCrmError, TransientCrmError
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.adapters.http_peer import HttpPeer, ok
from tests.eventually import eventually

CODE = "httpLeanS3cretC0de"


def settings(peer: HttpPeer, timeout: float = 30.0) -> Bitrix24Settings:
    return Bitrix24Settings(webhook_url=Secret(peer.url(f"/rest/1/{CODE}/")), request_timeout=timeout)


async def test_a_portal_that_moved_for_good_is_a_permanent_error_naming_the_new_address() -> None:
    async def moved(number: int, head: bytes, body: bytes) -> bytes:
        where = b"https://new.example.com/rest/1/%s/user.get.json" % CODE.encode()
        return b"HTTP/1.1 301 Moved Permanently\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % where

    async with HttpPeer(moved) as peer, Bitrix24Client(settings(peer)) as client:
        with pytest.raises(PermanentCrmError) as caught:
            await client.call("user.get")
    assert caught.value.code == "ERROR_REDIRECT" and caught.value.status == 301
    assert "https://new.example.com/rest/1/" in str(caught.value)
    assert CODE not in str(caught.value) + repr(caught.value)
    assert len(peer.requests) == 1


async def test_a_temporary_redirect_is_followed_to_the_portal_with_the_same_request() -> None:
    async with Bitrix24Simulator(webhook=f"1/{CODE}") as sim:

        async def to_sim(number: int, head: bytes, body: bytes) -> bytes:
            path = head.split(b" ")[1].decode()
            where = sim.url.rstrip("/").encode() + path.encode()
            return b"HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % where

        async with HttpPeer(to_sim) as peer, Bitrix24Client(settings(peer), retry_attempts=1) as client:
            departments = await client.call("department.get")
    assert [d["NAME"] for d in departments] == ["Call centre", "Sales", "Support"]
    assert len(peer.requests) == 1


async def test_a_silent_portal_is_a_transient_network_error_after_the_request_timeout() -> None:
    answered = asyncio.Event()

    async def silent(number: int, head: bytes, body: bytes) -> bytes:
        await answered.wait()
        return ok()

    async with HttpPeer(silent) as peer:
        async with Bitrix24Client(settings(peer, timeout=0.3), retry_attempts=1) as client:
            with pytest.raises(TransientCrmError) as caught:
                await client.call("user.get")
        answered.set()
    assert caught.value.code == "NETWORK_ERROR" and "TimeoutError" in str(caught.value)
    assert client.stats.errors == 1


async def test_closing_the_client_closes_its_connections() -> None:
    async with HttpPeer(lambda number, head, body: asyncio.sleep(0, ok())) as peer:
        async with Bitrix24Client(settings(peer)) as client:
            assert await client.call("user.get") is True
            assert await client.call("user.get") is True
        await eventually(lambda: peer.ended_by_client == 1)
    assert peer.connections == 1
