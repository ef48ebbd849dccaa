"""What the inventory says about a machine's disks: :class:`Disk`, :class:`Partition` and
:class:`Inventory`, with their JSON form. Pure data: probing is in
:mod:`rescue.devices.inventory`, the target rules in :mod:`rescue.devices.eligibility`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rescue.recorded import read_member

INVENTORY_SCHEMA = 1

# Kinds of block device (Disk.kind).
KIND_DISK = "disk"
KIND_LOOP = "loop"
KIND_CDROM = "cdrom"
KIND_ZRAM = "zram"
KIND_RAM = "ram"
KIND_MD = "md"
KIND_DM = "dm"

# blkid's TYPE of a disk or partition carrying a RAID member superblock, and what it is.
RAID_MEMBER_TYPES = {
    "linux_raid_member": "Linux md",
    "isw_raid_member": "Intel RST (IMSM)",
    "ddf_raid_member": "DDF",
}


def raid_member_kind(fstype: str) -> str:
    """"Linux md", "Intel RST (IMSM)", "DDF" for a RAID member's blkid TYPE, else ""."""
    return RAID_MEMBER_TYPES.get(fstype, "")


def devstr(devnum: int) -> str:
    """``"MAJ:MIN"`` for an ``os.makedev`` device number."""
    return f"{os.major(devnum)}:{os.minor(devnum)}"


def _from_known(cls: Any, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass
class Partition:
    name: str  # kernel name: "sda1", "nvme0n1p2", "loop3p1"
    path: str  # "/dev/sda1"
    dev: str  # "MAJ:MIN"
    number: int = 0
    start: int = 0  # bytes from the start of the disk
    size: int = 0  # bytes
    fstype: str = ""  # "ext4", "vfat", "ntfs", "swap", "crypto_LUKS", ...
    uuid: str = ""
    label: str = ""
    partuuid: str = ""
    partlabel: str = ""
    parttype: str = ""  # GPT type GUID or MBR type ("0x83")
    read_only: bool = False
    mountpoints: list[str] = field(default_factory=list)
    swap: bool = False
    holders: list[str] = field(default_factory=list)
    # the assembled md array (or IMSM/DDF container) it belongs to: "md126"
    member_of: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Partition:
        return cls(**_from_known(cls, d))


@dataclass
class Disk:
    name: str  # kernel name: "sda", "nvme0n1", "vda", "loop3"
    path: str  # "/dev/sda"
    dev: str  # "MAJ:MIN"
    kind: str = KIND_DISK  # disk | loop | cdrom | zram | ram | md | dm
    by_id: str = ""  # stable /dev/disk/by-id/... path ("" when udev has none)
    model: str = ""
    vendor: str = ""
    serial: str = ""
    wwn: str = ""
    size: int = 0  # bytes
    logical_sector_size: int = 512
    physical_sector_size: int = 512
    transport: str = ""  # nvme | sata | scsi | usb | virtio | mmc | loop | virtual
    removable: bool = False
    rotational: bool = False
    read_only: bool = False
    table_type: str = ""  # "gpt" | "dos" | "" (none)
    table_uuid: str = ""
    # A filesystem directly on the whole disk (no partition table), e.g. a loop image.
    fstype: str = ""
    uuid: str = ""
    label: str = ""
    mountpoints: list[str] = field(default_factory=list)
    swap: bool = False
    holders: list[str] = field(default_factory=list)
    backing_file: str = ""  # loop devices
    # md arrays: "raid1", "raid0", "raid10", "linear"...; their members' kernel names;
    # the metadata ("1.2", "0.90", "imsm", "ddf"); the IMSM/DDF container ("md127")
    raid_level: str = ""
    raid_members: list[str] = field(default_factory=list)
    raid_metadata: str = ""
    raid_container: str = ""
    # a disk that is itself an md member (whole-disk members, IMSM/DDF): the array
    member_of: str = ""
    partitions: list[Partition] = field(default_factory=list)
    # Filled by rescue.devices.eligibility.assess:
    eligible: bool = True
    ineligible_reasons: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)  # "boot-medium", "repository"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Disk:
        data = _from_known(cls, d)
        data["partitions"] = [Partition.from_dict(p) for p in d.get("partitions") or []]
        return cls(**data)

    def devs(self) -> set[str]:
        """``MAJ:MIN`` of the disk and all its partitions."""
        return {self.dev, *(p.dev for p in self.partitions)}

    @property
    def mounted(self) -> bool:
        return bool(self.mountpoints or any(p.mountpoints for p in self.partitions))

    def title(self) -> str:
        """One line for people: "sda  Samsung SSD 870 (sata, 500.1 GB)"."""
        what = " ".join(x for x in (self.vendor, self.model) if x) or self.kind
        return f"{self.name}  {what} ({self.transport or self.kind}, {self.size / 1e9:.1f} GB)"


@dataclass
class Inventory:
    disks: list[Disk] = field(default_factory=list)
    # Whole disks ("MAJ:MIN") behind the live system's boot medium and the current root.
    boot_devices: list[str] = field(default_factory=list)
    include_loop: bool = False
    collected_utc: str = ""
    source: str = "live"  # "live" or the file it was loaded from
    schema: int = INVENTORY_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Inventory:
        return cls(
            disks=[Disk.from_dict(x) for x in d.get("disks") or []],
            boot_devices=list(d.get("boot_devices") or []),
            include_loop=bool(d.get("include_loop", False)),
            collected_utc=str(d.get("collected_utc", "")),
            source=str(d.get("source", "live")),
            schema=int(d.get("schema", INVENTORY_SCHEMA)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Inventory:
        """Read an inventory from a JSON file: a recorded machine (``rescue devices
        --dump``, whose ``inventory`` member is used) or a bare inventory."""
        inv = cls.from_dict(read_member(path, "inventory", "inventory", "disk inventory"))
        inv.source = str(path)
        return inv

    def dump(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def locate(self, ref: str) -> tuple[Disk, Partition | None] | None:
        """Find a disk or partition by kernel name, /dev path, ``MAJ:MIN`` or by-id path."""
        name = os.path.basename(ref)
        for disk in self.disks:
            if ref in (disk.name, disk.path, disk.dev) or (disk.by_id and ref == disk.by_id):
                return disk, None
            for part in disk.partitions:
                if ref in (part.name, part.path, part.dev):
                    return disk, part
        for disk in self.disks:  # e.g. a /dev/mapper or by-id path resolved elsewhere
            if disk.by_id and name == os.path.basename(disk.by_id):
                return disk, None
        return None

    def disk(self, ref: str) -> Disk | None:
        """The whole disk for *ref*; a partition reference gives its disk."""
        found = self.locate(ref)
        return found[0] if found else None

    def eligible_disks(self) -> list[Disk]:
        return [d for d in self.disks if d.eligible]
