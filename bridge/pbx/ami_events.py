"""Which AMI events the bridge reads, the class Asterisk sends each with, and what it asks Asterisk for at login.

A real Asterisk sends far more than the bridge reads (RTCP reports, CDRs, security and registration events, every
dialplan step and variable): the login's ``Events:`` mask asks only for the classes below, and ``Filter`` actions
(when the AMI user may add them: ``write = system``) narrow those classes to what the bridge reads. Asterisk
delivers an event only when the session's mask holds every class of it (``main/manager.c`` ``process_events``),
and, with filters, when an include matches its text and no exclude does (``should_send_event``).
Classes are the ``manager_event`` / ``ast_manager_event_blob_create`` flags in the Asterisk 20 source.

What the filters leave out, beyond the events the bridge never reads (:func:`event_filters`):

* the channel events of the bridge's own legs (``Uniqueid: <call>-leg<n>``: the bridge picks the ARI channel id,
  which is the Uniqueid): ARI reports those legs; only their ``Hangup`` stays (the time a call ended, after a gap
  of the ARI link: :meth:`bridge.pbx.ami.AmiLink.hung_up_at`);
* ``Newexten`` (one a dialplan step) and ``Newstate`` outside the dialplan contexts and lines the translator watches
  (it reads them only to see a watched call start);
* ``BridgeEnter`` of the first channel into a bridge (``BridgeNumChannels: 1``: every Stasis call's own bridge);
* device states of devices that do not fit the agents' ``device`` template (trunks, Local channels, queues, MOH);
* ``OriginateResponse`` to other AMI clients' actions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bridge.config import AsteriskSettings

RECORDING_VARIABLE = "MIXMONITOR_FILENAME"
"""The only variable whose ``VarSet`` the bridge reads: it names the recording of a watched call."""

USED_EVENTS: dict[str, str] = {
    "Newchannel": "call",  # main/manager_channels.c
    "Newstate": "call",
    "Newexten": "dialplan",
    "Hangup": "call",
    "DialBegin": "call",
    "DialEnd": "call",
    "MixMonitorStart": "call",
    "VarSet": "dialplan",  # main/stasis_channels.c; only RECORDING_VARIABLE
    "BridgeEnter": "call",  # main/manager_bridges.c
    "DeviceStateChange": "call",  # main/devicestate.c
    "OriginateResponse": "call",  # main/manager.c: the end of an async Originate
}
"""Event -> its class. The translator (``bridge.pbx.observe``) and the link read nothing else."""

LEG_UNIQUEID = "-leg[0-9]+"
"""How the id of a leg the bridge originates ends (``bridge.domain.state.next_id(call, "leg")``)."""
LEG_EVENTS = ("BridgeEnter", "DialBegin", "DialEnd", "MixMonitorStart", "Newchannel", "Newexten", "Newstate", "VarSet")
"""The events of the bridge's own legs that the filters leave out (all it reads but ``Hangup``)."""
WATCHED_ONLY = ("Newexten", "Newstate")
"""Events the translator reads only for a snapshot in a watched context or on a watched line (a call's start):
the filters let them through only there."""
TWO_OR_MORE = "([2-9]|[1-9][0-9]+)"
"""``BridgeNumChannels`` (the channels in the bridge, the one entering included) from which ``BridgeEnter`` counts:
the translator reads it as the answer of a watched call, so the first channel's entry says nothing."""
END = "[[:cntrl:]]"
"""The end of a header line (``\\r``: POSIX has no escape for it, and an action's header cannot hold it)."""
NAME_END = "[^A-Za-z]"
"""The end of an event's name (``Hangup`` is not ``HangupRequest``)."""
ERE_SPECIAL = re.compile(r"([.\[\]()*+?{}|^$\\])")


def event_mask() -> str:
    """The ``Events:`` header of the login: the classes of :data:`USED_EVENTS`."""
    return ",".join(sorted(set(USED_EVENTS.values())))


def event_filters(settings: AsteriskSettings, action_ids: str = "") -> list[str]:
    """Include filters (POSIX extended regular expressions on the event's text, which starts ``Event: <name>``) and,
    last, the exclude of the bridge's own legs (``!``).

    ``settings`` gives the agents' ``device`` template and the ``outbound_contexts`` and ``monitor_lines`` the
    translator watches; ``action_ids`` is how the link's ActionIDs start (empty: every ``OriginateResponse``).
    """
    narrowed = {"VarSet", "BridgeEnter", *WATCHED_ONLY, "DeviceStateChange", "OriginateResponse"}
    plain = sorted(set(USED_EVENTS) - narrowed)
    includes = [
        f"^Event: ({'|'.join(plain)}){NAME_END}",
        f"^Event: BridgeEnter{NAME_END}.*{END}BridgeNumChannels: {TWO_OR_MORE}{END}",
        f"^Event: VarSet{NAME_END}.*Variable: {RECORDING_VARIABLE}[^A-Za-z_0-9]",
        f"^Event: DeviceStateChange{NAME_END}.*{END}Device: {_device(settings.device)}{END}",
    ]
    watched = [f"Context: ({_alternatives(settings.outbound_contexts)})"] if settings.outbound_contexts else []
    watched += [f"Exten: ({_alternatives(settings.monitor_lines)})"] if settings.monitor_lines else []
    if watched:
        includes.append(f"^Event: ({'|'.join(WATCHED_ONLY)}){NAME_END}.*{END}({'|'.join(watched)}){END}")
    ours = f".*{END}ActionID: {_literal(action_ids)}" if action_ids else ""
    includes.append(f"^Event: OriginateResponse{NAME_END}{ours}")
    legs = f"!^Event: ({'|'.join(LEG_EVENTS)}){NAME_END}.*Uniqueid: [^[:cntrl:]]*{LEG_UNIQUEID}{END}"
    return [*includes, legs]


def event_filter(settings: AsteriskSettings, action_ids: str = "") -> list[str]:
    """The ``Filter`` actions the link adds, in order: the includes of :func:`event_filters` as one pattern
    (``a|b``: with two include actions, the events only the second lets through are dropped between the two
    answers, at every connect: a recording's file name lost under load), then the exclude (before it is in place,
    a leg's events still pass, and the translator ignores them as it always did)."""
    *includes, exclude = event_filters(settings, action_ids)
    return ["|".join(includes), exclude]


def _literal(text: str) -> str:
    return ERE_SPECIAL.sub(r"\\\1", text)


def _alternatives(values: Iterable[str]) -> str:
    return "|".join(_literal(value) for value in sorted(values))


def _device(template: str) -> str:
    """The agents' device names as Asterisk writes them (any case, as the translator reads them; no ``;``, which
    starts a comment in manager.conf: the class is wider than the translator's, never narrower)."""
    before, _, after = template.partition("{ext}")
    return _caseless(before) + "[^/@[:space:]]+" + _caseless(after)


def _caseless(text: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() and c.isascii() else _literal(c) for c in text)
