"""The one consumer: every PBX fact, CRM answer and timer expiry goes through one queue into the core.

One event at a time, no locks (design principle 6). For each input the dispatcher steps the call's pure state
machine, arms the one timer per call from the deadline the core returns, hands PBX commands to a per-call
executor (so the PBX is never waited for here and a call's commands keep their order), and writes CRM commands
to the journal before anything is sent (outbox first).
"""

from bridge.dispatch.availability import AvailabilityBook
from bridge.dispatch.dispatcher import Dispatcher, Outbox
from bridge.dispatch.executor import CallExecutor, PbxPort
from bridge.dispatch.inputs import CallSummary, Input, LookupDone, StampedQueue, TimerDue

__all__ = [
    "AvailabilityBook",
    "CallExecutor",
    "CallSummary",
    "Dispatcher",
    "Input",
    "LookupDone",
    "Outbox",
    "PbxPort",
    "StampedQueue",
    "TimerDue",
]
