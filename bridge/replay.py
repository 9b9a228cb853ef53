"""``b24-bridge replay`` and ``b24-bridge journal``: mirror what Bitrix24 missed, and show the journal.

Replay needs no PBX: it takes the journal's calls whose end is known but which are not done (offline, failed or
still pending), asks ``voximplant.statistic.get`` per call whether Bitrix24 already has it, and sends the missing
ones as ``register`` SHOW=0 with the real start + ``finish`` with the real user, duration and status in one batch
(then ``attachRecord`` when the recording can be read), through the same paced client as the daemon. A call the
statistics could hide from the app user (no permission, or not an admin and the call's employee not seen there)
is parked with the reason instead; ``--force`` sends it anyway.
It refuses to run while the daemon holds the journal's lock (see ``bridge.journal.lock``). On a shared
PostgreSQL journal it replays every bridge's calls and sends as the portal's delivery leader: it takes that role for
its run (the bridges' delivery waits meanwhile) and refuses while a bridge holds it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text

from bridge import logs
from bridge.cli_tables import print_table
from bridge.config import Settings, load_config
from bridge.crm.client import Bitrix24Client
from bridge.crm.telephony import Telephony
from bridge.delivery.loop import RecordingLoader
from bridge.delivery.progress import progress_for
from bridge.delivery.recordings import recording_loader
from bridge.delivery.replayer import Outcome, Replayer
from bridge.journal import AsyncJournal, Journal, JournalError
from bridge.journal.lock import JournalBusy, exclusive
from bridge.journal.report import COLUMNS, rows, snapshot
from bridge.leadership.lease import DB_ERRORS, Lease, Role, RoleTaken
from bridge.leadership.roles import portal_of

EXIT_FAILED = 1
EXIT_USAGE = 2
REPLAY_BESIDE_LEADER = (
    "bridge {holder} is the portal's delivery leader on this PostgreSQL journal and sends what is missing; replay "
    "sends the same calls, so it runs only while no bridge delivers: stop the bridges' delivery (all bridges on this "
    "portal), or let the leader send them (`b24-bridge journal` shows what is left)"
)


def parse_since(text: str | None) -> datetime | None:
    """``--since``: ISO-8601 date or date-time; without an offset it is local time."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.astimezone()


def _open_journal(settings: Settings) -> Journal:
    path = settings.journal.path
    if not Path(path).exists():
        hint = ""
        if settings.journal.relative and not os.environ.get("STATE_DIRECTORY"):
            hint = ("; the systemd unit keeps a relative journal.path in its StateDirectory: "
                    "STATE_DIRECTORY=/var/lib/b24-bridge b24-bridge ... reads that one")  # fmt: skip
        raise JournalError(f"there is no journal at {path} (journal.path in {settings.path}){hint}")
    return Journal.open(path)


async def _read_journal(settings: Settings, status: str | None) -> dict[str, Any]:
    j = settings.journal
    if j.backend == "postgres":
        password = j.password.reveal() if j.password is not None else None
        journal = await AsyncJournal.open_postgres(j.url, password=password, bridge=j.bridge_id)
    else:
        journal = _open_journal(settings).aio
    try:
        return await snapshot(journal, status)
    finally:
        await journal.close()


def journal_main(args: argparse.Namespace) -> int:
    settings = load_config(Path(args.config))
    logs.register_secrets([settings.journal.password.reveal()] if settings.journal.password else [])
    try:
        data = asyncio.run(_read_journal(settings, args.status))
    except JournalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print_table("b24-bridge journal", COLUMNS, rows(data), lines=True)
    return 0


