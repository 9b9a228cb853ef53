"""Device states read around the bridge's own legs: what an agent's device state means for one call.

A phone's device state is derived from all its channels (``chan_pjsip_devicestate``): our own leg to the phone
makes it ``RINGING`` while it rings and ``INUSE`` once answered, and that news travels on its own path, before or
after the leg's ``StasisStart`` (``reference/asterisk.md``, "Device states of phone endpoints"). So the same state
means different things to different calls:

* a call with **no leg on the device** reads it plainly (``outcomes.DEVICE_AVAILABILITY``): ``INUSE`` is busy;
* a call **with a leg on it** (ringing, released but not ended yet, or talking) reads:

  ==============  ==================================================================================
  ``INUSE``       its own leg answered (the ``StasisStart`` may still be on the way), or it is gone and
                  its end is on the way: available, never "busy on another call"
  ``ONHOLD``      its own leg up and held: available
  ``BUSY``        ``devicestate_busy_at`` counts its own ringing leg too: available
  ``RINGINUSE``   either its leg rings while the agent took another call (busy elsewhere: release it),
                  or its leg was answered while another call rings: unsettled, decided
                  ``SETTLE_SECONDS`` later (:func:`settled`) if the leg's answer has not come by then
  others          as plain
  ==============  ==================================================================================
"""

from __future__ import annotations

from bridge.domain.scheme import Availability
from bridge.domain.state import Call
from bridge.pbx.outcomes import DEVICE_AVAILABILITY

SETTLE_SECONDS = 0.5
"""How long an unsettled reading waits for the channel events of the same moment (they come within a few ms)."""

OWN_LEG_READINGS: dict[str, Availability | None] = {
    "INUSE": Availability.AVAILABLE,
    "ONHOLD": Availability.AVAILABLE,
    "BUSY": Availability.AVAILABLE,
    "RINGINUSE": None,
}


def plain(state: str | None) -> Availability:
    """The device's state for a call with no leg on it (a device never reported counts as free)."""
    return Availability.AVAILABLE if state is None else DEVICE_AVAILABILITY[state]


def reading(state: str | None, own_leg: bool) -> Availability | None:
    """What ``state`` means for a call that has (``own_leg``) or has not a leg on the device; None: unsettled."""
    if own_leg and state in OWN_LEG_READINGS:
        return OWN_LEG_READINGS[state]
    return plain(state)


def settled(state: str | None, own_leg: bool) -> Availability:
    """The reading once ``SETTLE_SECONDS`` have passed: a reading still unsettled means busy on another call."""
    found = reading(state, own_leg)
    return Availability.BUSY if found is None else found


def devices_of(call: Call) -> frozenset[str]:
    """The agent devices (by extension) this call has a leg on: ringing, released but not ended, or talking.

    A leg to an employee's mobile carries their extension but is not on their device."""
    exts: tuple[str, ...] = ()  # loops, not a comprehension: a call has a leg or two (read at every change of its legs)
    for leg in call.ringing:
        if leg.ext and not leg.number:
            exts += (leg.ext,)
    for leg in call.released:
        if leg.ext and not leg.number:
            exts += (leg.ext,)
    talk = call.talk
    if talk is not None and talk.ext and talk.ended_at is None:
        exts += (talk.ext,)
    return frozenset(exts)
