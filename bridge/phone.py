"""Phone numbers as a CRM holds them, reduced to what may reach a dial string: digits with an optional leading +.

People type numbers with spaces, brackets, dashes, dots and slashes (``8 (926) 000-00-03``, ``+7 926 000.00.03``)
and with an extension after the number (``926-000-00-03 доб. 12``, ``ext. 12``, ``x12``, ``#12``, ``;12``).
:func:`reduce_number` drops the separators and the extension (an extension is not dialled: the client's
secretary or IVR takes it) and refuses everything else, so no dial-string character (``& , ; / | ( ) $ \\ { }``,
letters, line breaks, non-ASCII digits) can slip through: what comes out is ``+?[0-9]{3,20}``.
"""

from __future__ import annotations

import re

MIN_DIGITS = 3
MAX_DIGITS = 20
MAX_INPUT = 100
"""Longer text is not a phone number (and is not worth scanning)."""
SEPARATORS = frozenset(" \t\u00a0\u2007\u2009\u202f-\u2010\u2011\u2012\u2013\u2014().[]/")
"""What people put between digits: spaces (also no-break and thin ones), dashes, brackets, dots, slashes."""
_EXTENSION = re.compile(
    r"(?:[ \t\u00a0]*(?:доб(?:авочный)?|вн(?:утр(?:енний)?)?|ext(?:ension)?|x)[.:]*|[ \t\u00a0]*[#;])"
    r"[ \t\u00a0]*(?P<ext>[0-9][0-9 -]{0,15})?[ \t\u00a0]*\Z",
    re.IGNORECASE,
)
"""An extension suffix: ``доб.``, ``вн.``, ``ext.``, ``x``, ``#`` or ``;``, then its digits (or nothing), to the end."""
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class BadPhoneNumber(ValueError):
    """A number refused before it could reach Asterisk; the message says why (and may show the input)."""


def shown(raw: str) -> str:
    """The input as an error message may quote it: cut short, control characters escaped by ``repr``."""
    return repr(raw if len(raw) <= 40 else raw[:40] + "...")


def reduce_number(raw: object) -> str:
    """``"8 (926) 000-00-03 доб. 12"`` -> ``"89260000003"``; raise :class:`BadPhoneNumber` saying why not."""
    if not isinstance(raw, str):
        raise BadPhoneNumber(f"phone number must be text, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise BadPhoneNumber("the phone number is empty")
    if len(text) > MAX_INPUT:
        raise BadPhoneNumber(f"phone number {shown(text)} refused: over {MAX_INPUT} characters")
    extension = _EXTENSION.search(text)
    main = text[: extension.start()] if extension and extension.start() > 0 else text
    plus = main.startswith("+")
    body = main[1:] if plus else main
    bad = next((ch for ch in body if not ("0" <= ch <= "9" or ch in SEPARATORS)), None)
    if bad is not None:
        raise BadPhoneNumber(
            f"phone number {shown(text)} refused: {bad!r} is not a digit, a separator or an extension mark"
        )
    digits = "".join(ch for ch in body if "0" <= ch <= "9")
    return ("+" if plus else "") + checked_length(digits, f"phone number {shown(text)}")


def checked_length(digits: str, what: str) -> str:
    """``digits`` if there are ``MIN_DIGITS`` to ``MAX_DIGITS`` of them, else :class:`BadPhoneNumber` about ``what``."""
    if len(digits) < MIN_DIGITS:
        raise BadPhoneNumber(f"{what} refused: too short ({len(digits)} digits, {MIN_DIGITS} at least)")
    if len(digits) > MAX_DIGITS:
        raise BadPhoneNumber(f"{what} refused: too long ({len(digits)} digits, {MAX_DIGITS} at most)")
    return digits


def is_e164(raw: object) -> bool:
    """True for ``+79260000003``: what Bitrix24 puts in PHONE_NUMBER_INTERNATIONAL for a number it finds valid
    (for any other it repeats the number as typed)."""
    return isinstance(raw, str) and _E164.fullmatch(raw.strip()) is not None


def digits(number: str) -> str:
    """The digits of a number, for prefix rules and comparisons."""
    return "".join(ch for ch in number if ch.isdigit())
