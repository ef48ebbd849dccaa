"""What a disk or partition holds beyond a filesystem: membership of a RAID array,
encryption, an LVM physical volume. The one place that decides it; ``rescue devices``
and the wizard each only word the note (the CLI in English, the wizard translated)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rescue.devices.disks import raid_member_kind
from rescue.fs import registry

MEMBER = "member"  # a member of an assembled array; detail: the array ("md126")
RAID = "raid"  # a RAID member whose array is not assembled; detail: "Linux md", ...
ENCRYPTED = "encrypted"  # detail: "LUKS", "BitLocker"
LVM = "lvm"  # an LVM physical volume; detail: "volume group vg0: root, swap" or ""


@dataclass(frozen=True)
class StorageNote:
    kind: str  # MEMBER, RAID, ENCRYPTED or LVM
    detail: str = ""


def storage_note(node: str, fstype: str, member_of: str = "",
                 describe_pv: Callable[[str], str] | None = None) -> StorageNote | None:
    """The note for the device *node* whose blkid TYPE is *fstype* (*member_of*: the
    assembled array it belongs to); None for a plain filesystem or nothing.
    *describe_pv* reads an LVM physical volume's volume group (from the disk: only
    called for a physical volume, and only when given)."""
    if member_of:
        return StorageNote(MEMBER, member_of)
    if kind := raid_member_kind(fstype):
        return StorageNote(RAID, kind)
    if kind := registry.encryption(fstype) or "":
        return StorageNote(ENCRYPTED, kind)
    if fstype == registry.LVM_PV:
        return StorageNote(LVM, describe_pv(node) if describe_pv is not None else "")
    return None
