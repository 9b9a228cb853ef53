"""Phone numbers that may reach a dial string: digits with an optional leading +, nothing else."""

from __future__ import annotations

import re

MIN_DIGITS = 3
MAX_DIGITS = 20
_PHONE_RE = re.compile(rf"^\+?[0-9]{{{MIN_DIGITS},{MAX_DIGITS}}}$")


class BadPhoneNumber(ValueError):
    """A number refused before it could reach Asterisk; the message says why (and may show the input)."""


def checked_phone(raw: object) -> str:
    """Return ``raw`` stripped of surrounding spaces if it is a dialable number, else raise BadPhoneNumber.

    Separators people type (spaces, dashes, dots, brackets) are NOT silently removed: anything that is not a digit
    or a leading ``+`` is refused, so no dial-string character (``& , ; / | ( ) $ \\ { }``, newlines) can slip through.
    """
    if not isinstance(raw, str):
        raise BadPhoneNumber(f"phone number must be text, got {type(raw).__name__}")
    value = raw.strip()
    if not _PHONE_RE.match(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise BadPhoneNumber(
            f"phone number {shown!r} refused: only digits with an optional leading +, "
            f"{MIN_DIGITS} to {MAX_DIGITS} digits"
        )
    return value


def digits(number: str) -> str:
    """The digits of a number, for prefix rules and comparisons."""
    return "".join(ch for ch in number if ch.isdigit())
