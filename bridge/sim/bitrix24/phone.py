"""Phone numbers as Bitrix24 compares them (digits only; equal, or equal in the last ten digits) and as its
click-to-call event describes them (PHONE_NUMBER_INTERNATIONAL, EXTENSION)."""

from __future__ import annotations

import re

_NON_DIGITS = re.compile(r"\D+")
_SIGNIFICANT = 10


def normalize_phone(raw: str) -> str:
    """``"+7 (916) 123-45-67 ext"`` -> ``"79161234567"``; letters and punctuation are dropped."""
    return _NON_DIGITS.sub("", raw)


def same_phone(left: str, right: str) -> bool:
    """True for the same subscriber written two ways (``+7 916 ...`` vs ``8 916 ...``)."""
    a, b = normalize_phone(left), normalize_phone(right)
    if not a or not b:
        return False
    if a == b:
        return True
    return len(a) >= _SIGNIFICANT and len(b) >= _SIGNIFICANT and a[-_SIGNIFICANT:] == b[-_SIGNIFICANT:]


_VIABLE = re.compile(r"\+?[0-9\-/.\s()\[\]~;#,]*[0-9][0-9\-/.\s()\[\]~;#,]*")
"""Bitrix24's parser looks at a number only if it is made of digits and punctuation (a letter anywhere: not at all)."""
_RUSSIAN_NSN = re.compile(r"[3489][0-9]{9}")


def split_extension(raw: str) -> tuple[str, str]:
    """``"8 926 000 00 03#12"`` -> (``"8 926 000 00 03"``, ``"12"``): Bitrix24 cuts at the first ``;`` or ``#``."""
    at = min((i for i in (raw.find(";"), raw.find("#")) if i >= 0), default=-1)
    return (raw, "") if at < 0 else (raw[:at], raw[at + 1 :])


def international(raw: str) -> str:
    """PHONE_NUMBER_INTERNATIONAL as a Russian portal's parser makes it: E.164 for a number it finds valid, else the
    text as typed (``Formatter::format`` returns the raw number of an invalid one).

    A model, not the parser: +7 / 7 / 8 followed by ten digits, or ten digits, starting 3, 4, 8 or 9 (Russian
    geographic, toll-free and mobile numbers) are valid; another country's +CC with 8 to 15 digits is taken as
    valid; letters anywhere (``доб.``, ``моб.``) make the whole number invalid.
    """
    if not _VIABLE.fullmatch(raw.strip()):
        return raw
    main, _ = split_extension(raw.strip())
    digits = normalize_phone(main)
    if main.startswith("+"):
        if digits.startswith("7"):
            return f"+{digits}" if _RUSSIAN_NSN.fullmatch(digits[1:]) else raw
        return f"+{digits}" if 8 <= len(digits) <= 15 and not digits.startswith("0") else raw
    nsn = digits[1:] if len(digits) == 11 and digits[0] in "78" else digits
    return f"+7{nsn}" if _RUSSIAN_NSN.fullmatch(nsn) else raw
