"""Phone numbers as Bitrix24 compares them: digits only; equal, or equal in the last ten digits."""

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


def international(raw: str) -> str:
    digits = normalize_phone(raw)
    return f"+{digits}" if digits else ""
