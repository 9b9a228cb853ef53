"""Our small hierarchy of Bitrix24 failures, and the one place that sorts a REST error into it.

* :class:`TransientCrmError`: worth another try later (network, timeouts, 5xx, 503 ``QUERY_LIMIT_EXCEEDED`` /
  ``OVERLOAD_LIMIT``, 429 ``OPERATION_TIME_LIMIT``).
* :class:`PermanentCrmError`: the same request will fail again (auth, scope, validation, unknown method).
* :class:`CallNotFoundError`: Bitrix24 does not know (or no longer has active) the CALL_ID; matched on the
  description too, because the field has seen it with an empty ``error`` code.

Messages are passed through :func:`bridge.logs.redact_text`; callers never put URLs with secrets into them.
"""

from __future__ import annotations

from bridge.logs import redact_text

QUERY_LIMIT_EXCEEDED = "QUERY_LIMIT_EXCEEDED"
OPERATION_TIME_LIMIT = "OPERATION_TIME_LIMIT"
EXPIRED_TOKEN = "expired_token"
NETWORK = "NETWORK_ERROR"
"""Our code for a failure before any answer from Bitrix24 (connection, timeout, unreadable body)."""

_TRANSIENT_CODES = frozenset(
    {QUERY_LIMIT_EXCEEDED, "OVERLOAD_LIMIT", OPERATION_TIME_LIMIT, "INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER",
     NETWORK}
)  # fmt: skip
_PERMANENT_CODES = frozenset(
    {"NO_AUTH_FOUND", "invalid_token", "WRONG_AUTH_TYPE", "insufficient_scope", "ACCESS_DENIED", "INVALID_CREDENTIALS",
     "user_access_error", "PORTAL_DELETED", "ERROR_METHOD_NOT_FOUND", "WRONG_CLIENT", "wrong_client", "invalid_grant",
     "invalid_client", "ERROR_BATCH_LENGTH_EXCEEDED", "ERROR_BATCH_METHOD_NOT_ALLOWED"}
)  # fmt: skip
_CALL_NOT_FOUND_PREFIX = "call is not found"


class CrmError(Exception):
    """A Bitrix24 request that did not do what was asked."""

    def __init__(self, method: str, code: str, description: str, status: int | None = None) -> None:
        self.method = method
        self.code = redact_text(code)
        self.description = redact_text(description)
        self.status = status
        where = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{method}: {self.code or '<no code>'}: {self.description}{where}")

    def __reduce__(self) -> tuple[type[CrmError], tuple[str, str, str, int | None]]:
        return (type(self), (self.method, self.code, self.description, self.status))


class TransientCrmError(CrmError):
    """Back off and try again; nothing is wrong with the request itself."""

    @property
    def query_limit(self) -> bool:
        """The portal's leaky bucket overflowed (503 ``QUERY_LIMIT_EXCEEDED``)."""
        return self.code == QUERY_LIMIT_EXCEEDED

    @property
    def method_blocked(self) -> bool:
        """This method's operating-time budget is spent (429 ``OPERATION_TIME_LIMIT``)."""
        return self.code == OPERATION_TIME_LIMIT or (self.status == 429 and not self.query_limit)

    @property
    def rate_limited(self) -> bool:
        """A limit turned the request away before any of it ran: slow down, nothing is wrong with the portal."""
        return self.query_limit or self.method_blocked


class PermanentCrmError(CrmError):
    """Retrying will not help: park the operation and tell an operator."""


class CallNotFoundError(PermanentCrmError):
    """ "Call is not found …": the CALL_ID is unknown or already finished."""


class ExpiredTokenError(CrmError):
    """The OAuth access token has expired (internal: the client refreshes and retries once)."""


def classify(method: str, code: str, description: str, status: int | None = None) -> CrmError:
    """Turn one REST error (HTTP status may be unknown, as inside a batch) into our hierarchy."""
    code = code or ""
    description = description or ""
    if description.strip().lower().startswith(_CALL_NOT_FOUND_PREFIX):
        return CallNotFoundError(method, code, description, status)
    if code == EXPIRED_TOKEN:
        return ExpiredTokenError(method, code, description, status)
    if code in _PERMANENT_CODES:
        return PermanentCrmError(method, code, description, status)
    if code in _TRANSIENT_CODES or status == 429 or (status is not None and status >= 500):
        return TransientCrmError(method, code, description, status)
    return PermanentCrmError(method, code, description, status)
