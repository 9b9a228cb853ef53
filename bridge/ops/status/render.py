"""The status page's HTML, built from :func:`bridge.ops.status.model.status_data`'s output.

Every value goes through :func:`html.escape` (``_t``): caller names, CRM names and error texts are other people's
input, and a name such as ``<script>`` must show as text. The page's body is :func:`body`; the live updates send
the same fragment again (``bridge.ops.status.web``), so there is one renderer.
"""

from __future__ import annotations

from html import escape
from typing import Any

ASSETS = "/status/static"


def _t(value: object) -> str:
    """Text for HTML (``None`` shows as a dash)."""
    return "–" if value is None or value == "" else escape(str(value), quote=True)


def _dur(seconds: int | float | None) -> str:
    if seconds is None:
        return "–"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _who(ext: str, name: str) -> str:
    return f"{_t(ext)} {_t(name)}" if name else _t(ext)


def _table(title: str, key: str, head: list[str], rows: list[str], empty: str) -> str:
    cells = "".join(f"<th>{_t(h)}</th>" for h in head)
    body = "".join(rows) or f'<tr><td colspan="{len(head)}" class="empty">{_t(empty)}</td></tr>'
    return (
        f'<section id="{key}"><h2>{_t(title)} <span class="count">{len(rows)}</span></h2>'
        f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table></section>"
    )


def _row(cells: list[str], css: str = "", key: str = "") -> str:
    attrs = (f' class="{_t(css)}"' if css else "") + (f' data-key="{_t(key)}"' if key else "")
    return f"<tr{attrs}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def links(data: list[dict[str, Any]]) -> str:
    rows = []
    for link in data:
        state = "up" if link["up"] else "down"
        rows.append(
            _row(
                [
                    _t(link["name"]),
                    f'<span class="badge {state}">{state}</span>',
                    f"{_t(link['since'])} ({_dur(link['for_seconds'])})" if link["since"] else "–",
                    _t(link["detail"]),
                    f"{_t(link['last_error'])} <small>{_t(link['error_at'])}</small>" if link["last_error"] else "–",
                ],
                state,
            )
        )
    return _table("Links", "links", ["link", "state", "since", "detail", "last error"], rows, "no links")


def calls(data: list[dict[str, Any]]) -> str:
    rows = []
    for call in data:
        ringing = ", ".join(
            f"{_who(leg['ext'] or leg['number'], leg['name'])} ({_dur(leg['seconds'])})" for leg in call["ringing"]
        )
        talk = call["talking"]
        nxt = _t(call["next"])
        if call["next"] and call["next_in_seconds"] is not None:
            nxt += f" in {_dur(call['next_in_seconds'])}"
        rows.append(
            _row(
                [
                    f"{_t(call['line'])} <small>{_t(call['line_name'])}</small>",
                    f'{_t(call["caller"])} <span class="name">{_t(call["caller_name"])}</span>',
                    f'<span class="state {_t(call["state"])}">{_t(call["state"])}</span>'
                    f" <small>{_t(call['kind'])}</small>",
                    ringing or "–",
                    nxt,
                    _t(", ".join(call["card_shown_to"])),
                    "–" if talk is None else f"{_who(talk['ext'], talk['name'])} ({_dur(talk['seconds'])})",
                    _dur(call["age_seconds"]),
                ],
                call["state"],
                call["call_id"],
            )
        )
    head = ["line", "caller", "state", "ringing now", "next step", "card shown to", "talking", "age"]
    return _table("Calls in progress", "calls", head, rows, "no calls in progress")


def agents(data: list[dict[str, Any]]) -> str:
    rows = [
        _row(
            [
                _t(a["ext"]),
                f"{_t(a['name'])} <small>user {_t(a['user_id'])}</small>",
                f'<span class="badge {_t(a["availability"])}">{_t(a["availability"])}</span>',
                _t(a["reason"]),
                _t(a["answered_today"]),
            ],
            a["availability"],
            a["ext"],
        )
        for a in data
    ]
    return _table("Agents", "agents", ["ext", "Bitrix24 user", "availability", "why", "answered today"], rows, "none")


def delivery(d: dict[str, Any]) -> str:
    figures = [
        ("journal depth", d["journal_depth"]),
        ("oldest pending", _dur(d["oldest_pending_seconds"]) if d["journal_depth"] else "–"),
        ("bucket", f"{d['bucket_level']} / {d['bucket_size']}"),
        ("requests / min", d["requests_per_minute"]),
        ("commands / min", d["commands_per_minute"]),
        ("parked", len(d["parked"])),
    ]
    dl = "".join(f"<div><dt>{_t(k)}</dt><dd>{_t(v)}</dd></div>" for k, v in figures)
    parked = [
        _row([_t(p["crm_leg"]), _t(p["kind"]), _t(p["reason"]), _t(p["at"])], "failed", p["crm_leg"])
        for p in d["parked"]
    ]
    table = _table("Parked operations", "parked", ["call leg", "operation", "reason", "at"], parked, "none")
    return f'<section id="delivery"><h2>Delivery to Bitrix24</h2><dl class="figures">{dl}</dl></section>{table}'


def recent(data: list[dict[str, Any]]) -> str:
    rows = []
    for f in data:
        held = "<br>".join(
            f"{_t(leg['user'])} · {_t(leg['duration'])} s · {_t(leg['status_code'])}"
            f" · {'recording' if leg['recording'] else 'no recording'}"
            f' <span class="badge {_t(leg["delivery"])}">{_t(leg["delivery"])}</span>'
            for leg in f["bitrix24"]
        )
        rows.append(
            _row(
                [
                    _t(f["ended_at"]),
                    f"{_t(f['line'])} <small>{_t(f['kind'])}</small>",
                    f'{_t(f["number"])} <span class="name">{_t(f["caller_name"])}</span>',
                    _who(f["handled_by"], f["handled_by_name"]) if f["handled_by"] else "–",
                    _t(f["status"]),
                    _dur(f["duration"]),
                    held or "–",
                ],
                "finished",
                f["call_id"],
            )
        )
    head = [
        "ended",
        "line",
        "caller",
        "handled by",
        "status",
        "talk",
        "what Bitrix24 holds (USER · DURATION · STATUS_CODE)",
    ]
    return _table("Last finished calls", "recent", head, rows, "no calls finished yet")


def body(data: dict[str, Any]) -> str:
    """The live part of the page (replaced whole on every update)."""
    return (
        f'<p class="stamp">as of {_t(data["generated_at"])}</p>'
        + links(data["links"])
        + calls(data["calls"])
        + agents(data["agents"])
        + delivery(data["delivery"])
        + recent(data["recent"])
    )


def page(data: dict[str, Any], *, token_query: str = "") -> str:
    """The whole document; ``token_query`` (``?token=...``) is passed on to the live-update stream."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>b24-bridge status</title><link rel="stylesheet" href="{ASSETS}/status.css"></head>'
        f'<body data-stream="/status/events{escape(token_query, quote=True)}"><header><h1>b24-bridge</h1>'
        '<span id="live" class="badge down">connecting</span></header>'
        f'<main id="status">{body(data)}</main>'
        f'<script src="{ASSETS}/status.js"></script></body></html>'
    )
