"""``python -m bridge.sim.bitrix24 --port N``: run the simulator until SIGINT/SIGTERM.

Prints one line to stdout: ``b24sim url=<base URL> webhook=<inbound webhook URL> oauth=<token URL>``;
logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import structlog

from bridge.sim.bitrix24.seed import SeedError
from bridge.sim.bitrix24.simulator import Bitrix24Simulator

log = structlog.get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bridge.sim.bitrix24", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--plan", choices=("standard", "enterprise"), default="standard")
    parser.add_argument("--webhook", default="1/b24simwebhook", help="inbound webhook USER_ID/CODE")
    parser.add_argument("--seed", type=Path, help="seed JSON file (default: the built-in call centre)")
    parser.add_argument("--token-lifetime", type=float, default=3600.0, help="access token lifetime, s")
    parser.add_argument("--app-token", default="simapptoken", help="application_token sent with events")
    parser.add_argument("--client-id", default="local.sim")
    parser.add_argument("--client-secret", default="simsecret")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    sim = Bitrix24Simulator(
        plan=args.plan,
        webhook=args.webhook,
        seed=args.seed,
        token_lifetime=args.token_lifetime,
        application_token=args.app_token,
        client_id=args.client_id,
        client_secret=args.client_secret,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await sim.start(args.host, args.port)
    print(f"b24sim url={sim.url} webhook={sim.webhook_url} oauth={sim.oauth_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, args.log_level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    try:
        asyncio.run(serve(args))
    except (SeedError, ValueError, OSError) as exc:
        log.error("sim.start_failed", error=str(exc))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
