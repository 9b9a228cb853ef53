"""Reading Bitrix24 answers: PHP arrays as JSON, loose numbers, the error envelope, batch results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.crm.errors import CrmError, classify


def as_dict(value: Any) -> dict[str, Any]:
    """A PHP array as JSON: ``{}``, ``[]`` (PHP's empty array) or a list with implicit keys."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def as_int(value: Any) -> int | None:
    """Bitrix24 numbers arrive as ints or digit strings (or junk); anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def rows_of(value: Any) -> list[dict[str, Any]]:
    """The records of a list result (a list, or a PHP array with keys), skipping anything that is not one."""
    rows = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
    return [row for row in rows if isinstance(row, dict)]


def error_of(method: str, envelope: Mapping[str, Any], status: int | None = None) -> CrmError:
    """The classified error of an ``{"error", "error_description"}`` envelope."""
    return classify(method, str(envelope.get("error") or ""), str(envelope.get("error_description") or ""), status)


@dataclass
class BatchResult:
    """Per-command outcome of a ``batch``; the outer request succeeded (HTTP 200) in any case."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, CrmError] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    next: dict[str, int] = field(default_factory=dict)

    def skipped(self, keys: Mapping[str, Any]) -> list[str]:
        """Commands that neither succeeded nor failed (after a failure with ``halt``)."""
        return [key for key in keys if key not in self.results and key not in self.errors]

    @classmethod
    def parse(cls, result: Any, methods: Mapping[str, Any]) -> BatchResult:
        """Read the ``result`` of ``batch``; ``methods`` maps each command key to its method, or to a tuple whose
        first item is its method (the batch's commands as they are), for the errors.

        A batch's parts are JSON objects (their keys strings already, taken as they are) or, when empty, PHP's empty
        array ``[]``: the usual answer, results and no errors, costs no copies."""
        inner = result if isinstance(result, dict) else {}
        errors: dict[str, CrmError] = {}
        failed = inner.get("result_error")
        if failed:
            for key, raw in as_dict(failed).items():
                named = methods.get(key, "batch")
                method = named[0] if isinstance(named, tuple) else named
                errors[key] = error_of(method, raw) if isinstance(raw, dict) else classify(method, "", str(raw))
        results = inner.get("result")
        total = inner.get("result_total")
        following = inner.get("result_next")
        return cls(
            results=results if type(results) is dict else as_dict(results),
            errors=errors,
            total=_int_values(total) if total else {},  # no list method in the batch: PHP's empty array, no call
            next=_int_values(following) if following else {},
        )


def _int_values(value: Any) -> dict[str, int]:
    if not value:  # no list method in the batch: PHP's empty array
        return {}
    return {key: number for key, item in as_dict(value).items() if (number := as_int(item)) is not None}
