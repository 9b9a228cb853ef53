"""Structured logs: JSON lines for machines, the console renderer on a terminal, secrets redacted.

Per-call context (``call_id``, ``linkedid``, ``line``) is bound with :func:`bind_call` through contextvars, so
every line logged while a call is being handled carries it. ``call_id`` is always the bridge's own id of the call
(the caller's channel, ``c2c-...`` for a click-to-call); Bitrix24's ``CALL_ID`` goes in ``b24_call_id``. Delivery
sends many calls in one batch: its lines name each operation's call with :func:`call_keys`. Outbound calls dialled
from a phone have no line (``line`` is ``""``).

Event names are ``noun.verb``; this table is the one place they are documented (a test fails when a name the
daemon logs is missing here). Levels: debug is noise for developers, info is the story of each call, warning is
something an operator may want to look at, error needs action.

=================================  ====================================================================================
event                              meaning
=================================  ====================================================================================
``daemon.started``                 the daemon is up: HTTP address and lines
``daemon.stopping``                SIGTERM/SIGINT: no new calls; the calls in progress are mirrored for a grace period
``daemon.calls_left``              the grace period ended with calls still up; their operations stay in the journal
``daemon.unflushed``               operations left in the journal at shutdown; they are sent after the next start
``daemon.unwritten``               (PostgreSQL) at shutdown the journal's database took not all queued appends in time
                                   (``queued``): those operations are lost
``daemon.journal_shared``          the journal is the shared PostgreSQL one (``journal``, no password; ``bridge_id``)
``daemon.tasks_stuck``             at shutdown these tasks outlived repeated cancellation (``tasks``); left behind
``daemon.stopped``                 the daemon has stopped
``daemon.refused``                 the daemon would not start (e.g. another process holds the journal)
``daemon.systemname_clash``       on a shared journal a live bridge of another PBX reports this PBX's asterisk.conf
                                   ``systemname``, or one of them has none (colliding channel ids): stops, exit 78
``daemon.systemname_unchecked``   the shared journal did not answer when the PBX's ``systemname`` was to be checked:
                                   the bridge goes on; its next connection checks again
``daemon.pbx_lost``                the bridge stepped down from its PBX (``reason``: another client took the ARI
                                   application, or the PBX's leadership was lost): it stops at once, exit code 1, and
                                   the service manager restarts it as a standby
``daemon.task_crashed``            one of the daemon's tasks ended with an error (alert on this)
``daemon.config_warning``          the configuration is valid but will not do something expected (e.g. webhook mode
                                   and click-to-call); ``warning`` says what and what to do instead
``gc.tuned``                       start-up is over: its objects frozen out of garbage collection (debug)
``dispatch.error``                 handling one input failed; that input is dropped, every other call goes on
``call.started``                   an inbound call entered the Stasis application
``call.transition``                the core moved a call from one state to another (``on``, ``from``, ``to``)
``call.ignored``                   an event that has no meaning in the call's state (nothing done)
``call.unknown``                   an event for a call this process does not know (debug)
``call.warning``                   the core met a problem and worked around it (unknown line, routing loop, ...)
``call.ended``                     a call is over: ``status``, ``duration``, ``handled_by``, its CRM legs
``call.refused``                   a call arrived while the daemon was stopping and was hung up
``call.duplicate_start``           a second start for a call already known (ignored)
``call.intercept_refused``         an intercept code was dialled but no call is ringing for that member
``call.reconciled``                after a reconnect or a restart: a call found ended (finished), in a conversation
                                   (adopted), waiting (re-routed), or an orphan leg hung up (``found`` says which)
``call.parked``                    after a restart, a journaled caller's start waits for recovery's decision
``recovery.look_failed``           recovery could not look at the PBX (ARI/AMI request failed); it looks again
``observed.duplicate_start``       a second start of a watched (AMI) call (ignored)
``leg.ringing``                    an agent or number leg was originated (``leg``, ``endpoint``)
``leg.exists``                     an originate was retried and the leg was already ringing (409, harmless)
``leg.unavailable``                Asterisk could not create the leg's channel (ARI 500 "Allocation failed": a phone
                                   that is not registered); the walk goes on as for an unavailable agent
``leg.kept``                       a ring timeout's cancel was not sent: the leg had answered (the answer wins)
``leg.answer_not_noted``           the PBX did not keep an answered leg's moment (``B24_ANSWERED``): a bridge that
                                   adopts the call after a restart counts its talk from when it saw it
``leg.not_joined``                 a cancel hung up the leg before it could join the caller: reported as failed
``leg.released``                   the core stopped a leg (``leg``, ``ext``, ``reason``: timeout, busy elsewhere,
                                   unregistered, absent, not clocked in, answered elsewhere, caller gone, ...)
``agent.busy_elsewhere``           RINGINUSE on a device our leg rings and no answer came within the settle time: the
                                   agent took another call (``ext``, ``device_state``)
``clicktocall.started``            a click-to-call rings the employee's phone
``clicktocall.rejected``           a click-to-call or callback post was refused (``reason``: token, number, ...)
``status.refused``                 a request for ``/status`` was refused: no or a wrong token, or no
                                   ``http.status_token`` on a non-loopback listener (``reason``, ``peer``; the token is
                                   never logged)
``clicktocall.refused``            a valid click-to-call could not be placed (no extension, shutting down)
``clicktocall.left_to_other_bridge`` another bridge of the portal carries out this click-to-call (``reason``)
``clicktocall.claim_failed``       the shared journal did not answer a click-to-call's claim: only a bridge with both
                                   the employee's phone and the call's line acts (``acting``)
``clicktocall.device_unknown``     the PBX did not say whether it has the employee's device (taken as having it)
``clicktocall.undialable``         a click-to-call's number is not dialable even after ``asterisk.dial_rules``
                                   (``reason``): its CALL_ID is finished as 404 with that reason, nothing is dialled
``callback.dialling``              a callback request dials the client
``callback.rejected``              a callback request for an unknown line, or whose number the dial rules cannot dial
``callback.failed``                the PBX refused to dial a callback
``crm.queued``                     a Bitrix24 operation was written to the journal
``crm.continued``                  a re-routed call keeps the CRM leg the dead process registered (no 2nd register)
``crm.request``                    one HTTP request to Bitrix24 (debug)
``crm.delivered``                  Bitrix24 confirmed an operation (``method``, ``crm_leg``; ``b24_call_id`` once known)
``crm.skipped``                    an operation settled without sending (a card for a call already over)
``crm.retry``                      a transient Bitrix24 error (network, 5xx, 503, 429); retried with back-off
``crm.limited``                    a Bitrix24 limit (503 QUERY_LIMIT_EXCEEDED, 429): slowed down by ``pause`` s
``crm.failed``                     a permanent error: the operation is parked (``b24-bridge journal --status failed``)
``crm.offline``                    a call's register did not go through in time: it is mirrored at its end (SHOW=0)
``crm.replayed``                   an offline call was mirrored, or found already there (``already_present``)
``crm.statistics_access``          what ``voximplant.statistic.get`` shows the app user (``level`` all / limited /
                                   denied); below all, a doubtful call it may hide is parked (``crm.failed``)
``crm.back``                       Bitrix24 answers again after trouble; waiting operations are sent at once
``crm.probe_failed``               the probe for Bitrix24's return failed; ``next_probe_at`` says when the next one is
``crm.token_refreshed``            the OAuth access token was refreshed and stored
``crm.lookup_timeout``             the CRM did not say who the caller is in time; the call is routed without it
``crm.lookup_failed``              the caller lookup failed; the call is routed without it
``crm.lookup_partial``             the caller was found but a detail (their deal) could not be read
``crm.line_failed``                creating an external line at start failed
``crm.event_bind_failed``          binding the click-to-call events at start failed (OAuth mode)
``crm.event_bound``                a click-to-call event is bound to ``handler`` (``events_url`` or the offline queue)
``crm.app_installed``              a verified ONAPPINSTALL: its token pair and application_token are in ``token_file``
``crm.install_rejected``           an ONAPPINSTALL post was refused (``reason``: unverifiable token, webhook mode, ...);
                                   nothing was stored
``crm.event_poll_failed``          polling ``event.offline.get`` failed (pull mode); retried
``leads.distributed``              a call's lead goes to a manager (``distribution``, ``user_id``, ``why``): journaled
                                   after its finish
``leads.assigned``                 Bitrix24 made the manager responsible for the lead the call created (``lead``)
``leads.notify_failed``            the lead is assigned but its notification was refused (a dismissed user, no ``im``
                                   scope)
``workload.counted``               open leads / deals per extension were counted (debug)
``workload.failed``                counting open leads / deals failed; the last counts stay in use
``tallies.failed``                 the journal could not keep the distribution counts; they go on in memory
``delivery.requeued``              operations found in flight at start (after a crash) are checked and resent
``delivery.claimed_elsewhere``     another sender of a shared journal holds operations of a batch: left to it
``delivery.error``                 an unexpected error in the delivery loop; it goes on
``directory.refreshed``            the extension <-> user map was read from Bitrix24
``directory.stale``                the map could not be refreshed (or came back partial); the last good one is kept
``directory.dismissed``            configured employees whose users Bitrix24 has not as active (``employees``: ext ->
                                   user): skipped in walks, never named in a finish (it would be refused for good)
``directory.duplicate_extension``  two users share an extension; the configured or first one wins
``directory.bad_extension``        a user's ``UF_PHONE_INNER`` is not a dialable extension (``user_id``): not mapped
``directory.unresolved``           extensions the routing names that neither ``[employees.map]`` nor an active user
                                   has (``extensions``, ``named_by``: the config keys): calls skip them as
                                   unavailable; logged when the set changes (empty, at info, once all resolve)
``directory.time_tracking_off``    Bitrix24 has no time management: nobody is skipped as not clocked in
``directory.availability_failed``  absence / time-tracking facts could not be read; agents count as present
``directory.online_unknown``       (``require_online``) Bitrix24 cannot say who is online (unreachable, or the app user
                                   may not read users: ``code``); nobody is skipped as offline; once per episode
``directory.online_known``         (``require_online``) online status is read again after ``directory.online_unknown``
``journal.opened``                 the journal was opened (debug)
``journal.appended``               an operation was written (debug)
``journal.not_wal``                the journal's file system refused WAL mode (durability is still full)
``journal.bad_row``                a journal row could not be read (left as it is, reported)
``journal.sync_failed``            fsyncing the journal failed (the disk); nothing waiting on it is sent
``journal.slow_sync``              fsyncing the journal took over a second (in its worker thread: calls go on)
``journal.checkpoint_failed``      copying the journal's WAL into its database failed; tried again later
``journal.rider_failed``           a write that rides with the next commit (a tally) failed (``error``): dropped, the
                                   commit it rode on stands; or the commit it waited for failed: it waits for the next
``journal.unclean_restart``        the machine restarted under the last sender: its unsettled calls are checked first
``journal.reconnected``            the PostgreSQL journal's connection was lost (a server restart) and is open again
``journal.close_failed``           the journal could not be marked closed cleanly (its next sender checks more)
``journal.write_failed``           (PostgreSQL) an append could not be committed (``error``): the queue waits in order
                                   and is written again; nothing of it is sent before it is written
``journal.listen_failed``          (PostgreSQL) the delivery leader's connection that hears appends failed (``error``):
                                   it looks at the outbox every 0.25 s meanwhile and listens again after a pause
``journal.write_dropped``          (PostgreSQL) a queued write failed for a reason not the database's: dropped alone
``journal.unreadable``             (PostgreSQL) the figures of the status page, /healthz and metrics could not be
                                   read (``error``): /healthz reports the journal unreadable until they are again
``replay.bad_row``                 the replay met a journal row it could not read (reported in its summary)
``leadership.acquired``            this bridge took a cluster role (``role``: delivery or pbx, ``scope``: the portal or
                                   PBX it is for); it runs that role's work from now on
``leadership.waiting``             another bridge holds the role (``holder``: its bridge id): this one is on standby and
                                   tries again every second
``leadership.lost``                the database connection that held the role failed: the role's work was stopped at
                                   once (another bridge may hold it now); this bridge waits for it again
``leadership.stepped_down``        the role's work ended by itself (``reason``, e.g. the ARI application was replaced):
                                   the role was released for another bridge
``leadership.db_unreachable``      the cluster database cannot be reached (``error``): no role is taken until it can
``leadership.db_lost``             a query on the leadership connection failed or timed out (``held``: it held the role)
``budget.shared``                  (PostgreSQL journal) every request to ``portal`` now takes its slot from the bucket
                                   the bridges share there (``bridges``: how many took from it lately)
``budget.fallback``                the shared bucket did not answer in time (``error``): this bridge paces itself at
                                   ``rate`` requests/s, its share of ``bridges``, and tries again after ``retry`` s
``budget.restored``                the shared bucket answers again: requests take their slots from it again
``pbx.connected``                  ARI or AMI (``link``) connected
``pbx.disconnected``               ARI or AMI disconnected; it reconnects by itself
``pbx.connect_failed``             a connection attempt failed (``error``); it is retried with back-off
``pbx.reconnecting``               waiting ``delay`` seconds before the next attempt
``pbx.resynced``                   after a (re)connect: the channels that exist now were listed and calls reconciled
``pbx.pong_missing``               AMI did not answer a Ping in time: the connection is treated as dead
``pbx.socket_error``               the ARI events socket reported an error
``pbx.rest_over_websocket``        ARI requests go over the events socket from now on (``mode`` ``auto``: the PBX
                                   answered the probe; ``on``: as configured); each connection logs it once
``pbx.event_filter_refused``       the PBX refused the ARI event filter (``status``, ``error``; an Asterisk before
                                   13.26/16.3): every event of the application comes, costing CPU, nothing else
``pbx.app_replaced``               another client subscribed to the bridge's Stasis application and took it (Asterisk
                                   sends ``ApplicationReplaced``): the ARI link stops for good, the daemon steps down
``pbx.bad_input``                  a malformed AMI frame or ARI message was dropped (``reason``)
``pbx.command_failed``             Asterisk refused a command for a call (``status``, ``error``)
``pbx.command_retry``              a command met a broken connection; it is tried again once ARI is back
``pbx.command_dropped``            a command waiting for ARI was dropped: the caller has hung up meanwhile
``pbx.command_refused``            a command was not sent because its input was unsafe (e.g. a number with symbols)
``pbx.unsupported_command``        a command the ARI link does not carry out (a bug)
``pbx.cleanup_failed``             destroying a finished call's bridge failed
``pbx.device_states_unavailable``  AMI ``DeviceStateList`` is not allowed or not there: availability from events only
``pbx.ami_filters``                the ``Filter`` patterns the link adds at each connect (``filters``; see eventfilter)
``pbx.ami_filter_refused``         AMI refused ``Filter`` (needs ``write = system``): mask and eventfilter lines apply
``pbx.unexpected_stasis``          a channel entered the Stasis app with arguments the bridge does not route
``pbx.trace_delete_failed``        the Originate that deletes a fallback call's AstDB trace failed (``error``)
``fallback.mirrored``              a call the fallback dialplan handled while the bridge was away is in the journal
                                   (offline: register SHOW=0 with its real start, finish, recording)
``fallback.forget_failed``         its AstDB trace could not be deleted yet; the next look deletes it (never mirrored
                                   twice: the journal knows the call)
``fallback.not_mirrored``          a trace names a line that is not configured or nobody owns (``reason``); left in
                                   AstDB
``fallback.incomplete``            a fallback call's channel is gone but its trace has no end (Asterisk stopped
                                   mid-call): mirrored as missed for the line's owner
``fallback.bad_trace``             a trace in AstDB ``/b24fallback`` that cannot be read (left there)
``fallback.unreadable``            reading the traces over AMI failed (``DBGetTree`` needs ``reporting``); retried
=================================  ====================================================================================
"""

