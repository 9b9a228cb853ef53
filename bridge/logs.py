"""Structured logs: JSON lines for machines, the console renderer on a terminal, secrets redacted.

Per-call context (``call_id``, ``linkedid``, ``line``) is bound with :func:`bind_call` through contextvars, so
every line logged while a call is being handled carries it.

Event names are ``noun.verb``. The ones an operator will meet:

=========================  =====================================================================
``daemon.started``         the daemon is up (``daemon.stopping`` / ``daemon.stopped`` on shutdown)
``call.started``           an inbound call entered the Stasis application
``call.transition``        the call core moved a call from one state to another (``from``, ``to``, ``event``)
``call.ignored``           an event that does not apply to the call's state (logged, nothing done)
``call.ended``             a call is finished (``status``, ``duration``, ``handled_by``)
``call.reconciled``        a call found ended or still up after a reconnect or a restart
``leg.ringing``            an agent / number leg was originated (``leg``, ``ext``)
``crm.queued``             a Bitrix24 operation was written to the journal
``crm.delivered``          Bitrix24 confirmed an operation (``method``, ``crm_leg``)
``crm.retry``              a transient Bitrix24 error; the operation will be retried
``crm.failed``             a permanent Bitrix24 error; the operation is parked (see ``b24-bridge journal``)
``crm.offline``            a call's ``register`` did not go through in time; mirrored after its end
``crm.replayed``           an offline call was mirrored (``register`` SHOW=0 + ``finish``)
``pbx.connected``          ARI or AMI (``link``) connected; ``pbx.disconnected`` / ``pbx.reconnecting``
``pbx.bad_input``          a malformed AMI frame or ARI message was dropped
``clicktocall.rejected``   a click-to-call event was refused (``reason``)
``config.error``           the configuration could not be loaded
=========================  =====================================================================
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO
from urllib.parse import quote

import structlog

REDACTED = "***"
_secrets: set[str] = set()


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


def clear_secrets() -> None:
    _secrets.clear()


def redact_text(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
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
    if not _secrets:
        return event_dict
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact(value)
    return event_dict


def configure(*, json: bool | None = None, level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog. ``json=None`` picks JSON unless ``stream`` is a terminal."""
    out = stream or sys.stdout
    if json is None:
        json = not out.isatty()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


@contextmanager
def bind_call(call_id: str, linkedid: str = "", line: str = "") -> Iterator[None]:
    """Bind a call's identity to every log line written inside the block."""
    with structlog.contextvars.bound_contextvars(call_id=call_id, linkedid=linkedid, line=line):
        yield
