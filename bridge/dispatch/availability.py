"""What the shell knows about each extension's availability: the PBX's device states and Bitrix24's day."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.dispatch import presence
from bridge.domain.scheme import Availability


@dataclass
class AvailabilityBook:
    """What the shell knows about each extension: device state (PBX, as reported) and day (Bitrix24)."""

    devices: dict[str, str] = field(default_factory=dict)
    """Extension -> the last device state the PBX reported (``NOT_INUSE``, ``RINGING``, ``INUSE``, ...)."""
    crm: dict[str, Availability] = field(default_factory=dict)

    def of(self, ext: str, device: Availability | None = None) -> Availability:
        """``ext``'s availability for a call that reads its device as ``device`` (default: a call with no leg on
        it): the device first, then Bitrix24's day."""
        if device is None:
            device = presence.plain(self.devices.get(ext))
        if device is not Availability.AVAILABLE:
            return device
        return self.crm.get(ext, Availability.AVAILABLE)

    def snapshot(self) -> dict[str, Availability]:
        """Every known extension as a new call (no legs yet) sees it."""
        return {ext: self.of(ext) for ext in set(self.devices) | set(self.crm)}