from __future__ import annotations

import contextvars
import json as jsonlib
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO
from urllib.parse import quote

import orjson
import structlog
from structlog._config import _CONFIG  # HotLogger reads the configuration in force (get_config copies it in a dict)
from structlog.contextvars import _CONTEXT_VARS, STRUCTLOG_KEY_PREFIX

REDACTED = "***"
_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()
_any_secret: re.Pattern[str] | None = None
"""One scan for all the secrets: a value without any (nearly every one) costs a single C-level search."""


def _secrets_changed() -> None:
    global _longest_first, _any_secret
    _longest_first = tuple(sorted(_secrets, key=len, reverse=True))
    _any_secret = re.compile("|".join(map(re.escape, _longest_first))) if _secrets else None


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values (passwords, tokens, webhook codes) so that no log line shows them.

    Also the forms a message may show a value in: escaped as Python's ``repr`` writes it and percent-encoded.
    """
    for value in values:
        if "/rest/" in value:
            # a webhook URL: its code is the secret; the portal's name stays readable
            value = value.rstrip("/").rsplit("/", 1)[-1]
        if len(value) < 4:
            continue
        escaped = repr(value)[1:-1]
        _secrets.update({value, escaped, value.replace("\\", "\\\\").replace("'", "\\'"), quote(value, safe="")})
    _secrets_changed()


def clear_secrets() -> None:
    _secrets.clear()
    _secrets_changed()


def redact_text(text: str) -> str:
    if _any_secret is None or _any_secret.search(text) is None:
        return text
    for secret in _longest_first:  # longest first: a secret that holds another is replaced whole
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if value is None or kind is int or kind is bool or kind is float:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {_redact(k): _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, BaseException):
        return redact_text(repr(value))
    # anything else is rendered by its repr (bytes, URLs, library objects): redact that when it shows a secret
    shown = value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else repr(value)
    redacted = redact_text(shown)
    return value if redacted == shown else redacted


def redact_processor(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: replace every registered secret wherever it appears in the event."""
    if _any_secret is None:
        return event_dict
    texts = []
    for key, value in event_dict.items():
        kind = type(value)
        if kind is str:
            texts.append(value)
        elif value is not None and kind is not int and kind is not float and kind is not bool:
            redacted = _redact(value)
            if redacted is not value:
                event_dict[key] = redacted
    # the plain strings (nearly all values) in one search; a secret never holds a NUL
    if _any_secret.search("\0".join(texts)) is not None:
        for key, value in event_dict.items():
            if type(value) is str:
                event_dict[key] = redact_text(value)
    return event_dict


