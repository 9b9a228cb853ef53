"""What ``finish`` with ``ADD_TO_CHAT`` (default 1) posts to the finishing employee's chat with the number.

The texts are Bitrix24's (CORE-VOX ``CVoxImplantHistory::GetMessageForChat``, English ``lang/en`` phrases
``VI_IN_CALL_SKIP``, ``VI_IN_CALL_END``, ``VI_OUT_CALL_*``, ``VI_CALLBACK_*``); ``[CALL=..]`` and ``[PCH=..]`` are
its BB codes (a number to call back, a link to the call's details). Departure: the number is shown as stored
(digits), where Bitrix24 formats it for the portal's country. A finish through REST never has a record at that
moment (``RECORD_URL`` is not used), so the voicemail phrase ``VI_CALL_VOICEMAIL`` never appears here.
"""

from __future__ import annotations

from typing import Any

INFO = "[PCH={id}]Call information[/PCH]"
OUTGOING = {
    "603-S": "Call to {number} was canceled.",
    "603": "{number} canceled the call.",
    "486": "{number} is presently on a different call.",
    "480": "{number} is temporary unavailable.",
    "404": "Cannot call {number} because this route is unavailable.",
    "484": "Cannot call {number} because this route is unavailable.",
    "402": "Insufficient balance. You cannot make calls.",
}
CALLBACK = {
    "603-S": "Return call to {number} canceled.",
    "603": "Return call to {number}: the subscriber rejected the call.",
    "486": "Return call to {number}: the line is busy.",
    "480": "Return call to {number}: the subscriber is now not available.",
    "402": "Return call to {number} is not possible because your account does not have sufficient funds.",
    "304": "Return call to {number} was missed. {info}",
}


def message_for(stat: dict[str, Any]) -> str:
    """The chat text for a statistics row; empty when Bitrix24 posts none (no number, no user, blocked: 423)."""
    phone, user, code = (
        str(stat.get("PHONE_NUMBER") or ""),
        int(stat.get("PORTAL_USER_ID") or 0),
        str(stat.get("CALL_FAILED_CODE") or ""),
    )
    if not phone or user <= 0 or code == "423":
        return ""
    number = f"[CALL={phone}]{phone}[/CALL]"
    info = INFO.format(id=stat.get("ID"))
    kind = int(stat.get("CALL_TYPE") or 0)
    if kind == 1:
        return OUTGOING.get(code, "Call to {number} finished. {info}").format(number=number, info=info)
    if kind == 4:
        return CALLBACK.get(code, "Return call to {number} completed. {info}").format(number=number, info=info)
    if kind in (2, 3):
        text = (
            "Skipped incoming call from {number}. {info}"
            if code == "304"
            else "Incoming call from {number} finished. {info}"
        )
        return text.format(number=number, info=info)
    return ""


def wanted(value: Any) -> bool:
    """``ADD_TO_CHAT`` as PHP reads it: absent -> true, else ``(bool)`` of the value ("0" and "" are false)."""
    return value is None or str(value).strip() not in ("", "0")
