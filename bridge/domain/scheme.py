"""The routing scheme as plain data: lines, rule chains, queue groups, IVR menus, employees.

Built by ``bridge.config`` from TOML; read by ``bridge.domain.call``. Nothing here decides anything.

A line's rule chain is tried top to bottom. A rule whose condition holds runs its action; an action that
cannot run (the responsible manager is unknown or unavailable and so is the supervisor) passes the call on to
the next rule. When no rule is left the line's ``fallback`` runs (default: hang up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from bridge.domain.schedule import Schedule

RING_SECONDS = 5.0
"""One ring, as Bitrix24's routing pages count it."""

MAX_RINGS = 60
"""A rule's or an employee's ring count may not exceed this (five minutes at the default ring)."""

MAX_EVERYBODY_DEVICES = 10
"""At most this many devices ring at once in the ``everybody`` distribution."""


class Availability(Enum):
    """What the shell knows about an agent right now (device state, timeman, absence chart)."""

    AVAILABLE = "available"
    BUSY = "busy"
    UNREGISTERED = "unregistered"
    ABSENT = "absent"
    NOT_CLOCKED_IN = "not_clocked_in"
    OFFLINE = "offline"
    """Bitrix24 shows the employee offline (``employees.require_online``)."""


class Distribution(Enum):
    EVENLY = "evenly"
    IN_ORDER = "in_order"
    EVERYBODY = "everybody"
    WORKLOAD = "workload"
    """Members sorted by their open leads (or deals: ``QueueGroup.workload_of``), fewest first."""


# --- actions: where a rule, an IVR key or a final action sends the call ---------------------------


@dataclass(frozen=True)
class ToEmployee:
    """Ring one employee (with their own busy / unavailable / no-answer rules) for ``rings`` rings."""

    ext: str
    rings: int = 4


@dataclass(frozen=True)
class ToNumber:
    """Forward the caller to an external number through the trunk; give up after ``rings`` rings."""

    number: str
    rings: int = 6


@dataclass(frozen=True)
class ToQueue:
    queue: str


@dataclass(frozen=True)
class ToIvr:
    menu: str


@dataclass(frozen=True)
class ToResponsible:
    """Ring the CRM-responsible manager, then (if ``supervisor``) their department head, ``rings`` rings each."""

    supervisor: bool = True
    rings: int = 4


@dataclass(frozen=True)
class ToVoicemail:
    """Record a message for ``ext`` (or the line's / queue's missed-call owner when empty)."""

    ext: str = ""


@dataclass(frozen=True)
class HoldUntilFree:
    """Music on hold until a member of ``queue`` is free, then offer the call to them."""

    queue: str
    max_wait: float | None = None


@dataclass(frozen=True)
class Hangup:
    pass


Action = ToEmployee | ToNumber | ToQueue | ToIvr | ToResponsible | ToVoicemail | HoldUntilFree | Hangup


# --- conditions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Always:
    pass


@dataclass(frozen=True)
class InHours:
    """True while ``schedule`` is open (or closed, with ``inside=False``)."""

    schedule: str
    inside: bool = True


@dataclass(frozen=True)
class CallerPrefix:
    """The caller's number (digits only) starts with one of ``prefixes`` (a region is a named set)."""

    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class KnownClient:
    """The CRM lookup found (or, with ``known=False``, did not find) the caller."""

    known: bool = True


@dataclass(frozen=True)
class CrmField:
    """A field of the CRM entity found (e.g. the open deal's ``OPPORTUNITY``) compared with ``value``.

    ``op`` is one of ``= != > >= < <=``; numeric when both sides parse as numbers. Otherwise ``=`` and ``!=``
    compare the text, and the ordering operators are false.
    """

    field: str
    op: str
    value: str


Condition = Always | InHours | CallerPrefix | KnownClient | CrmField


@dataclass(frozen=True)
class Rule:
    when: Condition
    then: Action
    name: str = ""