def _merge_context(_logger: Any, _method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """What structlog's ``merge_contextvars`` adds (the values bound with ``bind_contextvars``; a key the line names
    itself wins), read from structlog's own few variables instead of a copy of the whole context, every library's
    variables included, searched by name prefix (1 us a line against 2-3 us). The registry is structlog's own
    (``structlog.contextvars._CONTEXT_VARS``, where ``bind_contextvars`` keeps each key's variable): an upgrade that
    drops it fails this module's import, and the test of bound keys."""
    for key, var in _bound_keys():
        value = var.get(Ellipsis)
        if value is not Ellipsis:
            event_dict.setdefault(key, value)
    return event_dict


def _bound_keys() -> tuple[tuple[str, contextvars.ContextVar[Any]], ...]:
    """Each key ever bound through structlog's contextvars and its variable (structlog adds keys, never removes
    one: the list is made again when there are more)."""
    known = _keys_known
    if known[0] != len(_CONTEXT_VARS):
        return _learn_bound_keys()
    return known[1]


def _learn_bound_keys() -> tuple[tuple[str, contextvars.ContextVar[Any]], ...]:
    global _keys_known
    items = tuple(_CONTEXT_VARS.items())  # a copy: another thread may bind a new key meanwhile
    _keys_known = (len(items), tuple((key[_PREFIX_LENGTH:], var) for key, var in items))
    return _keys_known[1]


_keys_known: tuple[int, tuple[tuple[str, contextvars.ContextVar[Any]], ...]] = (0, ())
_PREFIX_LENGTH = len(STRUCTLOG_KEY_PREFIX)

_LEVEL_NAMES = {"warn": "warning", "exception": "error"}
"""The method names structlog's ``add_log_level`` renames (the others are the level's name)."""


class _LevelAndTime:
    """``level`` and ``timestamp`` in one processor: what structlog's ``add_log_level`` and ``TimeStamper(fmt="iso",
    utc=True)`` add (``2026-12-07T10:00:00.123456Z``), with the date and time of day formatted once a second instead
    of a ``datetime`` made and formatted for every line (about 1.3 us of 2 us a line, ~19 lines a walk call)."""

    __slots__ = ("_second",)

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")
        """The second and its text, swapped as one (the journal's worker thread logs too)."""

    def __call__(
        self, _logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict["level"] = _LEVEL_NAMES.get(method_name, method_name)
        event_dict["timestamp"] = self.now()
        return event_dict

    def now(self) -> str:
        """The timestamp of a line written now."""
        second, nanos = divmod(time.time_ns(), 1_000_000_000)
        known = self._second
        if known[0] != second:
            known = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
        return "%s%06dZ" % (known[1], nanos // 1000)  # noqa: UP031 (a third faster than the f-string)


def _exc_info(logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog's ``format_exc_info`` for a line that carries ``exc_info`` (``log.exception``, a library's error);
    the others, nearly all, skip its two calls."""
    if "exc_info" in event_dict:
        return structlog.processors.format_exc_info(logger, name, event_dict)  # type: ignore[arg-type]
    return event_dict


_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def _json_line(_logger: Any, _name: str, event_dict: Mapping[str, Any]) -> str:
    """The renderer: one JSON line, by orjson (a third of the cost of the standard library's encoder on a
    ``call.transition`` line). What JSON has no form for is shown by its ``repr``, as structlog's own renderer does;
    UTF-8 as it is. A processor of its own, not a serializer under ``JSONRenderer``: one call a line less."""
    try:
        return orjson.dumps(event_dict, default=repr, option=_JSON_OPTIONS).decode()
    except TypeError:  # an integer beyond 64 bits, a value whose repr fails...: the standard library's encoder
        return jsonlib.dumps(event_dict, default=repr, ensure_ascii=False)


class _LineWriter:
    """Writes each rendered line to the stream and flushes it: structlog's ``PrintLogger`` does the same, but a new
    one (with a lock looked up in a weak dictionary) was made for every line; one writer serves every logger.

    (Flushing once per event-loop turn instead was tried in the walk benchmark: 7.9 flushes a call instead of 19, and
    the same CPU, the cost being the bytes written, not the calls: not kept.)"""

    def __init__(self, stream: TextIO) -> None:
        self.stream: TextIO | None = None if stream is sys.stdout else stream
        """None: whatever ``sys.stdout`` is when a line is written (as ``PrintLogger`` treats standard output)."""

    def factory(self, *_args: Any) -> _LineWriter:
        return self

    def msg(self, message: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(message + "\n")  # one write: lines from the journal's worker thread do not interleave
        stream.flush()

    log = debug = info = warn = warning = fatal = failure = err = error = critical = exception = msg


def configure(*, json: bool | None = None, level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog. ``json=None`` picks JSON unless ``stream`` is a terminal."""
    global _json_chain
    out = stream or sys.stdout
    if json is None:
        json = not out.isatty()
    stamper = _LevelAndTime()
    processors: list[Any] = [
        _merge_context,
        stamper,
        _exc_info,
        redact_processor,
    ]
    renderer: Any = _json_line if json else structlog.dev.ConsoleRenderer(colors=out.isatty())
    min_level = logging.getLevelNamesMapping()[level.upper()]
    chain = [*processors, renderer]
    writer = _LineWriter(out)
    factory = writer.factory  # one bound method: HotLogger knows the configuration by its identity
    wrapper_class = structlog.make_filtering_bound_logger(min_level)
    structlog.configure(
        processors=chain,
        wrapper_class=wrapper_class,
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    _json_chain = _JsonChain(chain, wrapper_class, factory, writer, min_level, stamper) if json else None
    # The libraries (panoramisk, aiohttp, aioari) log through the standard library: send their lines through the
    # same chain, so they are redacted and rendered like ours. Warnings and worse only: their debug is noise.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *processors],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact_processor, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(logging.WARNING, min_level))


class _JsonChain:
    """What :func:`configure` set up for JSON lines, for :class:`HotLogger` to recognise as still in force."""

    __slots__ = ("built", "factory", "min_level", "processors", "stamper", "wrapper_class", "writer")

    def __init__(
        self,
        processors: list[Any],
        wrapper_class: Any,
        factory: Any,
        writer: _LineWriter,
        min_level: int,
        stamper: _LevelAndTime,
    ) -> None:
        self.processors = processors
        self.built = list(processors)
        """What the list held when it was made: ``capture_logs`` changes the list itself, not structlog's config."""
        self.wrapper_class = wrapper_class
        self.factory = factory
        self.writer = writer
        self.min_level = min_level
        self.stamper = stamper


_json_chain: _JsonChain | None = None
"""The JSON chain :func:`configure` set up last (None after a console one)."""


def _hot_method(method_name: str, level: int) -> Any:
    """A :class:`HotLogger` method: the line of the daemon's own JSON chain built, rendered and written in one
    function (4-5 us a line against 8.5-9.5 through structlog's bound logger, 22 calls against 45; ~19 lines a walk
    call), the same bytes as the chain's processors give; through structlog whenever the configuration is another."""

    def hot(self: HotLogger, event: str, *args: Any, **event_dict: Any) -> Any:
        chain = _json_chain
        processors = _CONFIG.default_processors
        if (
            chain is None
            or args
            or processors is not chain.processors
            or _CONFIG.default_wrapper_class is not chain.wrapper_class
            or _CONFIG.logger_factory is not chain.factory
            or processors != chain.built
        ):
            return getattr(self._bound(), method_name)(event, *args, **event_dict)
        if level < chain.min_level:
            return None
        # structlog's bound logger: its (empty) context, the line's keys, then the event; the processors in order
        if event is not None:
            event_dict["event"] = event
        _merge_context(None, method_name, event_dict)
        event_dict["level"] = method_name
        event_dict["timestamp"] = chain.stamper.now()
        if "exc_info" in event_dict:
            _exc_info(None, method_name, event_dict)
        pattern = _any_secret
        if pattern is not None:
            # redact_processor's one search of the plain strings, for a line of nothing else (nearly every one)
            try:
                texts = "\0".join(event_dict.values())
            except TypeError:  # a value not a string: the processor looks at each
                redact_processor(None, method_name, event_dict)
            else:
                if pattern.search(texts) is not None:
                    redact_processor(None, method_name, event_dict)
        chain.writer.msg(_json_line(None, method_name, event_dict))
        return None

    hot.__name__ = method_name
    hot.__qualname__ = f"HotLogger.{method_name}"
    return hot


class HotLogger:
    """``structlog.get_logger(name)`` for a module that logs at every event (the dispatcher, a dozen lines a call).

    Under the daemon's own JSON configuration (the processors, level and stream :func:`configure` set, still in
    force) a line is built, rendered and written by one function of this module, through the chain's own pieces
    (see :func:`_hot_method`). Under any other (the console renderer, ``capture_logs``, which changes the processors
    in place, a test's ``structlog.configure``) the line goes through structlog's bound logger, made once per
    configuration instead of for every line as structlog's lazy proxy does (3.2 us a line): made again whenever the
    processors, the wrapper class (the level), the logger factory (the stream) or the context class are other
    objects than it was made with. Methods other than the levels' (``bind``, ``log``, ...) are structlog's."""

    __slots__ = ("_logger", "_made_for", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._made_for: tuple[Any, ...] = ()
        self._logger: Any = None

    debug = _hot_method("debug", logging.DEBUG)
    info = msg = _hot_method("info", logging.INFO)
    warning = warn = _hot_method("warning", logging.WARNING)
    error = _hot_method("error", logging.ERROR)
    critical = fatal = _hot_method("critical", logging.CRITICAL)

    def exception(self, event: str, *args: Any, **event_dict: Any) -> Any:
        """An error line with the exception being handled (structlog's ``exception``)."""
        event_dict.setdefault("exc_info", True)
        return self.error(event, *args, **event_dict)

    def _bound(self) -> Any:
        made_for = self._made_for
        if (
            not made_for
            or made_for[0] is not _CONFIG.default_processors
            or made_for[1] is not _CONFIG.default_wrapper_class
            or made_for[2] is not _CONFIG.logger_factory
            or made_for[3] is not _CONFIG.default_context_class
        ):
            self._logger = structlog.get_logger(self._name).bind()
            self._made_for = (
                _CONFIG.default_processors,
                _CONFIG.default_wrapper_class,
                _CONFIG.logger_factory,
                _CONFIG.default_context_class,
            )
        return self._logger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bound(), name)


def call_keys(call_id: str, linkedid: str = "", line: str = "") -> dict[str, str]:
    """The keys that name a call on one log line (for lines written outside :func:`bind_call`, e.g. delivery's,
    which handles many calls at once). Empty when the call is not known."""
    if not call_id:
        return {}
    return {"call_id": call_id, "linkedid": linkedid, "line": line}


_CALL_VARS: list[contextvars.ContextVar[Any]] = []
"""structlog's context variables of ``call_id``, ``linkedid`` and ``line`` (learnt from the first binding's tokens)."""


class bind_call:
    """Bind a call's identity to every log line written inside the block; the values before it come back after.

    The dispatcher enters it for every event: structlog's three context variables set and reset by token, straight
    on the variables (structlog's ``bound_contextvars`` copies the whole context and runs two generator frames each
    time; its ``bind_contextvars`` looks each variable up by a name it formats)."""

    __slots__ = ("_tokens", "_values")

    def __init__(self, call_id: str, linkedid: str = "", line: str = "") -> None:
        self._values = (call_id, linkedid, line)

    def __enter__(self) -> None:
        if not _CALL_VARS:
            call_id, linkedid, line = self._values
            tokens = structlog.contextvars.bind_contextvars(call_id=call_id, linkedid=linkedid, line=line)
            _CALL_VARS.extend(tokens[key].var for key in ("call_id", "linkedid", "line"))
            self._tokens = (tokens["call_id"], tokens["linkedid"], tokens["line"])
            return
        call_var, linkedid_var, line_var = _CALL_VARS
        call_id, linkedid, line = self._values
        self._tokens = (call_var.set(call_id), linkedid_var.set(linkedid), line_var.set(line))

    def __exit__(self, *_exc: object) -> None:
        call_var, linkedid_var, line_var = _CALL_VARS
        call_token, linkedid_token, line_token = self._tokens
        line_var.reset(line_token)
        linkedid_var.reset(linkedid_token)
        call_var.reset(call_token)
