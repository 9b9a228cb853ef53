"""What the shell knows about each extension's availability: the PBX's device states and Bitrix24's day."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.domain.scheme import Availability


@dataclass
class AvailabilityBook:
    """What the shell knows about each extension: device state (PBX) and day (Bitrix24), combined."""

    device: dict[str, Availability] = field(default_factory=dict)
    crm: dict[str, Availability] = field(default_factory=dict)

    def of(self, ext: str) -> Availability:
        device = self.device.get(ext, Availability.AVAILABLE)
        if device is not Availability.AVAILABLE:
            return device
        return self.crm.get(ext, Availability.AVAILABLE)

    def snapshot(self) -> dict[str, Availability]:
        return {ext: self.of(ext) for ext in set(self.device) | set(self.crm)}
