"""Shared Hypothesis settings and strategies of the fuzz suite.

``B24_FUZZ_EXAMPLES=5000 pytest tests/fuzz`` runs every fuzz test with that many examples (a long run); the
default sizes keep the whole suite within about a minute.
"""

from __future__ import annotations

import itertools
import os
import random
import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "bridge.example.toml"

SPECIAL_CHARS = "&,;/|()$\\{}"
"""Characters that mean something in an Asterisk dial string or a dialplan expression."""

ODD_DIGITS = "²³¹٣۵०१೩๓０１９"
"""Characters ``str.isdigit`` accepts that are not ASCII digits (superscripts, Arabic, Devanagari, fullwidth)."""

ODD_NUMBERS = ("²", "--1", "-", "+-1", "1_000", "٣", "０", "9" * 5000, "1e3", "0x10", " 7 ", "\t16\n", "nan")
"""Texts that look like numbers to one parser and not to another."""


def fuzz_settings(examples: int, **overrides: Any) -> settings:
    """Settings for one fuzz test: ``examples`` by default, ``$B24_FUZZ_EXAMPLES`` when set; no deadline."""
    wanted = os.environ.get("B24_FUZZ_EXAMPLES", "").strip()
    count = int(wanted) if wanted.isascii() and wanted.isdigit() and int(wanted) > 0 else examples
    options: dict[str, Any] = {
        "max_examples": count,
        "deadline": None,
        "suppress_health_check": [
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
            HealthCheck.large_base_example,
        ],
    }
    options.update(overrides)
    return settings(**options)


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (``integers(0, n - 1) == 0`` comes up far more often inside composites)."""
    return st.sampled_from([True] + [False] * (n - 1))


# --- text ------------------------------------------------------------------------------------------


def odd_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Text that is likely to break a parser: control characters, dial-string specials, odd digits."""
    alphabet = st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(SPECIAL_CHARS + ODD_DIGITS + "\r\n\t\x00 +-:=\"'<>"),
    )
    return st.one_of(st.text(alphabet, max_size=max_size), st.sampled_from(ODD_NUMBERS))


def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        odd_text(),
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON document (as Python values), including NaN and infinities, which ``json.loads`` also accepts."""
    return st.recursive(
        json_scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(odd_text(12), inner, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def nested(depth: int, leaf: str = "1") -> str:
    """JSON text nested ``depth`` levels deep (arrays and objects alternating)."""
    opening = "".join('{"a":' if level % 2 else "[" for level in range(depth))
    closing = "".join("}" if level % 2 else "]" for level in reversed(range(depth)))
    return opening + leaf + closing


def secret_texts(
    alphabet: str = string.ascii_letters + string.digits + "!#%&*+-=?@^_~\\'\"<>$",
) -> st.SearchStrategy[str]:
    """Passwords and tokens; the ``Zq9`` start keeps them from matching words of a config or a message by chance."""
    return st.text(alphabet, min_size=7, max_size=20).map(lambda text: "Zq9" + text)


def webhook_codes() -> st.SearchStrategy[str]:
    """The secret part of an inbound webhook URL (Bitrix24 makes them of lower-case letters and digits)."""
    return st.text(string.ascii_lowercase + string.digits, min_size=7, max_size=16).map(lambda text: "zq9" + text)


@st.composite
def hostile_numbers(draw: st.DrawFn) -> str:
    """A phone number, half the time with something dangerous inside: dial-string characters, line breaks, odd
    digits; sometimes any text at all."""
    number = draw(st.from_regex(r"[ ]?\+?[0-9]{3,20}[ ]?", fullmatch=True))
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(number)))
            inserted = draw(st.sampled_from([*SPECIAL_CHARS, "\n", "\r", "\r\n", "\x00", " ", "-", "+", *ODD_DIGITS]))
            number = number[:at] + inserted + number[at:]
    if draw(one_in(5)):
        return draw(st.one_of(odd_text(30), st.sampled_from(["", " ", "+", "0", "1" * 21])))
    return number


# --- mutations of recorded data ----------------------------------------------------------------------


@st.composite
def mutated_mapping(draw: st.DrawFn, original: dict[str, Any], *, extra_keys: bool = True) -> dict[str, Any]:
    """``original`` (recursively) with some fields removed, some retyped, some garbled, maybe some added."""

    def mutate(value: Any, depth: int) -> Any:
        if isinstance(value, dict) and depth < 4:
            out: dict[str, Any] = {}
            for key, item in value.items():
                choice = draw(st.sampled_from(("keep", "keep", "keep", "recurse", "drop", "retype")))
                if choice == "drop":
                    continue
                if choice == "retype":
                    out[key] = draw(json_values(6))
                elif choice == "recurse":
                    out[key] = mutate(item, depth + 1)
                else:
                    out[key] = item
            if extra_keys and draw(st.booleans()):
                out.update(draw(st.dictionaries(odd_text(12), json_values(4), max_size=2)))
            return out
        if isinstance(value, list) and depth < 4:
            return [mutate(item, depth + 1) for item in value if not draw(one_in(6))]
        if draw(one_in(4)):
            return draw(json_values(4))
        return value

    result = mutate(original, 0)
    return result if isinstance(result, dict) else {}


def with_unrelated_fields(value: Any, rnd: random.Random, extras: dict[str, Any], prefix: str = "zz_fuzz_") -> Any:
    """``value`` with some of ``extras`` added (named ``prefix...``, read by nobody) to objects at any level."""
    if isinstance(value, dict):
        out = {key: with_unrelated_fields(item, rnd, extras, prefix) for key, item in value.items()}
        for name, extra in extras.items():
            if rnd.random() < 0.3:
                out[prefix + name] = extra
        return out
    if isinstance(value, list):
        return [with_unrelated_fields(item, rnd, extras, prefix) for item in value]
    return value


# --- byte streams --------------------------------------------------------------------------------------


def cuts(length: int, max_cuts: int = 40) -> st.SearchStrategy[list[int]]:
    """Sorted distinct positions at which to split a stream of ``length`` bytes into reads."""
    return st.lists(st.integers(min_value=1, max_value=max(1, length - 1)), max_size=max_cuts, unique=True).map(sorted)


def split(raw: bytes, positions: list[int]) -> list[bytes]:
    bounds = [0, *[p for p in positions if 0 < p < len(raw)], len(raw)]
    return [raw[start:end] for start, end in itertools.pairwise(bounds)]


def garbage_bytes(max_size: int = 200) -> st.SearchStrategy[bytes]:
    """Bytes that are no AMI message: random bytes, NULs, invalid UTF-8, stray line ends, half headers."""
    pieces = st.one_of(
        st.binary(max_size=max_size),
        st.just(b"\x00" * 64),
        st.sampled_from([b"\xff\xfe\xfd", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xc0\xaf"]),
        st.sampled_from([b"\r\n", b"\r", b"\n", b"\n\n", b": ", b"NoColonHere", b"Key:NoSpace", b":"]),
        odd_text(30).map(lambda text: text.encode("utf-8", "surrogatepass")),
    )
    return st.lists(pieces, min_size=1, max_size=6).map(b"".join).filter(_not_a_message)


def _not_a_message(data: bytes) -> bool:
    text = data.decode("utf-8", "replace")
    return "Event: " not in text and "Response: " not in text
