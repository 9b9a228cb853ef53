"""Click-to-call and callback events from Bitrix24: parse, authenticate, validate, de-duplicate.

Bitrix24 posts events form-encoded with PHP-style keys (``data[PHONE_NUMBER]``, ``auth[application_token]``) and
never retries them. The only authenticity check is ``auth[application_token]`` (compared in constant time). The same
parsing serves events pulled through ``event.offline.get``.

Numbers: ``PHONE_NUMBER`` is the number as the CRM holds it (``8 (926) 000-00-03``, ``926-000-00-03 доб. 12``);
``PHONE_NUMBER_INTERNATIONAL`` is its E.164 form when Bitrix24's parser finds it valid, else the same text again;
``EXTENSION`` is what Bitrix24 cut off after ``;`` or ``#`` in the client's number (not dialled, not an employee).
A click-to-call whose number cannot be reduced still carries its CALL_ID: it comes out with ``problem`` set, so
that the desk finishes Bitrix24's call instead of leaving it open. A callback without a usable number is refused.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.phone import BadPhoneNumber, is_e164, reduce_number, shown

CLICK_TO_CALL = "ONEXTERNALCALLSTART"
CALLBACK = "ONEXTERNALCALLBACKSTART"


@dataclass(frozen=True)
class ClickToCall:
    """An employee clicked a number in the CRM; Bitrix24 already registered ``call_id`` (TYPE=1)."""

    call_id: str
    user_id: int
    phone: str
    """Reduced to ``+?digits`` (:func:`bridge.phone.reduce_number`), or as sent (quoted) when ``problem`` is set."""
    line: str = ""
    call_list_id: int = 0
    crm_entity_type: str = ""
    crm_entity_id: int = 0
    is_mobile: bool = False
    problem: str = ""
    """Why the number cannot be dialled ('' when it can be reduced); the dial rules may still refuse it later."""


@dataclass(frozen=True)
class CallbackRequest:
    """A visitor asked to be called back through the CRM form."""

    phone: str
    text: str = ""
    line: str = ""
    crm_entity_type: str = ""
    crm_entity_id: int = 0


@dataclass(frozen=True)
class Rejected:
    """An event refused; ``status`` is the HTTP status to answer a push with."""

    reason: str
    status: int = 400


Parsed = ClickToCall | CallbackRequest | Rejected


def nest_form(form: Mapping[str, str] | Any) -> dict[str, Any]:
    """``{"data[PHONE_NUMBER]": "1"}`` -> ``{"data": {"PHONE_NUMBER": "1"}}`` (one level, as Bitrix24 sends)."""
    result: dict[str, Any] = {}
    for key, value in form.items():
        head, sep, rest = str(key).partition("[")
        if sep and rest.endswith("]") and "[" not in rest:
            inner = result.setdefault(head, {})
            if isinstance(inner, dict):
                inner[rest[:-1]] = value
        else:
            result[str(key)] = value
    return result


def _int(value: Any) -> int:
    try:
        return int(str(value).strip() or 0)
    except ValueError:
        return -1


class EventGate:
    """Turns raw event posts into validated requests; refuses forged, malformed and repeated ones."""

    def __init__(
        self,
        application_token: str,
        *,
        dedup_window: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        max_remembered: int = 10_000,
    ) -> None:
        self._token = application_token.encode()
        self._window = dedup_window
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_remembered

    def set_token(self, application_token: str) -> None:
        """A new ``application_token`` (a verified install issued it)."""
        self._token = application_token.encode()

    def authentic(self, auth: Mapping[str, Any]) -> bool:
        given = str(auth.get("application_token", "")).encode()
        return bool(self._token) and hmac.compare_digest(given, self._token)

    def accept(self, payload: Mapping[str, Any], *, check_token: bool = True) -> Parsed:
        """Validate one event; ``payload`` is already nested (``data``/``auth`` dicts)."""
        event = str(payload.get("event", "")).upper()
        data = payload.get("data")
        auth = payload.get("auth")
        if check_token and (not isinstance(auth, Mapping) or not self.authentic(auth)):
            return Rejected("application_token does not match", status=401)
        if not isinstance(data, Mapping):
            return Rejected("no data[...] fields")
        if event == CLICK_TO_CALL:
            return self._click_to_call(data)
        if event == CALLBACK:
            return self._callback(data)
        return Rejected(f"unsupported event {event[:40]!r}")

    def _phone(self, data: Mapping[str, Any]) -> str:
        """The E.164 form if Bitrix24 found the number valid, else the CRM's own text, reduced."""
        international = data.get("PHONE_NUMBER_INTERNATIONAL", "")
        return reduce_number(international if is_e164(international) else data.get("PHONE_NUMBER", ""))

    def _click_to_call(self, data: Mapping[str, Any]) -> Parsed:
        call_id = str(data.get("CALL_ID", ""))
        if not call_id.startswith("externalCall.") or len(call_id) > 100:
            return Rejected("CALL_ID missing or malformed")
        user_id = _int(data.get("USER_ID"))
        if user_id <= 0:
            return Rejected("USER_ID missing or not a number")
        problem = ""
        try:
            phone = self._phone(data)
        except BadPhoneNumber as exc:
            phone, problem = shown(str(data.get("PHONE_NUMBER", ""))), str(exc)
        if self._repeated(call_id):
            return Rejected(f"CALL_ID {call_id} already handled", status=200)
        return ClickToCall(
            call_id=call_id,
            user_id=user_id,
            phone=phone,
            problem=problem,
            line=str(data.get("LINE_NUMBER", "")),
            call_list_id=max(_int(data.get("CALL_LIST_ID")), 0),
            crm_entity_type=str(data.get("CRM_ENTITY_TYPE", "")),
            crm_entity_id=max(_int(data.get("CRM_ENTITY_ID")), 0),
            is_mobile=str(data.get("IS_MOBILE", "0")) == "1",
        )

    def _callback(self, data: Mapping[str, Any]) -> Parsed:
        try:
            phone = self._phone(data)
        except BadPhoneNumber as exc:
            return Rejected(str(exc))
        return CallbackRequest(
            phone=phone,
            text=str(data.get("TEXT", ""))[:500],
            line=str(data.get("LINE_NUMBER", "")),
            crm_entity_type=str(data.get("CRM_ENTITY_TYPE", "")),
            crm_entity_id=max(_int(data.get("CRM_ENTITY_ID")), 0),
        )

    def _repeated(self, call_id: str) -> bool:
        now = self._clock()
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at < self._window and len(self._seen) < self._max:
                break
            self._seen.pop(oldest)
        if call_id in self._seen:
            return True
        self._seen[call_id] = now
        return False
