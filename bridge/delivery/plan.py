"""Turning ready journal operations into one ``batch``: chains per leg, keys, ``$result`` references.

Pure: no I/O. A *chain* is what the journal hands out for one leg in one go: a lone operation, or a ``register``
with the operations right behind it, which name the call as ``$result[<register key>][CALL_ID]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from bridge.crm.builders import request_for
from bridge.crm.query import result_ref
from bridge.domain.commands import CrmRegister
from bridge.journal import PendingOp

RECORD_EXTENSIONS = (".wav", ".mp3")
DEFAULT_RECORD_EXTENSION = ".wav"


@dataclass
class Chain:
    """The ops of one leg that travel together (in ``seq`` order)."""

    ops: list[PendingOp]

    @property
    def head(self) -> PendingOp:
        return self.ops[0]

    @property
    def leg(self) -> str | None:
        return self.head.crm_leg

    @property
    def offline(self) -> bool:
        return self.head.mode == "offline"

    @property
    def is_record(self) -> bool:
        """Goes to the upload lanes: a recording, or a voicemail's task that links one (it reads the link first)."""
        return self.head.kind == "attach_record" or (self.head.kind == "missed_task" and self.leg is not None)

    def needs_check(self) -> bool:
        """Ask ``voximplant.statistic.get`` first: a register or finish of it was handed to the network before
        without a recorded answer (crash, timeout, lost answer), so the call may already be there. A call whose
        register provably never left (``attempts`` 0: never sent, or every try refused before it was sent) cannot
        be in Bitrix24, so mirroring it offline needs no check."""
        if self.leg is None:
            return False
        return any(op.kind in ("register", "finish") and op.attempts > 0 for op in self.ops)

    @property
    def size(self) -> int:
        """Commands it takes in a batch."""
        return len(self.ops)


def chains_of(ops: Iterable[PendingOp]) -> list[Chain]:
    """Group ready ops (as :meth:`Journal.ready` orders them) by leg; ops of no leg stay alone."""
    chains: list[Chain] = []
    by_leg: dict[str, Chain] = {}
    for op in ops:
        if op.crm_leg is not None and op.crm_leg in by_leg:
            by_leg[op.crm_leg].ops.append(op)
            continue
        chain = Chain([op])
        chains.append(chain)
        if op.crm_leg is not None:
            by_leg[op.crm_leg] = chain
    return chains


def key_of(op: PendingOp) -> str:
    return f"op{op.id}"


def check_key(chain: Chain) -> str:
    """The batch key of the statistics check for ``chain``'s call."""
    return f"check{chain.head.id}"


def fill(chains: list[Chain], room: int) -> tuple[list[Chain], list[Chain]]:
    """Take chains, in order, that fit together into ``room`` commands; returns (taken, the rest in order)."""
    taken: list[Chain] = []
    rest: list[Chain] = []
    for chain in chains:
        if chain.size <= room:
            taken.append(chain)
            room -= chain.size
        else:
            rest.append(chain)
    return taken, rest


@dataclass
class BatchPlan:
    """The batch's commands and which chain each key belongs to."""

    commands: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    chains: list[Chain] = field(default_factory=list)
    unbuildable: list[tuple[PendingOp, str]] = field(default_factory=list)
    """Ops whose request cannot be built (bad stored data), with the reason: they are failed, not sent."""

    def op_ids(self) -> list[int]:
        return [op.id for chain in self.chains for op in chain.ops]


def plan_batch(chains: Iterable[Chain]) -> BatchPlan:
    """One batch for these chains (the caller keeps them within 50 commands: :func:`fill`)."""
    plan = BatchPlan()
    for chain in chains:
        commands: dict[str, tuple[str, dict[str, Any]]] = {}
        call_id = chain.head.call_id or ""
        try:
            for op in chain.ops:
                cmd = op.command
                if isinstance(cmd, CrmRegister):
                    if chain.offline:
                        cmd = dataclasses.replace(cmd, show=False)
                    commands[key_of(op)] = request_for(cmd)
                    call_id = result_ref(key_of(op), "CALL_ID")
                else:
                    commands[key_of(op)] = request_for(cmd, call_id)
        except ValueError as exc:
            plan.unbuildable.append((chain.head, str(exc)))
            continue
        plan.commands.update(commands)
        plan.chains.append(chain)
    return plan


def record_filename(recording: str) -> str:
    """The FILENAME Bitrix24 gets for a recording: its base name, ``.wav`` added unless it is wav or mp3."""
    name = PurePosixPath(recording).name or "recording"
    return name if name.lower().endswith(RECORD_EXTENSIONS) else name + DEFAULT_RECORD_EXTENSION


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try after ``attempts`` tries: ``base``, doubling, at most ``cap``."""
    return float(min(cap, base * 2 ** min(max(attempts, 1) - 1, 30)))