# --- the building blocks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Employee:
    """An extension with its Bitrix24 user and the employee's own forwarding rules."""

    ext: str
    user_id: int
    name: str = ""
    mobile: str = ""
    supervisor_ext: str = ""
    on_busy: ToVoicemail | ToNumber | None = None
    """Busy rule: when rung directly and busy, leave a voicemail or go to a number instead of skipping."""
    unavailable_to_mobile: bool = False
    """Unavailable rule: when not registered, ring the employee's mobile instead."""
    no_answer_to_mobile: bool = False
    """After the employee's rings run out unanswered, ring their mobile before moving on."""
    no_answer_rings: int = 0
    """With ``no_answer_to_mobile``: the desk phone rings this many rings before the mobile (0: the rule's count);
    the mobile then rings for the rule's count."""
    dismissed: bool = False
    """Bitrix24 no longer has them as an active user (ACTIVE = N), which refuses a register or finish naming them
    for good: they are skipped like an unavailable agent (no forwarding rule) and never a call's user."""


@dataclass(frozen=True)
class QueueGroup:
    id: str
    members: tuple[str, ...]
    distribution: Distribution = Distribution.IN_ORDER
    rings_per_member: int = 3
    """``everybody``: rings for the whole group (``0`` = wait endlessly)."""
    passes: int = 1
    """How many times ``in_order``/``evenly`` walk the whole list before the final action."""
    final: Action = field(default_factory=Hangup)
    missed_owner: str = ""
    """Extension that owns missed calls of this group (finish USER_ID, missed-call task)."""
    intercept_code: str = ""
    name: str = ""
    workload_of: str = "leads"
    """``workload``: count open ``leads`` or ``deals``."""


@dataclass(frozen=True)
class IvrMenu:
    id: str
    prompt: str
    """Media URI played to the caller, e.g. ``sound:ivr-main``."""
    options: tuple[tuple[str, Action], ...]
    """Key -> action; a key is one DTMF digit ``0-9 * #``."""
    timeout: float = 5.0
    """Seconds to wait for a key after the prompt ended."""
    max_replays: int = 2
    on_fail: Action = field(default_factory=Hangup)
    invalid_prompt: str = "sound:option-is-invalid"


@dataclass(frozen=True)
class Line:
    number: str
    name: str = ""
    rules: tuple[Rule, ...] = ()
    fallback: Action = field(default_factory=Hangup)
    default_ext: str = ""
    """Who owns the call before anyone rings (register USER_ID) and its missed calls when nobody else does."""
    crm_create: bool = True
    crm_source: str = ""
    missed_task: bool = False
    """Create a Bitrix24 task for the missed-call owner."""
    add_to_chat: bool = True
    """``finish`` posts the call to the employee's chat (``ADD_TO_CHAT``), as Bitrix24's own telephony does."""
    missed_notify: bool = False
    record: bool = True
    callback_queue: str = ""
    """Queue that takes the clients the bridge calls back for this line (ONEXTERNALCALLBACKSTART); empty: the rules."""
    pbx_fallback: Action | None = None
    """What the generated dialplan does with the line's calls while the bridge is away (None: approximate the rules)."""
    moh_class: str = ""
    """Music on hold for this line's callers; empty: ``asterisk.moh_class``."""
    greeting: str = ""
    """Played once the call is answered, before routing; empty: ``Plan.greeting`` (empty there too: none)."""
    voicemail_prompt: str = ""
    """Played before a voicemail of this line is recorded; empty: ``Plan.voicemail_prompt``."""
    lead_distribution: str = ""
    """Id of the ``Plan.lead_distributions`` entry that assigns the leads this line's calls create."""


# --- lead distribution (bridge/domain/leads.py picks) --------------------------------------------

OWNER = "owner"
"""``off_hours`` value: outside hours the lead stays with whoever ``finish`` named (the line's owner)."""


class LeadMode(Enum):
    ROUND_ROBIN = "round_robin"
    WORKLOAD = "workload"


class LeadCalls(Enum):
    """Which calls' leads are distributed."""

    MISSED = "missed"
    ALL = "all"


@dataclass(frozen=True)
class OnLine:
    """The call came in on one of ``numbers``."""

    numbers: tuple[str, ...]


@dataclass(frozen=True)
class FromSource:
    """The line's CRM source (``crm_source``, the lead's SOURCE_ID) is one of ``sources``."""

    sources: tuple[str, ...]


