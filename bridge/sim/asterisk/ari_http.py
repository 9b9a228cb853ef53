"""HTTP plumbing shared by the ARI handlers: parameters, JSON answers, ARI-style errors.

ARI takes parameters from the query string and, for POST bodies, from a JSON object whose keys
are read as query parameters too, except ``variables`` (channel variables). Errors are JSON
``{"message": ...}`` with the status Asterisk uses (400, 404, 409, 422).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

from aiohttp import web

if TYPE_CHECKING:
    from bridge.sim.asterisk.simulator import AsteriskSimulator

SIM_KEY: web.AppKey[AsteriskSimulator] = web.AppKey("sim")
TRUE_WORDS = ("true", "yes", "1", "on")
VIA = web.RequestKey("via", str)
"""Request key: ``websocket`` on a request that came as a RESTRequest on the events socket."""


def fail(status: int, message: str) -> NoReturn:
    raise _error(status, message)


def _error(status: int, message: str) -> web.HTTPException:
    error_class = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        422: web.HTTPUnprocessableEntity,
        500: web.HTTPInternalServerError,
        501: web.HTTPNotImplemented,
    }.get(status, web.HTTPBadRequest)
    return error_class(text=json.dumps({"message": message}), content_type="application/json")


def answer(data: Any, status: int = 200) -> web.Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return web.Response(text=body, status=status, content_type="application/json")


def no_content() -> web.Response:
    return web.Response(status=204)


class Params:
    """Query + JSON-body parameters of one ARI request."""

    def __init__(self, values: dict[str, str], variables: dict[str, str]) -> None:
        self.values = values
        self.variables = variables

    @classmethod
    async def read(cls, request: web.Request) -> Params:
        values = {key: request.query.getone(key) for key in request.query}
        variables: dict[str, str] = {}
        if request.can_read_body:
            raw = await request.text()
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    fail(400, "Request body is not valid JSON")
                if not isinstance(body, dict):
                    fail(400, "Request body must be a JSON object")
                found = body.get("variables", {})
                if not isinstance(found, dict):
                    fail(400, "variables must be a JSON object")
                variables = {str(k): str(v) for k, v in found.items()}
                for key, value in body.items():
                    if key != "variables" and key not in values:
                        values[key] = _as_text(value)
        values.pop("api_key", None)
        return cls(values, variables)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    def require(self, name: str) -> str:
        value = self.values.get(name)
        if not value:
            fail(400, f"Missing required parameter: {name}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        return default if value is None else value.lower() in TRUE_WORDS

    def number(self, name: str, default: float) -> float:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except ValueError:
            fail(400, f"Parameter {name} must be a number")

    def items(self, name: str) -> list[str]:
        value = self.values.get(name) or ""
        return [item for item in value.split(",") if item]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def sim_of(request: web.Request) -> AsteriskSimulator:
    return request.app[SIM_KEY]
