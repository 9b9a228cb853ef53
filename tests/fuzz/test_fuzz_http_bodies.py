"""Fuzzing the click-to-call handler with bodies that are no form at all: any bytes under any content type is a
client error with a logged reason, and nothing is dialled."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.ops.http_api import EVENTS_PATH
from tests.fuzz.capture import LogCapture
from tests.fuzz.desk import FORM, Desk, open_desk
from tests.fuzz.strategies import fuzz_settings, odd_text


@pytest.fixture
async def desk(capture: LogCapture) -> AsyncIterator[Desk]:
    async with open_desk(capture) as opened:
        yield opened


CONTENT_TYPES = [
    FORM,
    f"{FORM}; charset=utf-8",
    f"{FORM}; charset=latin-1",
    f"{FORM}; charset=utf-16",
    f"{FORM}; charset=no-such-charset",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "application/json",
    "",
]


@fuzz_settings(150)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        odd_text(300).map(str.encode),
        st.just(b"--xyz\r\nContent-Disposition: form-data\r\n\r\n1\r\n--xyz--\r\n"),
        st.just(b"--xyz\r\nContent-Disposition: form-data; name=event\r\n\r\n\xff\r\n--xyz--\r\n"),
        st.just(b"a=%ff%fe&b=%"),
        st.just(b"--xyz\r\nContent-Disposition: form-data; name=event\r\nContent-Type: text/plain; charset=bogus\r\n"
                b"\r\n1\r\n--xyz--\r\n"),
    ),
    content_type=st.sampled_from(CONTENT_TYPES),
)  # fmt: skip
async def test_a_body_that_is_no_form_is_answered_with_a_client_error(
    desk: Desk, body: bytes, content_type: str
) -> None:
    desk.reset()
    response = await desk.client.post(EVENTS_PATH, data=body, headers={"Content-Type": content_type})
    assert 400 <= response.status < 500, (response.status, await response.text())
    [refusal] = desk.logs.events("clicktocall.rejected")
    assert refusal["reason"] and refusal["status"] == response.status
    assert not desk.dispatcher.commands and not desk.ari.endpoints


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (f"{FORM}; charset=no-such-charset", b"event=ONEXTERNALCALLSTART"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=event\r\n"
         b"Content-Type: text/plain; charset=bogus\r\n\r\n1\r\n--xyz--\r\n"),
    ],
)  # fmt: skip
async def test_an_unknown_charset_is_a_client_error(desk: Desk, content_type: str, body: bytes) -> None:
    response = await desk.client.post(EVENTS_PATH, data=body, headers={"Content-Type": content_type})
    assert response.status == 400
    [refusal] = desk.logs.events("clicktocall.rejected")
    assert refusal["status"] == 400
