"""``[asterisk] dial_rules``: from a number as the CRM holds it to the digits the trunk wants.

Every external number the bridge dials (click-to-call, callbacks, forwards to mobiles and to ``number:``
targets) goes through :meth:`DialRules.dialled`, once, where its endpoint is built: the number is reduced
(:func:`bridge.phone.reduce_number`), the first rule whose pattern matches the WHOLE number rewrites it, a
leading ``+`` still left is dropped, and what remains must be 3 to 20 digits.

A rule is ``"PATTERN -> REPLACEMENT"`` (spaces inside are ignored), in the spirit of Asterisk's patterns:

* in the pattern: digits and a leading ``+`` stand for themselves; ``X`` is any digit, ``Z`` 1-9, ``N`` 2-9,
  ``[1-5]`` / ``[0478]`` one digit of a set; a final ``.`` is one or more further digits, a final ``!`` zero
  or more;
* in the replacement: digits stand for themselves; each ``X`` is the next digit the pattern's single-digit
  wildcards caught (in order, every one of them used once); ``.`` / ``!`` is what the pattern's tail caught.

``"+7XXXXXXXXXX -> 8XXXXXXXXXX"`` (+7 to the trunk's 8), ``"+. -> 810."`` (international prefix),
``"XXXXXXXXXX -> 8XXXXXXXXXX"`` (a 10-digit number without its 8), ``". -> 9."`` (an outside-line 9).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from bridge.phone import BadPhoneNumber, checked_length, reduce_number

ARROW = "->"
WILDCARDS = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]"}
TAILS = {".": "[0-9]+", "!": "[0-9]*"}
_SET = re.compile(r"\[(?:[0-9](?:-[0-9])?)+\]")


class BadDialRule(ValueError):
    """A rule that cannot be read; the message says what is wrong with it."""


@dataclass(frozen=True)
class DialRule:
    """One rewrite, as written in the config (``match -> replace``, spaces removed)."""

    match: str
    replace: str

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(_compile(self.match)[0])

    def rewrite(self, number: str) -> str | None:
        """The rewritten number if the pattern matches all of ``number`` (reduced), else None."""
        found = self._regex.fullmatch(number)
        if found is None:
            return None
        singles = iter(found.groups()[: self._singles])
        tail = found.group("tail") if "tail" in self._regex.groupindex else ""
        out = []
        for ch in self.replace:
            out.append(next(singles) if ch == "X" else tail if ch in TAILS else ch)
        return "".join(out)

    @cached_property
    def _singles(self) -> int:
        return _compile(self.match)[1]

    def __str__(self) -> str:
        return f"{self.match} {ARROW} {self.replace}"


def _compile(pattern: str) -> tuple[str, int]:
    """A pattern -> (its regex, how many single-digit wildcards it has); raise :class:`BadDialRule`."""
    regex = [r"\+" if pattern.startswith("+") else r"(?!\+)"]
    singles = 0
    at = 1 if pattern.startswith("+") else 0
    while at < len(pattern):
        ch = pattern[at]
        if ch.isascii() and ch.isdigit():
            regex.append(ch)
        elif ch in WILDCARDS:
            regex.append(f"({WILDCARDS[ch]})")
            singles += 1
        elif ch == "[":
            found = _SET.match(pattern, at)
            if found is None:
                raise BadDialRule(f"{pattern[at : at + 12]!r} is not a digit set like [1-5] or [0478]")
            regex.append(f"({found.group()})")
            singles += 1
            at = found.end()
            continue
        elif ch in TAILS:
            if at != len(pattern) - 1:
                raise BadDialRule(f"{ch!r} (the rest of the number) may only end the pattern")
            regex.append(f"(?P<tail>{TAILS[ch]})")
        else:
            raise BadDialRule(f"{ch!r} has no meaning in a pattern (digits, +, X, Z, N, [..], a final . or !)")
        at += 1
    if len(regex) == 1:
        raise BadDialRule("the pattern matches no number: give its digits or wildcards")
    return "".join(regex), singles


def parse_rule(text: str) -> DialRule:
    """``"+7XXXXXXXXXX -> 8XXXXXXXXXX"`` -> a :class:`DialRule`; raise :class:`BadDialRule` saying why not."""
    left, arrow, right = text.partition(ARROW)
    if not arrow or ARROW in right:
        raise BadDialRule(f'write one rule as "PATTERN {ARROW} REPLACEMENT"')
    match = "".join(left.split()).upper()
    replace = "".join(right.split()).upper()
    if not match or not replace:
        raise BadDialRule("both the pattern and the replacement are needed")
    _, singles = _compile(match)
    if "+" in replace:
        raise BadDialRule("the trunk is dialled digits only: write its international prefix (810, 00) for +")
    bad = next((ch for ch in replace if not (ch.isascii() and ch.isdigit()) and ch != "X" and ch not in TAILS), None)
    if bad is not None:
        raise BadDialRule(f"{bad!r} has no meaning in a replacement (digits, X, and the pattern's . or !)")
    if replace.count("X") != singles:
        raise BadDialRule(
            f"the replacement has {replace.count('X')} X but the pattern catches {singles} digit(s): use each once"
        )
    tail = match[-1] if match[-1] in TAILS else ""
    tails = [ch for ch in replace if ch in TAILS]
    if tails != ([tail] if tail else []):
        want = f"{tail!r} once, as the pattern ends" if tail else "no . or !, as the pattern has no tail"
        raise BadDialRule(f"the replacement needs {want}")
    return DialRule(match, replace)


@dataclass(frozen=True)
class DialRules:
    """The site's rules, tried top to bottom; the first that matches rewrites the number (no match: unchanged)."""

    rules: tuple[DialRule, ...] = field(default=())

    def dialled(self, raw: object) -> str:
        """The digits to put in ``trunk_endpoint`` for ``raw``; raise :class:`BadPhoneNumber` saying why not."""
        number = reduce_number(raw)
        for rule in self.rules:
            rewritten = rule.rewrite(number)
            if rewritten is not None:
                return checked_length(rewritten, f"number {number} rewritten by the dial rule {rule!s} to {rewritten}")
        return checked_length(number.removeprefix("+"), f"number {number}")


__all__ = ["BadDialRule", "BadPhoneNumber", "DialRule", "DialRules", "parse_rule"]
