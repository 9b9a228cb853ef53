"""The dialplan the bridge needs, generated from its configuration (``b24-bridge dialplan``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge.config import load_config
from bridge.dialplan.render import render


def main(args: argparse.Namespace) -> int:
    sys.stdout.write(render(load_config(Path(args.config))))
    return 0
