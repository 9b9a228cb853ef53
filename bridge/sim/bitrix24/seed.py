"""Seed data (users, departments, CRM) loaded from JSON, a dict, or the built-in call centre."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

TIMEMAN_STATUSES = ("OPENED", "CLOSED", "PAUSED", "EXPIRED", "UNAVAILABLE", "NOT_INSTALLED")
STATISTICS_VIEWS = ("none", "own", "department", "all")
"""The telephony role's "Call statistics — View" level (CORE-VOX ``Security\\Permissions`` CALL_DETAIL/VIEW:
``''``, ``A`` self, ``D`` department, ``X`` any)."""


class SeedError(ValueError):
    """The seed is not usable; the message says which record and field."""


@dataclass
class Absence:
    date_from: str
    date_to: str
    name: str = "Vacation"


@dataclass
class User:
    id: int
    name: str
    last_name: str = ""
    active: bool = True
    admin: bool = False
    email: str = ""
    phone_inner: str = ""
    personal_mobile: str = ""
    personal_phone: str = ""
    work_phone: str = ""
    work_position: str = ""
    departments: list[int] = field(default_factory=list)
    timeman_status: str = "OPENED"
    is_online: bool = True
    idle_minutes: float | None = None
    """Minutes since the user's last activity in Bitrix24 (None: just now, or 2 hours for ``is_online`` false)."""
    absences: list[Absence] = field(default_factory=list)
    statistics_view: str = ""
    """One of :data:`STATISTICS_VIEWS`; empty: the portal's default (see ``Directory.statistics_view``)."""


@dataclass
class Department:
    id: int
    name: str
    parent: int | None = None
    head: int | None = None
    sort: int = 500


@dataclass
class CrmEntity:
    """A contact, company or lead; ``kind`` is the CRM_ENTITY_TYPE."""

    kind: str
    id: int
    name: str = ""
    last_name: str = ""
    title: str = ""
    phones: list[str] = field(default_factory=list)
    assigned_by: int = 1
    created_by_call: str | None = None
    status_id: str = "NEW"
    """A lead's status: NEW / IN_PROCESS are open; CONVERTED (semantic S) and JUNK (F) are closed."""
    source_id: str = "CALL"
    """A lead's SOURCE_ID: the register's CRM_SOURCE, else CALL."""
    user_fields: dict[str, Any] = field(default_factory=dict)
    """A lead's UF_ fields as crm.lead.get returns them (enumerations as item IDs, multiple fields as lists)."""

    @property
    def display_name(self) -> str:
        person = " ".join(part for part in (self.name, self.last_name) if part)
        return self.title if self.kind == "COMPANY" or not person else person


@dataclass
class Deal:
    id: int
    title: str
    contact_id: int | None = None
    company_id: int | None = None
    opportunity: float = 0.0
    currency: str = "RUB"
    assigned_by: int = 1
    stage_id: str = "NEW"
    closed: bool = False


@dataclass
class UserField:
    """A lead user field (``crm.lead.userfield.add``): a new lead gets its default, as the portal gives it: an
    enumeration's ``DEF = Y`` item IDs (a single field: the first), else ``SETTINGS.DEFAULT_VALUE``."""

    name: str
    multiple: bool = False
    default: tuple[str, ...] = ()

    @property
    def value(self) -> Any:
        """The default as crm.lead.get shows it: a list for a multiple field, else the value or None."""
        return list(self.default) if self.multiple else (self.default[0] if self.default else None)


@dataclass
class Seed:
    users: list[User]
    departments: list[Department]
    contacts: list[CrmEntity]
    companies: list[CrmEntity]
    leads: list[CrmEntity]
    deals: list[Deal]
    lead_user_fields: list[UserField] = field(default_factory=list)


def _require(record: dict[str, Any], key: str, where: str) -> Any:
    if key not in record:
        raise SeedError(f"{where}: missing {key}")
    return record[key]


def _as_int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise SeedError(f"{where}: {value!r} is not an integer") from exc


def _opt_int(value: Any, where: str) -> int | None:
    return None if value in (None, "", 0, "0") else _as_int(value, where)


