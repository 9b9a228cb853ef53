"""What the shell knows about each extension's availability: the PBX's device states and Bitrix24's day."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.dispatch import presence
from bridge.dispatch.kept import KeptView
from bridge.domain.scheme import Availability


@dataclass
class AvailabilityBook:
    """What the shell knows about each extension: device state (PBX, as reported) and day (Bitrix24).

    Written through :meth:`set_device` and :meth:`set_crm`, which keep every extension's plain reading up to date,
    so that a new call's :meth:`snapshot` is a view over a base that calls share, not a reading of every known
    extension (400 agents: 2 ms a call) nor a copy of them (2,000 agents: about 70 KiB a call)."""

    devices: dict[str, str] = field(default_factory=dict)
    """Extension -> the last device state the PBX reported (``NOT_INUSE``, ``RINGING``, ``INUSE``, ...)."""
    crm: dict[str, Availability] = field(default_factory=dict)
    _plain: KeptView[str, Availability] = field(default_factory=KeptView, repr=False)
    """Extension -> :meth:`of` it (kept for every extension in ``devices`` or ``crm``)."""

    def of(self, ext: str, device: Availability | None = None) -> Availability:
        """``ext``'s availability for a call that reads its device as ``device`` (default: a call with no leg on
        it): the device first, then Bitrix24's day."""
        if device is None:
            device = presence.plain(self.devices.get(ext))
        if device is not Availability.AVAILABLE:
            return device
        return self.crm.get(ext, Availability.AVAILABLE)

    def set_device(self, ext: str, state: str) -> None:
        self.devices[ext] = state
        self._plain.set(ext, self.of(ext))

    def set_crm(self, found: Mapping[str, Availability]) -> None:
        """Bitrix24's day is now ``found`` (replacing what it said before)."""
        was = self.crm
        self.crm = dict(found)
        for ext in set(was) | set(found):
            if ext in self.crm or ext in self.devices:
                self._plain.set(ext, self.of(ext))
            else:
                self._plain.drop(ext)

    def plain(self) -> KeptView[str, Availability]:
        """Extension -> its availability for a call with no leg on it (kept up to date; missing: available)."""
        return self._plain

    def snapshot(self) -> Mapping[str, Availability]:
        """Every known extension as a new call (no legs yet) sees it (a read-only view the call keeps)."""
        return self._plain.snapshot()
