"""Which AMI events the bridge reads, the class Asterisk sends each with, and what it asks Asterisk for at login.

A real Asterisk sends far more than the bridge reads (RTCP reports, CDRs, security and registration events, every
dialplan step and variable): the login's ``Events:`` mask asks only for the classes below, and an include
``Filter`` (when the AMI user may add one: ``write = system``) narrows those classes to these events. Asterisk
delivers an event only when the session's mask holds every class of it (``main/manager.c`` ``process_events``).
Classes are the ``manager_event`` / ``ast_manager_event_blob_create`` flags in the Asterisk 20 source.
"""

from __future__ import annotations

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


def event_mask() -> str:
    """The ``Events:`` header of the login: the classes of :data:`USED_EVENTS`."""
    return ",".join(sorted(set(USED_EVENTS.values())))


def event_filters() -> list[str]:
    """Include filters (POSIX extended regular expressions on the event's text, which starts ``Event: <name>``).

    ``[^A-Za-z]`` ends a name (``Hangup`` is not ``HangupRequest``) without ``\\r``, which POSIX has no escape for.
    """
    names = sorted(name for name in USED_EVENTS if name != "VarSet")
    return [
        f"^Event: ({'|'.join(names)})[^A-Za-z]",
        f"^Event: VarSet[^A-Za-z].*Variable: {RECORDING_VARIABLE}[^A-Za-z_0-9]",
    ]


def event_filter() -> str:
    """:func:`event_filters` as the one pattern the link adds (``a|b``): with two ``Filter`` actions, the events only
    the second lets through are dropped between the two answers, at every connect (a recording's file name lost
    under load)."""
    return "|".join(event_filters())
