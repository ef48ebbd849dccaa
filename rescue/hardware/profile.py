"""Hardware profile of the running machine (placeholder until the hardware issue lands)."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class HardwareProfile:
    architecture: str = ""
    firmware: str = ""  # "uefi" | "bios"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardwareProfile:
        return cls(
            architecture=data.get("architecture", ""),
            firmware=data.get("firmware", ""),
            extra=dict(data.get("extra", {})),
        )


def firmware_type() -> str:
    return "uefi" if os.path.isdir("/sys/firmware/efi") else "bios"


def collect_profile() -> HardwareProfile:
    """Read-only: the profile of the machine this runs on."""
    return HardwareProfile(architecture=platform.machine(), firmware=firmware_type())
