"""A protocol-level Asterisk 20 simulator: AMI over TCP, ARI over HTTP + WebSocket.

It reproduces what the recordings in ``reference/transcripts`` show (event types, order, fields)
over real sockets, with scripted parties for agents, callers, phones and external numbers.
Omitted on purpose: most ``Newexten``/``VarSet`` noise of the recorded robots' dialplans (only the
steps that matter are emitted), queue events, SIP itself.
"""

from bridge.sim.asterisk.calls import CallHandle
from bridge.sim.asterisk.inbound import InboundCall
from bridge.sim.asterisk.parties import Answer, Busy, Congestion, NeverAnswer, Party, Reject, Unregistered
from bridge.sim.asterisk.simulator import AsteriskSimulator

__all__ = [
    "Answer",
    "AsteriskSimulator",
    "Busy",
    "CallHandle",
    "Congestion",
    "InboundCall",
    "NeverAnswer",
    "Party",
    "Reject",
    "Unregistered",
]
