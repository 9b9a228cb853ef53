"""Run the Asterisk simulator: ``python -m bridge.sim.asterisk --ari-port 8088 --ami-port 5038``.

Prints the ARI URL and the AMI port, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from bridge import logs
from bridge.sim.asterisk.parties import parse_party
from bridge.sim.asterisk.simulator import AsteriskSimulator


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bridge.sim.asterisk", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ari-port", type=int, default=8088)
    parser.add_argument("--ami-port", type=int, default=5038)
    parser.add_argument("--user", default="b24bridge", help="ARI user and AMI username")
    parser.add_argument(
        "--password", default=None, help="ARI password and AMI secret (default: ari-secret / ami-secret)"
    )
    parser.add_argument("--app", default="b24bridge", help="Stasis application inbound calls enter")
    parser.add_argument("--context", default="from-trunk", help="dialplan context of inbound DIDs")
    parser.add_argument(
        "--party", action="append", default=[], metavar="EXT=SPEC",
        help="scripted party, e.g. 1001=answer:3 1002=never 1003=busy 1004=unregistered 1006=reject:2",
    )  # fmt: skip
    parser.add_argument("--endpoint", action="append", default=[], help="PJSIP endpoint that starts online")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    sim = AsteriskSimulator(
        ari_user=args.user,
        ari_password=args.password or "ari-secret",
        ami_user=args.user,
        ami_secret=args.password or "ami-secret",
        dialplan_context=args.context,
        stasis_app=args.app,
        endpoints=args.endpoint,
    )
    for item in args.party:
        extension, _, spec = item.partition("=")
        sim.set_party(extension, parse_party(spec))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await sim.start(host=args.host, ari_port=args.ari_port, ami_port=args.ami_port)
    print(f"ARI {sim.ari_url}", flush=True)
    print(f"AMI {sim.ami_host}:{sim.ami_port}", flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    for item in args.party:
        extension, sep, spec = item.partition("=")
        if not sep or not extension:
            print(f"--party needs EXT=SPEC, not {item!r}", file=sys.stderr)
            return 2
        try:
            parse_party(spec)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
    logs.configure(stream=sys.stderr)  # stdout carries only the two "where to connect" lines
    logs.register_secrets([args.password or "ari-secret", args.password or "ami-secret"])
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
