"""One TOML file -> frozen, typed settings, with one clear error per problem.

Secrets (ARI password, AMI secret, webhook URL, OAuth client secret, application token) may be written inline,
or taken from an environment variable (``<key>_env = "NAME"``) or a file (``<key>_file = "/path"``). They are
held as :class:`Secret`, whose ``repr`` never shows the value.

Routing is written as short strings, so a line's scheme reads top to bottom:

* actions: ``queue:ID``, ``employee:EXT``, ``number:DIGITS``, ``ivr:ID``, ``responsible``,
  ``responsible:nosupervisor``, ``voicemail`` / ``voicemail:EXT``, ``hold:QUEUE``, ``hangup``;
* conditions: ``always``, ``hours:SCHEDULE``, ``closed:SCHEDULE``, ``prefix:7495,7499``, ``region:NAME``,
  ``known``, ``unknown``, ``crm:FIELD>=VALUE`` (operators ``= != > >= < <=``).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.config import checks
from bridge.config.cluster import ClusterSettings, parse_cluster
from bridge.config.events import event_mode_problems, event_mode_warnings, http_url
from bridge.config.http import HttpSettings, http_warnings, parse_http
from bridge.config.journal import JournalSettings, parse_journal
from bridge.config.reader import Reader, Secret
from bridge.config.routing import RoutingParser
from bridge.dialrules import BadDialRule, BadPhoneNumber, DialRules, parse_rule
from bridge.domain.scheme import Plan
from bridge.domain.simulation import external_numbers

EXIT_CONFIG = 78
"""Exit status for a bad configuration (``EX_CONFIG`` of sysexits.h)."""


class ConfigError(Exception):
    """All problems found in one config file, each naming its key."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))

    def render(self) -> str:
        lines = [f"error: bad configuration in {self.path} ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class AsteriskSettings:
    ari_url: str = "http://127.0.0.1:8088"
    ari_user: str = "b24bridge"
    ari_password: Secret = field(default_factory=lambda: Secret(""))
    app: str = "b24bridge"
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_user: str = "b24bridge"
    ami_secret: Secret = field(default_factory=lambda: Secret(""))
    agent_endpoint: str = "PJSIP/{ext}"
    """Dial string template of an agent's device."""
    trunk_endpoint: str = "PJSIP/{number}@trunk"
    dial_rules: DialRules = field(default_factory=DialRules)
    """How every external number is rewritten into the trunk's form before it is dialled."""
    device: str = "PJSIP/{ext}"
    """Device whose state decides an agent's availability."""
    moh_class: str = "default"
    outbound_contexts: tuple[str, ...] = ("from-agents",)
    """Dialplan contexts whose calls are outbound calls from desk phones (watched on AMI)."""
    monitor_lines: tuple[str, ...] = ()
    """Lines the dialplan routes itself; the bridge only mirrors them from AMI."""
    ping_interval: float = 10.0
    reconnect_max_delay: float = 30.0
    rest_over_websocket: str = "auto"
    """ARI REST requests over the events WebSocket (Asterisk >= 20.14): ``auto`` (when the PBX answers one), ``on``
    or ``off`` (plain HTTP)."""


@dataclass(frozen=True)
class OAuthSettings:
    portal: str
    client_id: str
    client_secret: Secret
    token_file: Path
    oauth_host: str = "https://oauth.bitrix.info"


@dataclass(frozen=True)
class Bitrix24Settings:
    webhook_url: Secret | None = None
    oauth: OAuthSettings | None = None
    rate: float = 2.0
    """Requests per second the portal's bucket drains (2 standard, 5 enterprise)."""
    burst: int = 50
    """The bucket's size (50 standard, 250 enterprise)."""
    application_token: Secret = field(default_factory=lambda: Secret(""))
    """``auth[application_token]`` that genuine events carry: from the outbound webhook's form (webhook mode);
    in OAuth mode optional, captured from ``ONAPPINSTALL`` into the token file."""
    events: str = "push"
    """How click-to-call events arrive: ``push`` (HTTP handler), ``pull`` (``event.offline.get``) or ``off``."""
    events_url: str = ""
    """Public URL of our event handler: ``event.bind``'s handler in OAuth push mode (required there)."""
    poll_interval: float = 2.0
    register_timeout: float = 5.0
    """A call whose ``register`` has not gone through in this time is mirrored offline at its end."""
    request_timeout: float = 30.0
    record_inline_limit: int = 5 * 1024 * 1024
    """Recordings up to this size are sent base64 in ``attachRecord``; larger ones through ``uploadUrl``."""
    directory_refresh: float = 300.0
    availability_ttl: float = 30.0
    workload_ttl: float = 60.0
    """Open leads / deals per employee (``workload``) are counted again at most this often."""


@dataclass(frozen=True)
class EmployeesSettings:
    auto_map: bool = True
    """Also map extensions from Bitrix24 users' ``UF_PHONE_INNER``."""
    time_tracking: bool = False
    """Skip agents who have not clocked in (Bitrix24 time management). Off unless the company uses it."""
    skip_absent: bool = True
    """Skip agents the Bitrix24 absence chart marks absent today."""
    require_online: bool = False
    """Skip agents Bitrix24 shows offline (``user.get`` ``IS_ONLINE``, ``LAST_ACTIVITY_DATE``): for agents who take
    calls in the Bitrix24 app. When the portal cannot say (unreachable, no ``user`` scope) nobody is skipped."""
    online_minutes: int = 24
    """Offline also when the last activity is older than this (Bitrix24's own IS_ONLINE window is 24 minutes)."""


@dataclass(frozen=True)
class Settings:
    path: Path
    asterisk: AsteriskSettings
    bitrix24: Bitrix24Settings
    journal: JournalSettings
    http: HttpSettings
    employees: EmployeesSettings
    plan: Plan
    cluster: ClusterSettings = field(default_factory=ClusterSettings)


_ASTERISK_KEYS = {
    "ari_url", "ari_user", "ari_password", "ari_password_env", "ari_password_file", "app", "ami_host",
    "ami_port", "ami_user", "ami_secret", "ami_secret_env", "ami_secret_file", "agent_endpoint",
    "trunk_endpoint", "dial_rules", "device", "moh_class", "outbound_contexts", "monitor_lines", "ping_interval",
    "reconnect_max_delay", "rest_over_websocket",
}  # fmt: skip


def _asterisk(r: Reader, data: dict[str, Any]) -> AsteriskSettings:
    k = "asterisk."
    r.unknown(data, k, _ASTERISK_KEYS)
    d = AsteriskSettings()
    ari_url = r.get(data, k, "ari_url", str, d.ari_url)
    if not http_url(ari_url):
        r.problem(f"{k}ari_url", f"must be an http(s) URL, got {ari_url!r}")
    for name in ("agent_endpoint", "device"):
        if "{ext}" not in r.get(data, k, name, str, "{ext}"):
            r.problem(f"{k}{name}", "must contain {ext}")
    if "{number}" not in r.get(data, k, "trunk_endpoint", str, "{number}"):
        r.problem(f"{k}trunk_endpoint", "must contain {number}")
    port = r.get(data, k, "ami_port", int, d.ami_port)
    if not 0 < port < 65536:
        r.problem(f"{k}ami_port", f"must be a TCP port, got {port}")
    over_socket = _rest_over_websocket(r, data, k, d.rest_over_websocket)
    return AsteriskSettings(
        ari_url=ari_url.rstrip("/"),
        ari_user=r.get(data, k, "ari_user", str, d.ari_user),
        ari_password=r.secret(data, k, "ari_password", required=True) or Secret(""),
        app=r.get(data, k, "app", str, d.app),
        ami_host=r.get(data, k, "ami_host", str, d.ami_host),
        ami_port=port,
        ami_user=r.get(data, k, "ami_user", str, d.ami_user),
        ami_secret=r.secret(data, k, "ami_secret", required=True) or Secret(""),
        agent_endpoint=r.get(data, k, "agent_endpoint", str, d.agent_endpoint),
        trunk_endpoint=r.get(data, k, "trunk_endpoint", str, d.trunk_endpoint),
        dial_rules=_dial_rules(r, data, k),
        device=r.get(data, k, "device", str, d.device),
        moh_class=r.get(data, k, "moh_class", str, d.moh_class),
        outbound_contexts=tuple(_strings(r, data, k, "outbound_contexts", d.outbound_contexts)),
        monitor_lines=tuple(str(x) for x in r.get(data, k, "monitor_lines", list, [])),
        ping_interval=r.positive(data, k, "ping_interval", float, d.ping_interval),
        reconnect_max_delay=r.positive(data, k, "reconnect_max_delay", float, d.reconnect_max_delay),
        rest_over_websocket=over_socket,
    )


REST_OVER_WEBSOCKET = ("auto", "on", "off")


def _rest_over_websocket(r: Reader, data: dict[str, Any], k: str, default: str) -> str:
    """``auto``, ``on`` or ``off``; a TOML boolean is named as such (``true`` must be written ``"on"``)."""
    raw = data.get("rest_over_websocket", default)
    if isinstance(raw, bool):
        r.problem(f"{k}rest_over_websocket", f'must be "auto", "on" or "off" (a string), got {str(raw).lower()}')
        return default
    value = r.get(data, k, "rest_over_websocket", str, default)
    if value not in REST_OVER_WEBSOCKET:
        r.problem(f"{k}rest_over_websocket", f'must be "auto", "on" or "off", got {value!r}')
        return default
    return str(value)


_B24_KEYS = {
    "webhook_url", "webhook_url_env", "webhook_url_file", "oauth", "rate", "burst", "application_token",
    "application_token_env", "application_token_file", "events", "events_url", "poll_interval",
    "register_timeout", "request_timeout", "record_inline_limit", "directory_refresh", "availability_ttl",
    "workload_ttl",
}  # fmt: skip
_OAUTH_KEYS = {"portal", "client_id", "client_secret", "client_secret_env", "client_secret_file", "token_file",
               "oauth_host"}  # fmt: skip


def _bitrix24(r: Reader, data: dict[str, Any]) -> Bitrix24Settings:
    k = "bitrix24."
    r.unknown(data, k, _B24_KEYS)
    d = Bitrix24Settings()
    webhook = r.secret(data, k, "webhook_url", required=False)
    url = webhook.reveal() if webhook is not None else ""
    if webhook is not None and not (re.fullmatch(r"https?://[^/]+/rest/[0-9]+/[^/]+/?", url) and http_url(url)):
        r.problem(f"{k}webhook_url", "must look like https://PORTAL/rest/USER_ID/CODE/ (value not shown)")
    oauth = None
    if "oauth" in data:
        o = r.table(data, k, "oauth")
        ko = f"{k}oauth."
        r.unknown(o, ko, _OAUTH_KEYS)
        for req in ("portal", "client_id", "token_file"):
            if req not in o:
                r.problem(f"{ko}{req}", "missing")
        oauth = OAuthSettings(
            portal=r.get(o, ko, "portal", str, ""),
            client_id=r.get(o, ko, "client_id", str, ""),
            client_secret=r.secret(o, ko, "client_secret", required=True) or Secret(""),
            token_file=r.state_path(r.get(o, ko, "token_file", str, "b24-token.json"), f"{ko}token_file"),
            oauth_host=r.get(o, ko, "oauth_host", str, "https://oauth.bitrix.info").rstrip("/"),
        )
    if (webhook is None) == (oauth is None):
        r.problem(f"{k}webhook_url", "set exactly one of bitrix24.webhook_url and [bitrix24.oauth]")
    events = r.get(data, k, "events", str, d.events)
    if events not in ("push", "pull", "off"):
        r.problem(f"{k}events", f"must be push, pull or off, got {events!r}")
    application_token = r.secret(data, k, "application_token", required=False)
    events_url = r.get(data, k, "events_url", str, "").strip()
    if (webhook is None) != (oauth is None):
        for name, problem in event_mode_problems(webhook is not None, events, events_url, application_token):
            r.problem(f"{k}{name}", problem)
    return Bitrix24Settings(
        webhook_url=webhook,
        oauth=oauth,
        rate=r.positive(data, k, "rate", float, d.rate),
        burst=r.positive(data, k, "burst", int, d.burst),
        application_token=application_token or Secret(""),
        events=events,
        events_url=events_url,
        poll_interval=r.positive(data, k, "poll_interval", float, d.poll_interval),
        register_timeout=r.positive(data, k, "register_timeout", float, d.register_timeout),
        request_timeout=r.positive(data, k, "request_timeout", float, d.request_timeout),
        record_inline_limit=r.positive(data, k, "record_inline_limit", int, d.record_inline_limit),
        directory_refresh=r.positive(data, k, "directory_refresh", float, d.directory_refresh),
        availability_ttl=r.positive(data, k, "availability_ttl", float, d.availability_ttl),
        workload_ttl=r.positive(data, k, "workload_ttl", float, d.workload_ttl),
    )


def _dial_rules(r: Reader, data: dict[str, Any], key: str) -> DialRules:
    rules = []
    for index, text in enumerate(_strings(r, data, key, "dial_rules", ())):
        try:
            rules.append(parse_rule(text))
        except BadDialRule as exc:
            r.problem(f"{key}dial_rules[{index}]", f"rule {text!r}: {exc}")
    return DialRules(tuple(rules))


def _dialled_numbers(r: Reader, rules: DialRules, plan: Plan) -> None:
    """Every mobile and forward target of the plan must still be dialable after the dial rules."""
    for number in sorted(external_numbers(plan)):
        try:
            rules.dialled(number)
        except BadPhoneNumber as exc:
            r.problem("asterisk.dial_rules", f"the plan's number {number} would not be dialled: {exc}")


def config_warnings(settings: Settings) -> list[str]:
    """Things a valid configuration will not do that its author may expect (printed by check-config, logged at
    start)."""
    b = settings.bitrix24
    warnings = event_mode_warnings(b.webhook_url is not None, b.events, b.events_url) + http_warnings(settings.http)
    warnings += checks.unreachable_rules(settings.plan) + checks.crowded_groups(settings.plan)
    if settings.employees.auto_map:
        warnings += checks.auto_mapped(settings.plan)
    if settings.journal.backend == "sqlite" and not settings.journal.relative:
        warnings += checks.under_read_only_tree("journal.path", settings.journal.path)
    return warnings


def file_problems(settings: Settings) -> list[str]:
    """The files the daemon writes whose directory is missing or not writable (checked before it starts)."""
    problems: list[str] = []
    if settings.journal.backend == "sqlite":
        problems += checks.writable_file_problems("journal.path", settings.journal.path)
    if settings.bitrix24.oauth is not None:
        problems += checks.writable_file_problems("bitrix24.oauth.token_file", settings.bitrix24.oauth.token_file)
    return problems


def _strings(r: Reader, data: dict[str, Any], key: str, name: str, default: tuple[str, ...]) -> list[str]:
    values = r.get(data, key, name, list, list(default))
    if not all(isinstance(value, str) for value in values):
        r.problem(f"{key}{name}", "must be a list of strings")
        return list(default)
    return list(values)


def parse_settings(data: dict[str, Any], *, path: Path, env: dict[str, str] | None = None) -> Settings:
    """Turn parsed TOML into settings; raise :class:`ConfigError` listing every problem."""
    r = Reader(path.parent, dict(os.environ) if env is None else env)
    r.unknown(data, "", {"asterisk", "bitrix24", "journal", "http", "employees", "routing", "regions",
                         "schedules", "queues", "ivr", "lines", "lead_distribution", "cluster"})  # fmt: skip
    asterisk = _asterisk(r, r.table(data, "", "asterisk"))
    bitrix24 = _bitrix24(r, r.table(data, "", "bitrix24"))
    journal = parse_journal(r, r.table(data, "", "journal"), asterisk)
    http = parse_http(r, r.table(data, "", "http"))
    emp_data = r.table(data, "", "employees")
    employees = EmployeesSettings(
        auto_map=r.get(emp_data, "employees.", "auto_map", bool, True),
        time_tracking=r.get(emp_data, "employees.", "time_tracking", bool, False),
        skip_absent=r.get(emp_data, "employees.", "skip_absent", bool, True),
        require_online=r.get(emp_data, "employees.", "require_online", bool, False),
        online_minutes=r.positive(emp_data, "employees.", "online_minutes", int, 24),
    )
    plan = RoutingParser(r.problem, _check_timezone, _parse_hours).plan(data)
    _dialled_numbers(r, asterisk.dial_rules, plan)
    cluster = parse_cluster(r, r.table(data, "", "cluster"), journal_url=journal.url, ari_url=asterisk.ari_url,
                            app=asterisk.app)  # fmt: skip
    if r.problems:
        raise ConfigError(path, r.problems)
    return Settings(path, asterisk, bitrix24, journal, http, employees, plan, cluster)


def _check_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory such as "Europe", a name too long
        return False
    return True


def _parse_hours(text: str) -> tuple[time, time]:
    """``"09:00-18:00"`` -> (09:00, 18:00); raises ValueError."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError("expected HH:MM-HH:MM")
    hours = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    if any(moment.tzinfo is not None for moment in hours):
        raise ValueError("office hours take the schedule's timezone, not an offset")
    return hours


def load_config(path: Path, env: dict[str, str] | None = None) -> Settings:
    """Read and validate the TOML file at ``path``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"not UTF-8 text (byte {exc.start})"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"TOML syntax: {exc}"]) from exc
    except RecursionError as exc:
        raise ConfigError(path, ["TOML syntax: arrays or tables nested too deeply"]) from exc
    except ValueError as exc:  # int() of a number over 4300 digits, which tomllib does not catch
        raise ConfigError(path, [f"TOML syntax: a value that cannot be read ({type(exc).__name__})"]) from exc
    return parse_settings(data, path=path, env=env)
