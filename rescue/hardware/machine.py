"""A recorded machine: its disk inventory and hardware profile in one JSON file.

Public API::

    Machine.probe(include_loop: bool = False, boot_disk: str | None = None,
                  runner=None, description: str = "") -> Machine
    Machine.load(path) -> Machine      # also accepts a bare inventory file
    machine.dump(path) / machine.to_dict() / Machine.from_dict(d)

``rescue devices --dump machine.json`` writes one; every consumer (``rescue devices
--machine``, ``rescue compat --machine``, the wizard, the tests) can run from it instead
of the live system. Layout::

    {"format": "rescue-machine", "version": 1, "description": "...",
     "inventory": {...Inventory.to_dict()...}, "hardware": {...HardwareProfile.to_dict()...}}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rescue.devices.disks import Inventory
from rescue.devices.inventory import probe_inventory
from rescue.errors import UsageError
from rescue.hardware.profile import HardwareProfile, collect_profile
from rescue.i18n import _
from rescue.runner import CommandRunner

MACHINE_FORMAT = "rescue-machine"
MACHINE_VERSION = 1


@dataclass
class Machine:
    inventory: Inventory = field(default_factory=Inventory)
    hardware: HardwareProfile = field(default_factory=HardwareProfile)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MACHINE_FORMAT,
            "version": MACHINE_VERSION,
            "description": self.description,
            "inventory": self.inventory.to_dict(),
            "hardware": self.hardware.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Machine:
        if data.get("format") not in (None, MACHINE_FORMAT):
            raise UsageError(_("This file is a {format!r} file, not a recorded machine.").format(
                format=data.get("format")))
        if int(data.get("version", 1)) > MACHINE_VERSION:
            raise UsageError(_(
                "This machine file was written by a newer rescue; update rescue to read it."
            ))
        inv_data = data.get("inventory", data if "disks" in data else {})
        return cls(
            inventory=Inventory.from_dict(inv_data),
            hardware=HardwareProfile.from_dict(data.get("hardware") or {}),
            description=str(data.get("description", "")),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Machine:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise UsageError(_("Cannot read the machine file {path}: {reason}.").format(
                path=path, reason=exc.strerror)) from exc
        except ValueError as exc:
            raise UsageError(_("The machine file {path} is not valid JSON ({error}).").format(
                path=path, error=exc)) from exc
        if not isinstance(data, dict):
            raise UsageError(_("The machine file {path} does not hold a recorded machine.").format(
                path=path))
        machine = cls.from_dict(data)
        machine.inventory.source = str(path)
        return machine

    def dump(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def probe(
        cls,
        include_loop: bool = False,
        boot_disk: str | None = None,
        runner: CommandRunner | None = None,
        description: str = "",
    ) -> Machine:
        """Read-only: the running machine (inventory + hardware profile)."""
        return cls(
            inventory=probe_inventory(include_loop=include_loop, runner=runner),
            hardware=collect_profile(boot_disk=boot_disk),
            description=description,
        )