def main(args: argparse.Namespace) -> int:
    from bridge.daemon import secret_values

    settings = load_config(Path(args.config))
    logs.register_secrets(secret_values(settings))  # an error from the portal must not show the webhook's code
    try:
        since = parse_since(args.since)
    except ValueError:
        print(f"error: --since {args.since!r} is not an ISO-8601 date or date-time", file=sys.stderr)
        return EXIT_USAGE
    loader = recording_loader(settings.asterisk)
    force = getattr(args, "force", False)
    if settings.journal.backend == "postgres":
        try:
            outcomes = asyncio.run(_replay_shared(settings, since, args.call, args.dry_run, loader, force=force))
        except (JournalError, RoleTaken) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    else:
        try:
            journal = _open_journal(settings)
        except JournalError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        writer = (
            contextlib.nullcontext() if args.dry_run else exclusive(settings.journal.path, holder="b24-bridge replay")
        )
        try:
            with journal, writer:
                outcomes = asyncio.run(
                    replay(settings, journal.aio, since, args.call, args.dry_run, loader, force=force)
                )
        except JournalBusy as exc:
            print(f"error: {exc} (replay sends what the daemon would send; run it while the daemon is stopped)",
                  file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
    if getattr(args, "json", False):
        print(json.dumps([dataclasses.asdict(o) for o in outcomes], ensure_ascii=False, indent=2))
    else:
        print_summary(outcomes, args.dry_run)
    return EXIT_FAILED if any(o.status in ("failed", "parked") for o in outcomes) else 0


async def _replay_shared(
    settings: Settings,
    since: datetime | None,
    call: str | None,
    dry_run: bool,
    loader: RecordingLoader,
    *,
    force: bool,
) -> list[Outcome]:
    """Replay on a PostgreSQL journal, as the portal's delivery leader for the run (a dry run sends nothing and
    needs no role). Raises :class:`RoleTaken` (with the message to show) while a bridge delivers."""
    j = settings.journal
    password = j.password.reveal() if j.password is not None else None
    journal = await AsyncJournal.open_postgres(j.url, password=password, bridge=f"replay@{j.bridge_id}")
    try:
        if dry_run:
            return await replay(settings, journal, since, call, dry_run, loader, force=force)
        lease = Lease(j.url, Role.DELIVERY, portal_of(settings), journal.bridge, password=password or "")
        try:
            async with lease.hold_now():
                return await replay(settings, journal, since, call, dry_run, loader, force=force)
        except RoleTaken as exc:
            raise RoleTaken(REPLAY_BESIDE_LEADER.format(holder=exc.holder or "(unknown)")) from None
        except DB_ERRORS as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise JournalError(f"cannot take the delivery role on {journal.where}: {reason}") from None
    finally:
        await journal.close()


async def replay(
    settings: Settings,
    journal: AsyncJournal,
    since: datetime | None,
    call: str | None,
    dry_run: bool,
    loader: RecordingLoader,
    *,
    force: bool = False,
) -> list[Outcome]:
    found = await journal.calls(since=since, crm_leg=call)
    candidates = [c for c in found if c.ended_at is not None and c.state != "done"]
    if call and not candidates:
        known = await journal.calls(crm_leg=call)
        why = "it is not in the journal" if not known else f"it is {known[0].state} (nothing to replay)"
        return [Outcome(call, known[0].started_at if known else None, "skipped", why)]
    outcomes: list[Outcome] = []
    if not candidates:
        return outcomes
    # no client-side retries: a batch whose answer was lost must be checked, not resent blindly
    async with Bitrix24Client(settings.bitrix24, retry_attempts=1) as client:
        replayer = Replayer(journal, client, Telephony(client), loader, dry_run=dry_run, force=force)
        with progress_for(len(candidates), "checking" if dry_run else "replaying") as advance:
            for row in candidates:
                outcome = await replayer.replay(row)
                outcomes.append(outcome)
                advance(outcome.crm_leg, outcome.status)
    return outcomes


STYLE = {"replayed": "green", "already present": "cyan", "failed": "bold red", "would send": "yellow",
         "parked": "bold magenta"}  # fmt: skip


def print_summary(outcomes: list[Outcome], dry_run: bool) -> None:
    if not outcomes:
        print("Nothing to replay: every ended call in the journal is done.")
        return
    title = "replay --dry-run: nothing was sent" if dry_run else "replay"
    print_table(
        title,
        ("call (EXTERNAL_CALL_ID)", "started", "outcome", "detail"),
        [[o.crm_leg, o.started_at or "", Text(o.status, style=STYLE.get(o.status, "")), o.detail] for o in outcomes],
    )
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    print(", ".join(f"{status}: {n}" for status, n in counts.items()))