def _phones(record: dict[str, Any], where: str) -> list[str]:
    raw = record.get("PHONE", [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise SeedError(f"{where}: PHONE must be a list")
    return [str(item["VALUE"] if isinstance(item, dict) else item) for item in raw]


def _user(record: dict[str, Any]) -> User:
    where = f"user {record.get('ID')!r}"
    timeman = record.get("TIMEMAN_STATUS", (record.get("TIMEMAN") or {}).get("STATUS", "OPENED"))
    if timeman not in TIMEMAN_STATUSES:
        raise SeedError(f"{where}: timeman status {timeman!r} not in {TIMEMAN_STATUSES}")
    view = str(record.get("CALL_STATISTICS", ""))
    if view and view not in STATISTICS_VIEWS:
        raise SeedError(f"{where}: CALL_STATISTICS {view!r} not in {STATISTICS_VIEWS}")
    absences = [
        Absence(str(_require(a, "FROM", where)), str(_require(a, "TO", where)), str(a.get("NAME", "Vacation")))
        for a in record.get("ABSENCES", [])
    ]
    return User(
        id=_as_int(_require(record, "ID", where), where),
        name=str(record.get("NAME", "")),
        last_name=str(record.get("LAST_NAME", "")),
        active=bool(record.get("ACTIVE", True)),
        admin=bool(record.get("ADMIN", False)),
        email=str(record.get("EMAIL", "")),
        phone_inner=str(record.get("UF_PHONE_INNER") or ""),
        personal_mobile=str(record.get("PERSONAL_MOBILE") or ""),
        personal_phone=str(record.get("PERSONAL_PHONE") or ""),
        work_phone=str(record.get("WORK_PHONE") or ""),
        work_position=str(record.get("WORK_POSITION") or ""),
        departments=[_as_int(d, where) for d in record.get("UF_DEPARTMENT", [])],
        timeman_status=str(timeman),
        is_online=bool(record.get("IS_ONLINE", True)),
        idle_minutes=None if record.get("IDLE_MINUTES") is None else float(record["IDLE_MINUTES"]),
        absences=absences,
        statistics_view=view,
    )


def _department(record: dict[str, Any]) -> Department:
    where = f"department {record.get('ID')!r}"
    return Department(
        id=_as_int(_require(record, "ID", where), where),
        name=str(_require(record, "NAME", where)),
        parent=_opt_int(record.get("PARENT"), where),
        head=_opt_int(record.get("UF_HEAD"), where),
        sort=_as_int(record.get("SORT", 500), where),
    )


def _entity(kind: str, record: dict[str, Any]) -> CrmEntity:
    where = f"{kind.lower()} {record.get('ID')!r}"
    return CrmEntity(
        kind=kind,
        id=_as_int(_require(record, "ID", where), where),
        name=str(record.get("NAME", "")),
        last_name=str(record.get("LAST_NAME", "")),
        title=str(record.get("TITLE", "")),
        phones=_phones(record, where),
        assigned_by=_as_int(record.get("ASSIGNED_BY_ID", 1), where),
        status_id=str(record.get("STATUS_ID", "NEW")),
        source_id=str(record.get("SOURCE_ID", "CALL")),
        user_fields={str(k): v for k, v in record.items() if str(k).startswith("UF_")},
    )


def _user_field(record: dict[str, Any]) -> UserField:
    name = str(record.get("FIELD_NAME", ""))
    if not name.startswith("UF_CRM_"):
        raise SeedError(f"lead user field {name!r}: FIELD_NAME must start with UF_CRM_")
    multiple = str(record.get("MULTIPLE", "N")).upper() == "Y"
    if str(record.get("USER_TYPE_ID", "string")) == "enumeration":
        default = tuple(str(item["ID"]) for item in record.get("LIST", []) if str(item.get("DEF", "N")).upper() == "Y")
        default = default if multiple else default[:1]
    else:
        value = (record.get("SETTINGS") or {}).get("DEFAULT_VALUE")
        default = (str(value),) if value not in (None, "") else ()
    return UserField(name, multiple, default)


def _deal(record: dict[str, Any]) -> Deal:
    where = f"deal {record.get('ID')!r}"
    try:
        opportunity = float(record.get("OPPORTUNITY", 0))
    except (TypeError, ValueError) as exc:
        raise SeedError(f"{where}: OPPORTUNITY is not a number") from exc
    return Deal(
        id=_as_int(_require(record, "ID", where), where),
        title=str(record.get("TITLE", f"Deal #{record.get('ID')}")),
        contact_id=_opt_int(record.get("CONTACT_ID"), where),
        company_id=_opt_int(record.get("COMPANY_ID"), where),
        opportunity=opportunity,
        currency=str(record.get("CURRENCY_ID", "RUB")),
        assigned_by=_as_int(record.get("ASSIGNED_BY_ID", 1), where),
        stage_id=str(record.get("STAGE_ID", "NEW")),
        closed=str(record.get("CLOSED", "N")).upper() in ("Y", "TRUE", "1"),
    )


def parse_seed(data: dict[str, Any]) -> Seed:
    """Validate a seed dict (the JSON layout of ``default_seed.json``)."""
    if not isinstance(data, dict):
        raise SeedError("seed must be a JSON object")
    try:
        seed = Seed(
            users=[_user(r) for r in data.get("users", [])],
            departments=[_department(r) for r in data.get("departments", [])],
            contacts=[_entity("CONTACT", r) for r in data.get("contacts", [])],
            companies=[_entity("COMPANY", r) for r in data.get("companies", [])],
            leads=[_entity("LEAD", r) for r in data.get("leads", [])],
            deals=[_deal(r) for r in data.get("deals", [])],
            lead_user_fields=[_user_field(r) for r in data.get("lead_user_fields", [])],
        )
    except (AttributeError, TypeError) as exc:
        raise SeedError(f"seed has a record of the wrong shape: {exc}") from exc
    ids = [user.id for user in seed.users]
    if len(ids) != len(set(ids)):
        raise SeedError("seed has duplicate user IDs")
    return seed


def default_seed_data() -> dict[str, Any]:
    text = resources.files("bridge.sim.bitrix24").joinpath("default_seed.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def load_seed(source: dict[str, Any] | Path | str | None) -> Seed:
    """None -> the built-in call centre; a dict; or a path to a JSON file."""
    if source is None:
        return parse_seed(default_seed_data())
    if isinstance(source, dict):
        return parse_seed(copy.deepcopy(source))
    path = Path(source)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SeedError(f"cannot read seed file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise SeedError(f"seed file {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    return parse_seed(data)
