"""``python -m bridge.ops.probe``: the container's health check, on the port the config's ``http.listen`` names.

It reads only ``[http] listen`` from the config (a wildcard address is probed on loopback) and asks ``/livez``
by default: only a stuck or broken process should get the container restarted, never a PBX reconnect or a
Bitrix24 backlog (``/readyz`` and ``/healthz`` can be asked for instead). Exit 0 on HTTP 200, else 1.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

from bridge.config.http import DEFAULT_LISTEN

WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def probe_url(config_text: str, endpoint: str) -> str:
    """The URL of ``endpoint`` on the daemon that ``config_text`` configures."""
    listen = tomllib.loads(config_text).get("http", {}).get("listen", DEFAULT_LISTEN)
    host, _, port = str(listen).rpartition(":")
    host = host.strip("[]")
    host = WILDCARDS.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/{endpoint}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.ops.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/etc/b24-bridge/bridge.toml")
    parser.add_argument("endpoint", nargs="?", default="livez", choices=("livez", "readyz", "healthz"))
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    try:
        url = probe_url(Path(args.config).read_text(encoding="utf-8"), args.endpoint)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        print(f"cannot read {args.config}: {exc}", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as answer:
            print(answer.read().decode("utf-8", "replace"))
            return 0 if answer.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(exc.read().decode("utf-8", "replace"), file=sys.stderr)
    except (OSError, TimeoutError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