@dataclass(frozen=True)
class LeadField:
    """A field of the lead (``crm.lead.get``) has one of ``values`` (case-insensitive; a list field: any of its
    items; enumerations by item ID, as the portal returns them); no ``values``: the field is filled in at all.
    Only the hand-over reads the lead: a rule with such a condition is decided there."""

    name: str
    values: tuple[str, ...] = ()


LeadCondition = Condition | OnLine | FromSource | LeadField
"""A lead rule's condition: a routing condition (the CRM's are false: the caller was unknown), a line, a source,
a field of the lead."""


@dataclass(frozen=True)
class LeadRule:
    when: tuple[LeadCondition, ...]
    """All must hold (empty: always)."""
    managers: tuple[str, ...]
    """One extension (``employee:``) or a queue's members (``queue:``)."""
    name: str = ""


@dataclass(frozen=True)
class LeadDistribution:
    id: str
    managers: tuple[str, ...]
    mode: LeadMode = LeadMode.ROUND_ROBIN
    rules: tuple[LeadRule, ...] = ()
    hours: str = ""
    """A schedule: outside it the lead goes to ``off_hours``."""
    off_hours: str = OWNER
    """The on-duty manager's extension, or ``owner``."""
    calls: LeadCalls = LeadCalls.MISSED


@dataclass(frozen=True)
class Plan:
    """Everything the core needs to route calls; handed to every call at its start."""

    lines: dict[str, Line]
    queues: dict[str, QueueGroup]
    menus: dict[str, IvrMenu]
    employees: dict[str, Employee]
    schedules: dict[str, Schedule] = field(default_factory=dict)
    ring_seconds: float = RING_SECONDS
    crm_lookup_timeout: float = 2.0
    voicemail_max_seconds: float = 120.0
    voicemail_prompt: str = "sound:vm-intro"
    greeting: str = ""
    """Played to every line's callers once answered, unless the line has its own; empty: none."""
    intercept_code: str = ""
    """One code a member dials to take a call ringing any of their groups (Bitrix24's single code); a group's own
    ``intercept_code`` works for that group too."""
    lead_distributions: dict[str, LeadDistribution] = field(default_factory=dict)

    def employee_by_user(self, user_id: int) -> Employee | None:
        """The first employee whose Bitrix24 user is ``user_id``.

        Looked up in an index by user, made at the first look and again when ``employees`` is another dict or has
        another size, instead of a pass over every employee (a walk call's finish asks: 620 employees in the walk
        benchmark). An index entry that no longer holds (an employee changed in place) falls back to the pass."""
        employees = self.employees
        index = self.__dict__.get("_by_user")
        if index is None or index[0] is not employees or index[1] != len(employees):
            by_user: dict[int, str] = {}
            for ext, emp in employees.items():
                by_user.setdefault(emp.user_id, ext)
            index = (employees, len(employees), by_user)
            object.__setattr__(self, "_by_user", index)
        found = employees.get(index[2].get(user_id, ""))
        if found is not None and found.user_id == user_id:
            return found
        return next((emp for emp in employees.values() if emp.user_id == user_id), None)

    def intercepts(self, queue: QueueGroup, ext: str, code: str) -> bool:
        """May member ``ext``, dialling ``code``, take a call ringing ``queue``? The group's own code or the
        telephony-wide one (no code: a dialplan older than the code argument, any of their groups)."""
        return ext in queue.members and (not code or code in (queue.intercept_code, self.intercept_code))

    def greeting_of(self, line: str) -> str:
        return self.lines[line].greeting or self.greeting

    def voicemail_prompt_of(self, line: str) -> str:
        return self.lines[line].voicemail_prompt or self.voicemail_prompt

    def line_chat(self, number: str) -> bool:
        """Whether ``number``'s finishes post the call to the employee's chat (Bitrix24's default for others)."""
        return self.lines[number].add_to_chat if number in self.lines else True

    def line_owner(self, number: str) -> int:
        """The user who owns ``number``'s calls when nobody else does: its ``default_ext``'s (a line that is not
        configured: the first configured line's that has one); 0 when there is none. Never a dismissed one."""
        lines = [self.lines[number]] if number in self.lines else list(self.lines.values())
        for line in lines:
            emp = self.employees.get(line.default_ext)
            if emp is not None and not emp.dismissed:
                return emp.user_id
        return 0
