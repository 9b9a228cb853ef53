"""Asterisk's numeric tables: hangup causes, channel states, ARI hangup reasons.

Texts are Asterisk's own (``main/channel.c`` cause table, ``include/asterisk/causes.h``), so that
``Cause-txt`` on AMI and ``cause_txt`` on ARI read exactly as a real server writes them.
"""

from __future__ import annotations

CAUSE_TEXT: dict[int, str] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    2: "No route to specified transmit network",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    26: "Answered elsewhere",
    27: "Destination out of order",
    28: "Invalid number format",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    44: "Requested channel not available",
    58: "Bearer capability not available",
    66: "Channel not implemented",
    127: "Interworking, unspecified",
}

NORMAL_CLEARING = 16
USER_BUSY = 17
NO_ANSWER = 19
SUBSCRIBER_ABSENT = 20
CALL_REJECTED = 21
CONGESTION = 34

# Soft-hangup flags that Asterisk reports as the "cause" of a soft ChannelHangupRequest.
SOFT_HANGUP_APPUNLOAD = 16  # the other half of a Local pair went away
SOFT_HANGUP_EXPLICIT = 32  # ARI DELETE /channels/{id}

# ARI ``DELETE /channels/{id}?reason=`` -> hangup cause (res/ari/resource_channels.c).
HANGUP_REASONS: dict[str, int] = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 19,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}

# Channel state name as ARI spells it -> (AMI ChannelState number, AMI ChannelStateDesc).
CHANNEL_STATES: dict[str, tuple[int, str]] = {
    "Down": (0, "Down"),
    "Rsrved": (1, "Rsrvd"),
    "OffHook": (2, "OffHook"),
    "Dialing": (3, "Dialing"),
    "Ring": (4, "Ring"),
    "Ringing": (5, "Ringing"),
    "Up": (6, "Up"),
    "Busy": (7, "Busy"),
    "Dialing Offhook": (8, "Dialing Offhook"),
    "Pre-ring": (9, "Pre-ring"),
    "Unknown": (10, "Unknown"),
}

DEVICE_STATES = (
    "UNKNOWN",
    "NOT_INUSE",
    "INUSE",
    "BUSY",
    "INVALID",
    "UNAVAILABLE",
    "RINGING",
    "RINGINUSE",
    "ONHOLD",
)


def cause_text(cause: int) -> str:
    """Asterisk's text for a hangup cause (``Unknown`` for codes it has no name for)."""
    return CAUSE_TEXT.get(cause, "Unknown")
