"""``b24-bridge`` command line: run | demo | replay | journal | explain | check-config | check | dialplan.

Exit statuses: 0 success; 1 a check or a replay found failures; 2 bad command-line usage or input;
78 a bad configuration (each problem is printed with its key); 141 the output's reader went away (``| head``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.config import EXIT_CONFIG, ConfigError, config_warnings, file_problems, load_config
from bridge.config.reader import Secret

Handler = Callable[[argparse.Namespace], int]
EXIT_PIPE = 141
"""Exit status when the output's reader went away: 128 + SIGPIPE, like a tool the signal ended."""

# subcommand -> "module:function"; imported only when that command runs, so the CLI starts fast
_HANDLERS = {
    "run": "bridge.daemon:run_main",
    "check": "bridge.daemon:check_main",
    "demo": "bridge.sim.demo:main",
    "replay": "bridge.replay:main",
    "journal": "bridge.replay:journal_main",
    "explain": "bridge.explain:main",
    "dialplan": "bridge.dialplan:main",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="b24-bridge", description="Asterisk <-> Bitrix24 telephony bridge")
    parser.add_argument("--version", action="version", version=f"b24-bridge {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="auto", choices=["auto", "json", "console"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", required=True, metavar="PATH", help="the TOML configuration file")
        return p

    with_config("run", "run the daemon")
    with_config("check", "connect to ARI, AMI and Bitrix24 and report each")
    with_config("check-config", "validate the configuration and print it with secrets redacted")
    with_config("dialplan", "print the dialplan the bridge needs (extensions.conf), with each line's fallback")

    demo = sub.add_parser("demo", help="run the daemon against the built-in simulators with a scripted day")
    demo.add_argument("--fast", action="store_true", help="shorter rings and waits (the day in about 20 s)")
    demo.add_argument("--keep", metavar="DIR", help="keep the journal (and a config to read it) in DIR")
    demo.add_argument("--log", metavar="FILE", help="where the daemon's JSON log lines go (default: DIR/bridge.log "
                      "with --keep, else a temporary file)")  # fmt: skip

    replay = with_config("replay", "mirror calls that Bitrix24 missed while it was away (no PBX needed)")
    replay.add_argument("--since", metavar="ISO", help="only calls that started at or after this time")
    replay.add_argument("--call", metavar="EXTERNAL_CALL_ID", help="only this call")
    replay.add_argument("--dry-run", action="store_true", help="show what would be sent, send nothing")
    replay.add_argument("--json", action="store_true", help="print the outcomes as JSON (for scripts)")
    replay.add_argument(
        "--force",
        action="store_true",
        help="send calls the statistics cannot vouch for (the app user cannot see them); check Bitrix24 first",
    )

    journal = with_config("journal", "list the journal's calls and operations")
    journal.add_argument("--status", choices=["pending", "failed", "done"])
    journal.add_argument("--json", action="store_true")

    explain = with_config("explain", "run the routing core on a simulated clock and print the decision trail")
    explain.add_argument("--line", required=True, metavar="NUMBER", help="the line (DID) called")
    explain.add_argument("--from", dest="caller", required=True, metavar="CALLER", help="the caller's number")
    explain.add_argument(
        "--at", metavar="ISO-TIME", help="when the call arrives (default: now; without a UTC offset: local time)"
    )
    explain.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="EXT=STATE",
        help="an agent's availability: available|busy|unregistered|absent|not_clocked_in|offline",
    )
    explain.add_argument(
        "--answer",
        action="append",
        default=[],
        metavar="EXT@SECONDS",
        help="EXT (or a number the plan dials: a mobile, a forward) answers after ringing SECONDS; "
        "nobody answers unless told",
    )
    explain.add_argument("--responsible", metavar="EXT", help="the CRM finds the caller, owned by EXT")
    explain.add_argument("--press", metavar="DIGITS", default="", help="DTMF keys the caller presses in menus")
    explain.add_argument("--talk", type=float, default=60.0, metavar="SECONDS", help="talk time once answered")
    explain.add_argument("--hangup", type=float, metavar="SECONDS", help="the caller hangs up at this offset")
    explain.add_argument("--json", action="store_true")
    return parser


def _plain(value: Any) -> Any:
    """Settings -> JSON-ready data, secrets redacted."""
    if isinstance(value, Secret):
        return repr(value).strip("'")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        tagged = type(value).__module__ == "bridge.domain.scheme" and "id" not in data
        return {"kind": type(value).__name__, **data} if tagged else data
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, frozenset | set) else items
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def check_config_main(args: argparse.Namespace) -> int:
    settings = load_config(Path(args.config))
    problems = file_problems(settings)
    if problems:
        raise ConfigError(settings.path, problems)
    print(json.dumps(_plain(settings), indent=2, ensure_ascii=False))
    for warning in config_warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"configuration OK: {len(settings.plan.lines)} line(s), {len(settings.plan.queues)} queue(s)", file=sys.stderr
    )
    return 0


def _handler(command: str) -> Handler:
    if command == "check-config":
        return check_config_main
    module_name, _, func = _HANDLERS[command].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise SystemExit(f"b24-bridge {command}: not available in this build") from exc
    handler: Handler = getattr(module, func)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    from bridge import logs

    parser = build_parser()
    args = parser.parse_args(argv)
    json_logs = {"auto": None, "json": True, "console": False}[args.log_format]
    # the daemon's logs are its output; other commands print results on stdout and log to stderr
    stream = sys.stdout if args.command in ("run", "demo") else sys.stderr
    logs.configure(json=json_logs, level=args.log_level, stream=stream)
    try:
        return _handler(args.command)(args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _pipe_closed()


def _pipe_closed() -> int:
    """The reader of our output went away (``| head``): stop quietly, as other command-line tools do. Python would
    otherwise complain when it flushes stdout at exit."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_PIPE
