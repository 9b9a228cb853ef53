"""event.bind (applications only), outbound webhooks, the install, delivery of ONEXTERNALCALLSTART & co. as form
POSTs, no retries, the offline queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.eventually import eventually
from tests.sim.b24_support import Rest, local_server, rest_fixture, sim_fixture  # noqa: F401


@dataclass
class Handler:
    """An event handler on 127.0.0.1 that records what Bitrix24 posts to it."""

    url: str = ""
    status: int = 200
    posts: list[dict[str, str]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)

    async def receive(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.posts.append({key: str(value) for key, value in form.items()})
        self.content_types.append(request.content_type)
        return web.Response(status=self.status, text="ok")


@pytest.fixture
async def handler() -> AsyncIterator[Handler]:
    receiver = Handler()
    async with local_server([web.post("/b24/events", receiver.receive)]) as base:
        receiver.url = f"{base}/b24/events"
        yield receiver


async def test_click_to_call_registers_then_delivers_onexternalcallstart(rest: Rest, handler: Handler) -> None:
    tokens = rest.sim.issue_tokens(user_id=1)
    status, body = await rest.oauth("telephony.externalLine.add", tokens["access_token"], {"NUMBER": "74950000001"})
    assert status == 200
    status, body = await rest.oauth(
        "event.bind", tokens["access_token"], {"event": "OnExternalCallStart", "handler": handler.url}
    )
    assert (status, body["result"]) == (200, True)

    call_id = await rest.sim.click_to_call(user_id=12, phone="+7 916 123-45-67")
    assert len(handler.posts) == 1 and handler.content_types == ["application/x-www-form-urlencoded"]
    post = handler.posts[0]
    assert post["event"] == "ONEXTERNALCALLSTART" and post["event_handler_id"].isdigit() and post["ts"].isdigit()
    data = {key[5:-1]: value for key, value in post.items() if key.startswith("data[")}
    assert data == {
        "PHONE_NUMBER": "+7 916 123-45-67",
        "PHONE_NUMBER_INTERNATIONAL": "+79161234567",
        "EXTENSION": "",
        "USER_ID": "12",
        "CALL_LIST_ID": "0",
        "LINE_NUMBER": "74950000001",
        "IS_MOBILE": "0",
        "CALL_ID": call_id,
        "CRM_ENTITY_TYPE": "CONTACT",
        "CRM_ENTITY_ID": "1",
    }
    assert post["auth[domain]"] == rest.sim.portal
    assert post["auth[client_endpoint]"] == f"{rest.sim.url}/rest/"
    assert post["auth[application_token]"] == "simapptoken"
    assert post["auth[member_id]"] and post["auth[server_endpoint]"]
    status, me = await rest.oauth("user.current", post["auth[access_token]"])  # the triggering user's token
    assert (status, me["result"]["ID"]) == (200, "12")

    call = next(c for c in rest.sim.state()["calls"] if c["CALL_ID"] == call_id)
    assert (call["TYPE"], call["USER_ID"], call["EXTERNAL_CALL_ID"], call["status"]) == (1, 12, None, "active")
    # The bridge must finish the CALL_ID from the event, not register again.
    status, body = await rest.oauth(
        "telephony.externalCall.finish", tokens["access_token"], {"CALL_ID": call_id, "USER_ID": 12, "DURATION": 20}
    )
    assert status == 200 and body["result"]["PORTAL_NUMBER"] == "74950000001"


@pytest.mark.parametrize(
    ("contact", "phone", "international", "extension"),
    [
        (3, "8 (926) 000-00-03", "+79260000003", ""),
        (4, "+7 926 000-00-04", "+79260000004", ""),
        (5, "926-000-00-05 доб. 12", "926-000-00-05 доб. 12", ""),  # letters: the parser gives up, repeats it
        (6, "8 926 000-00-06#34", "+79260000006", "34"),
        (7, "8 926 000-00-07, 8 926 000-00-08", "8 926 000-00-07, 8 926 000-00-08", ""),
        (9, "+7", "+7", ""),  # the form's country prefix, the rest never typed
    ],
)
async def test_a_click_on_a_seeded_contact_sends_its_number_as_the_crm_holds_it(
    rest: Rest, handler: Handler, contact: int, phone: str, international: str, extension: str
) -> None:
    await rest.as_app("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": handler.url})
    call_id = await rest.sim.click_to_call_entity(11, "CONTACT", contact)
    [post] = handler.posts
    fields = ("PHONE_NUMBER", "PHONE_NUMBER_INTERNATIONAL", "EXTENSION", "CALL_ID", "CRM_ENTITY_ID")
    assert [post[f"data[{name}]"] for name in fields] == [phone, international, extension, call_id, str(contact)]


async def test_a_number_without_a_digit_is_not_registered_so_no_event_is_sent(rest: Rest, handler: Handler) -> None:
    await rest.as_app("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": handler.url})
    with pytest.raises(ValueError, match="Unsupported phone number format"):
        await rest.sim.click_to_call(11, "уточнить у менеджера")
    assert handler.posts == [] and rest.sim.state()["calls"] == []


async def test_outbound_webhook_gets_only_its_own_token_and_no_user_auth(rest: Rest, handler: Handler) -> None:
    status, body = await rest.control("outbound_webhook", {"handler": handler.url})
    token = body["application_token"]
    assert status == 200 and len(token) == 32 and token != rest.sim.core.identity.application_token
    await rest.sim.click_to_call(
        user_id=13, phone="79035550001", crm_entity_type="CONTACT", crm_entity_id=2, call_list_id=5
    )
    auth = {key[5:-1]: value for key, value in handler.posts[0].items() if key.startswith("auth[")}
    assert set(auth) == {"domain", "client_endpoint", "server_endpoint", "member_id", "application_token"}
    assert auth["application_token"] == token
    assert handler.posts[0]["data[CALL_LIST_ID]"] == "5" and handler.posts[0]["data[LINE_NUMBER]"] == ""
    status, body = await rest.control("outbound_webhook", {"handler": handler.url, "events": ["ONNOTHING"]})
    assert status == 400 and "unknown event" in body["error"]


async def test_an_inbound_webhook_can_neither_bind_nor_list_nor_poll_events() -> None:
    """rest lib/api/event.php: every event.* method refuses non-OAuth auth, whatever the portal allows for
    telephony; app.info has no application to describe."""
    async with Bitrix24Simulator(webhook_allowed_for_telephony=True) as sim, aiohttp.ClientSession() as session:
        rest = Rest(session, sim)
        for method, payload in [
            ("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": "https://bridge.example.com/b24/events"}),
            ("event.bind", {"event": "ONEXTERNALCALLSTART", "event_type": "offline"}),
            ("event.get", {}),
            ("event.unbind", {"event": "ONEXTERNALCALLSTART", "handler": "https://bridge.example.com/b24/events"}),
            ("event.offline.get", {}),
        ]:
            status, body = await rest.call(method, payload)
            assert (status, body["error"]) == (403, "WRONG_AUTH_TYPE"), method
            assert body["error_description"] == "Current authorization type is denied for this method"
        status, body = await rest.call("app.info")
        assert (status, body["error"]) == (400, "ACCESS_DENIED")
        assert "Application context required" in body["error_description"]
        assert sim.state()["events"]["bindings"] == []
        assert (await rest.as_app("app.info"))["CODE"] == sim.core.identity.client_id


async def test_install_posts_onappinstall_with_tokens_and_drops_the_apps_bindings(rest: Rest, handler: Handler) -> None:
    await rest.as_app("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": handler.url})
    await rest.control("outbound_webhook", {"handler": handler.url, "events": ["ONEXTERNALCALLBACKSTART"]})
    status, body = await rest.control("install_app", {"url": handler.url})
    assert (status, body) == (200, {"status": 200})
    post = handler.posts[0]
    assert (post["event"], post["data[INSTALLED]"], post["auth[status]"]) == ("ONAPPINSTALL", "Y", "L")
    first_token = post["auth[application_token]"]
    assert first_token == "simapptoken" and post["auth[member_id]"] == rest.sim.core.identity.member_id
    status, me = await rest.oauth("user.current", post["auth[access_token]"])  # the installing admin's pair
    assert (status, me["result"]["ID"]) == (200, "1") and post["auth[refresh_token]"]
    kept = rest.sim.state()["events"]["bindings"]
    assert [b["event"] for b in kept] == ["ONEXTERNALCALLBACKSTART"], "the app's handlers go, outbound webhooks stay"
    await rest.sim.install_app(handler.url)
    assert handler.posts[1]["auth[application_token]"] not in ("", first_token), "a reinstall issues a new token"
    assert [i["status"] for i in rest.sim.state()["events"]["installs"]] == [200, 200]


async def test_failed_delivery_is_logged_and_never_retried(rest: Rest, handler: Handler) -> None:
    handler.status = 500
    await rest.as_app("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": handler.url})
    await rest.as_app("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": "http://127.0.0.1:9/nobody"})
    call_id = await rest.sim.click_to_call(user_id=12, phone="79161234567")
    assert call_id.startswith("externalCall.")
    state = rest.sim.state()
    assert len(handler.posts) == 1
    assert sorted(d["ok"] for d in state["events"]["deliveries"]) == [False, False]
    assert state["counters"]["events_failed"] == 2 and "events_delivered" not in state["counters"]


async def test_call_end_event_after_finish(rest: Rest, handler: Handler) -> None:
    await rest.as_app("event.bind", {"event": "ONVOXIMPLANTCALLEND", "handler": handler.url})
    call_id = await rest.register(LINE_NUMBER="100")
    await rest.finish(call_id, DURATION=9, STATUS_CODE="200")
    await eventually(lambda: handler.posts)
    post = handler.posts[0]
    assert post["event"] == "ONVOXIMPLANTCALLEND"
    assert (post["data[CALL_ID]"], post["data[CALL_DURATION]"], post["data[CALL_FAILED_CODE]"]) == (call_id, "9", "200")
    assert post["data[PORTAL_NUMBER]"] == "100" and post["data[PORTAL_USER_ID]"] == "12"


async def test_callback_request_event(rest: Rest, handler: Handler) -> None:
    await rest.as_app("event.bind", {"event": "ONEXTERNALCALLBACKSTART", "handler": handler.url})
    await rest.sim.callback_request("+7 903 555-00-01", "Call the client back")
    status, _ = await rest.control("callback_request", {"phone": "79990001111", "text": "New visitor"})
    assert status == 200
    first, second = handler.posts
    assert (first["data[TEXT]"], first["data[CRM_ENTITY_TYPE]"], first["data[CRM_ENTITY_ID]"]) == (
        "Call the client back",
        "CONTACT",
        "2",
    )
    assert second["data[CRM_ENTITY_TYPE]"] == "LEAD" and second["data[VOICE]"]


async def test_offline_binding_and_event_offline_get(rest: Rest, handler: Handler) -> None:
    assert await rest.as_app("event.bind", {"event": "ONEXTERNALCALLSTART", "event_type": "offline"}) is True
    first = await rest.sim.click_to_call(user_id=12, phone="79161234567")
    second = await rest.sim.click_to_call(user_id=13, phone="79035550001", crm_entity_id=2)
    assert handler.posts == []
    got = await rest.as_app("event.offline.get", {"limit": 1, "clear": 0})
    assert got["process_id"] and len(got["events"]) == 1
    event = got["events"][0]
    assert set(event) == {"ID", "TIMESTAMP_X", "EVENT_NAME", "EVENT_DATA", "EVENT_ADDITIONAL", "MESSAGE_ID"}
    assert event["EVENT_NAME"] == "ONEXTERNALCALLSTART" and event["EVENT_DATA"]["CALL_ID"] == first
    rest_of_queue = await rest.as_app("event.offline.get")  # a parallel poller gets the other record
    assert rest_of_queue["process_id"] is None
    assert [e["EVENT_DATA"]["CALL_ID"] for e in rest_of_queue["events"]] == [second]
    assert await rest.as_app("event.offline.get") == {"process_id": None, "events": []}
    assert len(rest.sim.state()["events"]["offline_queue"]) == 1  # still held by the process
    assert await rest.as_app("event.offline.clear", {"process_id": got["process_id"]}) is True
    assert rest.sim.state()["events"]["offline_queue"] == []


async def test_bind_errors_get_and_unbind(rest: Rest, handler: Handler) -> None:
    admin = rest.sim.issue_tokens(user_id=1)["access_token"]
    status, body = await rest.oauth("event.bind", admin, {"event": "ONSOMETHINGELSE", "handler": handler.url})
    assert (status, body) == (400, {"error": "ERROR_EVENT_NOT_FOUND", "error_description": "Event not found"})
    assert await rest.as_app("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": handler.url}) is True
    status, body = await rest.oauth("event.bind", admin, {"event": "ONEXTERNALCALLSTART", "handler": handler.url})
    assert (status, body["error_description"]) == (400, "Handler already binded")
    assert await rest.as_app("event.bind", {"event": "ONEXTERNALCALLBACKSTART", "event_type": "offline"}) is True
    assert await rest.as_app("event.get") == [
        {"event": "ONEXTERNALCALLSTART", "handler": handler.url, "auth_type": "0", "offline": 0},
        {"event": "ONEXTERNALCALLBACKSTART", "connector_id": "", "offline": 1},
    ]
    user_token = rest.sim.issue_tokens(user_id=12)["access_token"]
    status, body = await rest.oauth("event.bind", user_token, {"event": "ONEXTERNALCALLSTART", "event_type": "offline"})
    assert (status, body["error"]) == (403, "ACCESS_DENIED")  # offline events need an admin
    assert await rest.as_app("event.unbind", {"event": "ONEXTERNALCALLSTART", "handler": handler.url}) == {"count": 1}
    await rest.sim.click_to_call(user_id=12, phone="79161234567")
    assert handler.posts == []


async def test_click_to_call_control_endpoint(rest: Rest, handler: Handler) -> None:
    await rest.as_app("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": handler.url})
    status, body = await rest.control(
        "click_to_call", {"user_id": 11, "phone": "74957770000", "crm_entity_type": "COMPANY", "crm_entity_id": 1}
    )
    assert status == 200 and handler.posts[0]["data[CALL_ID]"] == body["CALL_ID"]
    assert handler.posts[0]["data[CRM_ENTITY_TYPE]"] == "COMPANY"
    status, body = await rest.control("click_to_call", {"phone": "1"})
    assert status == 400 and "user_id" in body["error"]
    status, body = await rest.control("click_to_call", {"user_id": 17, "phone": "79161234567"})
    assert status == 400 and "not an active user" in body["error"]
    assert len(handler.posts) == 1
