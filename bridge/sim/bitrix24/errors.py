"""REST errors in Bitrix24's envelope: ``{"error": CODE, "error_description": TEXT}`` plus an HTTP status."""

from __future__ import annotations

from typing import Any

# Texts copied from the reference (CORE-VOX / DOCS); keep the quirks (the unbalanced parenthesis is real).
CALL_NOT_FOUND_FOR_FINISH = "Call is not found (call should be registered prior to finishing"
CALL_NOT_IN_STATISTIC = "Call is not found in the statistic table. It looks like it is not finished yet."
USER_NOT_FOUND = "User is not found or is not active"
USER_NOT_SET = "USER_ID or USER_PHONE_INNER should be set"
WRONG_AUTH_TYPE_TEXT = "Current authorization type is denied for this method"


class RestError(Exception):
    """A Bitrix24 REST error; ``code`` may be empty, as some real errors are."""

    def __init__(self, description: str, code: str = "ERROR_CORE", status: int = 400) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description}


def method_not_found() -> RestError:
    return RestError("Method not found!", "ERROR_METHOD_NOT_FOUND", 404)


def no_auth() -> RestError:
    return RestError("Wrong authorization data", "NO_AUTH_FOUND", 401)


def expired_token() -> RestError:
    return RestError("The access token provided has expired.", "expired_token", 401)


def wrong_auth_type() -> RestError:
    # The register/finish docs list HTTP 400 and 403 only; WRONG_AUTH_TYPE is the 403 one.
    return RestError(WRONG_AUTH_TYPE_TEXT, "WRONG_AUTH_TYPE", 403)


def insufficient_scope() -> RestError:
    # reference 2: 403 insufficient_scope, "webhook scope too narrow"; the text is the OAuth server's.
    return RestError(
        "The request requires higher privileges than provided by the access token", "insufficient_scope", 403
    )


def query_limit() -> RestError:
    return RestError("Too many requests", "QUERY_LIMIT_EXCEEDED", 503)


def operation_time_limit() -> RestError:
    return RestError("Method is blocked due to operation time limit.", "OPERATION_TIME_LIMIT", 429)


def internal_error() -> RestError:
    return RestError("Internal server error", "INTERNAL_SERVER_ERROR", 500)


def batch_not_allowed() -> RestError:
    return RestError("Method not allowed in batch", "ERROR_BATCH_METHOD_NOT_ALLOWED", 405)


def access_denied() -> RestError:
    return RestError("Access denied!", "ACCESS_DENIED", 403)


def bad_request(description: str) -> RestError:
    return RestError(description, "INVALID_REQUEST", 400)
