"""The lean HTTP/1.1 client of the REST POSTs against scripted servers over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
import uvloop
from yarl import URL

from bridge.crm.http11 import (
    KEEPALIVE,
    MAX_REDIRECTS,
    BadAnswer,
    CannotConnect,
    LeanHttp,
    ServerDisconnected,
    TooManyRedirects,
)
from tests.adapters.http_peer import HttpPeer, ok
from tests.eventually import eventually

HEADERS = {"User-Agent": "b24-bridge/test", "Content-Type": "application/json"}


async def echo(number: int, head: bytes, body: bytes) -> bytes:
    return ok(b'{"n": %d, "got": %s}' % (number, body))


async def post(http: LeanHttp, url: str, body: bytes = b"{}", timeout: float = 10.0) -> tuple[int, bytes]:
    status, answer, _ = await http.post(URL(url), body, timeout)
    return status, answer


async def test_requests_go_one_after_another_over_one_keep_alive_connection() -> None:
    async with HttpPeer(echo) as peer:
        http = LeanHttp(HEADERS)
        answers = [await post(http, peer.url(), b'{"i": %d}' % i) for i in range(3)]
        await http.close()
    assert answers == [(200, b'{"n": %d, "got": {"i": %d}}' % (i, i)) for i in range(3)]
    assert peer.connections == 1
    first = peer.requests[0]
    assert first.head.startswith(b"POST /rest/1/c0de/batch.json HTTP/1.1\r\n")
    assert first.header("Host") == f"127.0.0.1:{peer.port}"
    assert first.header("User-Agent") == "b24-bridge/test"
    assert first.header("Content-Length") == str(len(b'{"i": 0}'))


async def test_requests_at_once_each_have_their_own_connection_and_answer() -> None:
    all_in = asyncio.Event()

    async def when_all_arrived(number: int, head: bytes, body: bytes) -> bytes:
        if number == 2:
            all_in.set()
        await all_in.wait()
        return ok(body)

    async with HttpPeer(when_all_arrived) as peer:
        http = LeanHttp(HEADERS)
        answers = await asyncio.gather(*(post(http, peer.url(), b'"%d"' % i) for i in range(3)))
        assert http.idle() == 3
        await http.close()
    assert answers == [(200, b'"%d"' % i) for i in range(3)]
    assert peer.connections == 3


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    async with HttpPeer(echo, close_after_answer=True) as peer:
        http = LeanHttp(HEADERS)
        assert await post(http, peer.url()) == (200, b'{"n": 0, "got": {}}')
        await eventually(lambda: http.idle() == 0)
        assert await post(http, peer.url()) == (200, b'{"n": 1, "got": {}}')
        await http.close()
    assert peer.connections == 2


async def test_an_idle_connection_is_dropped_after_the_keepalive_time(monkeypatch: pytest.MonkeyPatch) -> None:
    async with HttpPeer(echo) as peer:
        http = LeanHttp(HEADERS)
        await post(http, peer.url())
        loop = asyncio.get_running_loop()
        later = loop.time() + KEEPALIVE + 1
        monkeypatch.setattr(loop, "time", lambda: later)
        await post(http, peer.url())
        monkeypatch.undo()
        await eventually(lambda: peer.ended_by_client == 1)
        await http.close()
    assert peer.connections == 2


TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"


async def test_an_answer_nobody_asked_for_retires_the_connection() -> None:
    async def twice(number: int, head: bytes, body: bytes) -> bytes:
        return ok(b'"%d"' % number) + (TIMED_OUT if number == 0 else b"")

    async with HttpPeer(twice) as peer:
        http = LeanHttp(HEADERS)
        assert await post(http, peer.url()) == (200, b'"0"')
        assert await post(http, peer.url()) == (200, b'"1"')
        await http.close()
    assert peer.connections == 2


async def test_bytes_on_an_idle_connection_retire_it() -> None:
    async with HttpPeer(echo) as peer:
        http = LeanHttp(HEADERS)
        await post(http, peer.url())
        peer.writers[0].write(TIMED_OUT)  # as a server that times an idle connection out, and keeps it open
        await eventually(lambda: http.idle() == 0)
        assert await post(http, peer.url()) == (200, b'{"n": 1, "got": {}}')
        await http.close()
    assert peer.connections == 2


async def test_a_connection_close_answer_ends_the_connection() -> None:
    async def closing(number: int, head: bytes, body: bytes) -> bytes:
        return ok(extra=b"Connection: close\r\n")

    async with HttpPeer(closing) as peer:
        http = LeanHttp(HEADERS)
        assert await post(http, peer.url()) == (200, b'{"result": true}')
        assert http.idle() == 0
        await eventually(lambda: peer.ended_by_client == 1)  # the client closed it, though the server kept it open
        assert await post(http, peer.url()) == (200, b'{"result": true}')
        await http.close()
    assert peer.connections == 2


async def test_a_chunked_answer_in_pieces_is_read_whole_and_the_connection_kept() -> None:
    async def chunked(number: int, head: bytes, body: bytes) -> bytes:
        return b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'

    async with HttpPeer(chunked) as peer:
        http = LeanHttp(HEADERS)
        assert await post(http, peer.url()) == (200, b'{"a": 1}')
        assert await post(http, peer.url()) == (200, b'{"a": 1}')
        await http.close()
    assert peer.connections == 1


async def test_an_interim_answer_is_skipped_for_the_real_one() -> None:
    async def continuing(number: int, head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 100 Continue\r\n\r\n" + ok(body)

    async with HttpPeer(continuing) as peer:
        http = LeanHttp(HEADERS)
        assert await post(http, peer.url(), b"[1]") == (200, b"[1]")
        assert await post(http, peer.url(), b"[2]") == (200, b"[2]")
        await http.close()
    assert peer.connections == 1


async def test_an_answer_without_length_runs_to_the_close() -> None:
    async def unframed(number: int, head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.0 502 Bad Gateway\r\nContent-Type: text/html\r\n\r\n<html>502 Bad Gateway</html>"

    async with HttpPeer(unframed, close_after_answer=True) as peer:
        http = LeanHttp(HEADERS)
        assert await post(http, peer.url()) == (502, b"<html>502 Bad Gateway</html>")
        await http.close()


async def test_a_server_closing_without_a_whole_answer_is_a_disconnect() -> None:
    async def half(number: int, head: bytes, body: bytes) -> bytes | None:
        return None if number == 0 else b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"result":'

    async with HttpPeer(half, close_after_answer=True) as peer:
        http = LeanHttp(HEADERS)
        for _ in range(2):
            with pytest.raises(ServerDisconnected):
                await post(http, peer.url())
        await http.close()


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"res', ServerDisconnected),
        (b'HTTP/1.1 200 OK\r\ncontent-length:  90 \r\n\r\n{"res', ServerDisconnected),
        (b'HTTP/1.1 200 OK\r\nX-Length: 90\r\n\r\n{"res', (200, b'{"res')),
        (b"HTTP/1.1 302 Found\r\nLocation: /a\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n", (302, b"", "/b")),
        (b"HTTP/1.1 200 OK\r\nLocation: /a\r\nContent-Length: 2\r\n\r\n{}", (200, b"{}", None)),
    ],
)
async def test_the_final_answers_own_headers_decide_after_an_interim_answer_in_pieces(
    answer: bytes, outcome: object
) -> None:
    """The interim answer's headers (a length, a location) are not the final answer's."""
    interim = b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\nLocation: /interim\r\n\r\n"
    whole = interim + answer

    async def pieces(number: int, head: bytes, body: bytes) -> bytes:
        for i in range(0, len(whole), 7):  # the head in several reads
            peer.writers[-1].write(whole[i : i + 7])
            await asyncio.sleep(0.002)
        return b""

    async with HttpPeer(pieces, close_after_answer=True) as peer:
        http = LeanHttp(HEADERS)
        if outcome is ServerDisconnected:
            with pytest.raises(ServerDisconnected):
                await post(http, peer.url())
        elif isinstance(outcome, tuple) and len(outcome) == 3:
            assert tuple(await http.post(URL(peer.url()), b"{}", 10.0)) == outcome
        else:
            assert await post(http, peer.url()) == outcome
        await http.close()


async def test_bytes_that_are_not_http_are_a_bad_answer() -> None:
    async def garbage(number: int, head: bytes, body: bytes) -> bytes:
        return b"SSH-2.0-OpenSSH_9.2\r\n\r\n"

    async with HttpPeer(garbage) as peer:
        http = LeanHttp(HEADERS)
        with pytest.raises(BadAnswer):
            await post(http, peer.url())
        await http.close()


async def test_a_silent_server_meets_the_deadline_and_its_connection_is_dropped() -> None:
    answered = asyncio.Event()

    async def silent_once(number: int, head: bytes, body: bytes) -> bytes:
        if number == 0:
            await answered.wait()
        return ok(b'"%d"' % number)

    async with HttpPeer(silent_once) as peer:
        http = LeanHttp(HEADERS)
        with pytest.raises(TimeoutError):
            await post(http, peer.url(), timeout=0.3)
        assert await post(http, peer.url()) == (200, b'"1"')
        answered.set()  # the first request's late answer goes to a connection the client has dropped
        await http.close()
    assert peer.connections == 2  # the late answer of the first request can never be taken for the second's


async def test_307_and_308_are_followed_with_the_same_post(unused_tcp_port: int) -> None:
    async with HttpPeer(echo) as target:

        async def moving(number: int, head: bytes, body: bytes) -> bytes:
            if number == 0:
                return b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /rest/moved.json\r\nContent-Length: 0\r\n\r\n"
            location = target.url("/rest/final.json").encode()
            return b"HTTP/1.1 308 Permanent Redirect\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location

        async with HttpPeer(moving) as first:
            http = LeanHttp(HEADERS)
            assert await post(http, first.url(), b'{"x": 1}') == (200, b'{"n": 0, "got": {"x": 1}}')
            await http.close()
    assert [r.head.split(b"\r\n")[0] for r in first.requests] == [
        b"POST /rest/1/c0de/batch.json HTTP/1.1", b"POST /rest/moved.json HTTP/1.1",
    ]  # fmt: skip
    assert first.connections == 1 and [r.body for r in first.requests] == [b'{"x": 1}'] * 2
    assert target.requests[0].head.startswith(b"POST /rest/final.json HTTP/1.1")


async def test_other_redirects_come_back_with_their_location() -> None:
    async def moved(number: int, head: bytes, body: bytes) -> bytes:
        where = b"https://new.example/rest/x.json"
        return b"HTTP/1.1 301 Moved Permanently\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % where

    async with HttpPeer(moved) as peer:
        http = LeanHttp(HEADERS)
        assert await http.post(URL(peer.url()), b"{}", 10.0) == (301, b"", "https://new.example/rest/x.json")
        await http.close()
    assert len(peer.requests) == 1


async def test_a_redirect_loop_ends() -> None:
    async def loop(number: int, head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n"

    async with HttpPeer(loop) as peer:
        http = LeanHttp(HEADERS)
        with pytest.raises(TooManyRedirects):
            await post(http, peer.url())
        await http.close()
    assert len(peer.requests) == MAX_REDIRECTS + 1


@pytest.mark.parametrize("location", [b"ftp://127.0.0.1/x", b"http://[::1"])
async def test_a_redirect_to_an_address_that_is_not_http_is_a_bad_answer(location: bytes) -> None:
    async def odd(number: int, head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 308 Permanent Redirect\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location

    async with HttpPeer(odd) as peer:
        http = LeanHttp(HEADERS)
        with pytest.raises(BadAnswer):
            await post(http, peer.url())
        await http.close()


async def test_close_ends_the_idle_connections() -> None:
    async with HttpPeer(echo) as peer:
        http = LeanHttp(HEADERS)
        await post(http, peer.url())
        await http.close()
        await eventually(lambda: peer.ended_by_client == 1)
        assert http.idle() == 0
        await post(http, peer.url())  # usable again: a new connection
        await http.close()
    assert peer.connections == 2


async def test_a_refused_connection_says_the_request_never_left(unused_tcp_port: int) -> None:
    http = LeanHttp(HEADERS)
    with pytest.raises(CannotConnect) as caught:
        await post(http, f"http://127.0.0.1:{unused_tcp_port}/rest/x.json")
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_the_path_works_on_uvloop() -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        async with HttpPeer(echo) as peer:
            http = LeanHttp(HEADERS)
            answers = [await post(http, peer.url(), b"[%d]" % i) for i in range(2)]
            await http.close()
        assert peer.connections == 1
        return answers

    assert uvloop.run(scenario()) == [(200, b'{"n": 0, "got": [0]}'), (200, b'{"n": 1, "got": [1]}')]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_checks_the_certificate_and_the_host_name(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with HttpPeer(echo, tls=server) as peer:
        http = LeanHttp(HEADERS, tls=trusting)
        assert await post(http, peer.url(host="localhost"), b"[1]") == (200, b'{"n": 0, "got": [1]}')
        assert await post(http, peer.url(host="localhost"), b"[2]") == (200, b'{"n": 1, "got": [2]}')
        assert peer.connections == 1
        with pytest.raises(CannotConnect) as wrong_name:  # the certificate names localhost, not 127.0.0.1
            await post(http, peer.url(host="127.0.0.1"))
        await http.close()
        system = LeanHttp(HEADERS)  # the system's CAs do not know a self-signed certificate
        with pytest.raises(CannotConnect) as unknown:
            await post(system, peer.url(host="localhost"))
    assert isinstance(wrong_name.value.__cause__, ssl.SSLCertVerificationError)
    assert isinstance(unknown.value.__cause__, ssl.SSLCertVerificationError)
