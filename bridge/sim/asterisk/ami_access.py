"""What an AMI session may do and receive, as Asterisk 20's ``main/manager.c`` decides it.

* **Classes** (``perms[]``): every event is sent with a class (``Privilege: call,all``); a user has ``read`` and
  ``write`` classes (manager.conf). An event reaches a session only when both the user's ``read`` and the session's
  event mask hold *every* class of the event (``process_events``).
* **The mask** (``strings_to_mask``), from the Login's ``Events:`` or the ``Events`` action's ``EventMask:``: empty
  leaves it as it is (all at first); all digits is a number (``1`` is ``system`` only); ``on``/``yes``/``true``/
  ``y``/``t`` is everything; ``off``/``no``/``false``/``n``/``f`` is nothing; else a comma list of class names
  (``get_perm``), read by ``ast_instring``: every name but the last matches the classes it is a *prefix* of (``c``
  is call, command, config, cdr, cc), the last must match exactly, names are case-sensitive, an unknown list is 0.
* **Actions** need one of their classes in the user's ``write`` (``Ping``, ``Events``, ``Login``, ``Logoff`` none);
  otherwise ``Permission denied``.
* **Filters** (``Filter`` action, ``Operation: Add``, class ``system``): a POSIX extended regular expression
  searched in the event's whole text (``Event: X\\r\\nPrivilege: ...``; ``.`` crosses lines); a leading ``!``
  excludes. No filters: everything; only includes: what one matches; only excludes: what none matches; both: what
  an include matches and no exclude does (``should_send_event``). Action responses (list items too) and the
  ``FullyBooted`` of the login are not filtered. The advanced ``MatchCriteria`` form is not modelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ALL = 0x7FFFFFFF
CLASSES: dict[str, int] = {
    "system": 1 << 0,
    "call": 1 << 1,
    "log": 1 << 2,
    "verbose": 1 << 3,
    "command": 1 << 4,
    "agent": 1 << 5,
    "user": 1 << 6,
    "config": 1 << 7,
    "dtmf": 1 << 8,
    "reporting": 1 << 9,
    "cdr": 1 << 10,
    "dialplan": 1 << 11,
    "originate": 1 << 12,
    "agi": 1 << 13,
    "cc": 1 << 15,
    "aoc": 1 << 16,
    "test": 1 << 17,
    "security": 1 << 18,
    "message": 1 << 30,
    "all": ALL,
    "none": 0,
}
SYSTEM, CALL, REPORTING = CLASSES["system"], CLASSES["call"], CLASSES["reporting"]
ACTION_CLASSES: dict[str, int] = {
    "ping": 0,
    "events": 0,
    "filter": SYSTEM,
    "originate": CLASSES["originate"],
    "coreshowchannels": SYSTEM | REPORTING,
    "status": SYSTEM | CALL | REPORTING,
    "getvar": CALL | REPORTING,
    "setvar": CALL,
    "hangup": SYSTEM | CALL,
    "devicestatelist": CALL | REPORTING,  # res/res_manager_devicestate.c
    "command": CLASSES["command"],
    "dbget": SYSTEM | REPORTING,  # main/db.c
    "dbgettree": SYSTEM | REPORTING,
    "dbput": SYSTEM,
    "dbdel": SYSTEM,
    "dbdeltree": SYSTEM,
}
"""Action (lower case) -> the classes that allow it (``ast_manager_register_xml_core`` in manager.c)."""
TRUE_WORDS = ("yes", "true", "y", "t", "1", "on")
FALSE_WORDS = ("no", "false", "n", "f", "0", "off")
POSIX_CLASSES = {
    "[:alpha:]": "a-zA-Z",
    "[:digit:]": "0-9",
    "[:alnum:]": "a-zA-Z0-9",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:space:]": " \\t\\r\\n\\v\\f",
    "[:blank:]": " \\t",
    "[:punct:]": "!-/:-@\\[-`{-~",
    "[:xdigit:]": "0-9A-Fa-f",
    "[:cntrl:]": "\\x00-\\x1f\\x7f",
}


def get_perm(text: str) -> int:
    """A comma list of class names -> their bits (manager.c ``get_perm`` with ``ast_instring``)."""
    names = text.split(",")
    mask = 0
    for label, bits in CLASSES.items():
        for index, name in enumerate(names):
            last = index == len(names) - 1
            if name == label if last else label.startswith(name):
                mask |= bits
                break
    return mask


def strings_to_mask(text: str) -> int | None:
    """An ``Events:`` / ``EventMask:`` value -> the session's new mask; None leaves the mask as it is."""
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    if text.lower() in FALSE_WORDS:
        return 0
    if text.lower() in TRUE_WORDS:
        return ALL
    return get_perm(text)


def privilege_bits(privilege: str) -> int:
    """``Privilege: call,all`` -> the event's classes (``all`` is printed with every event)."""
    bits = 0
    for name in privilege.split(","):
        bits |= CLASSES.get(name, 0) if name != "all" else 0
    return bits


def compile_posix(pattern: str) -> re.Pattern[str]:
    """A POSIX extended regular expression (``REG_EXTENDED``, no ``REG_NEWLINE``) as a Python pattern."""
    for name, members in POSIX_CLASSES.items():
        pattern = pattern.replace(name, members)
    return re.compile(pattern, re.DOTALL)


@dataclass
class Access:
    """One session's permissions, event mask and filters."""

    read: int = ALL
    write: int = ALL
    mask: int = ALL
    includes: list[re.Pattern[str]] = field(default_factory=list)
    excludes: list[re.Pattern[str]] = field(default_factory=list)

    def may_run(self, action: str) -> bool:
        needed = ACTION_CLASSES.get(action.lower(), 0)
        return needed == 0 or bool(self.write & needed)

    def set_mask(self, text: str) -> int | None:
        mask = strings_to_mask(text)
        if mask is not None:
            self.mask = mask
        return mask

    def wants(self, privilege: str, text: str) -> bool:
        bits = privilege_bits(privilege) if privilege else 0
        if self.read & bits != bits or self.mask & bits != bits:
            return False
        included = not self.includes or any(p.search(text) for p in self.includes)
        return included and not any(p.search(text) for p in self.excludes)

    def add_filter(self, pattern: str) -> str | None:
        """``Filter`` ``Operation: Add``: None when added, else Asterisk's error message."""
        exclude = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if not pattern:
            return "Filter was formatted incorrectly.  Check the syntax of the filter given."
        try:
            compiled = compile_posix(pattern)
        except re.error:
            return "Filter did not compile.  Check the syntax of the filter given."
        (self.excludes if exclude else self.includes).append(compiled)
        return None
