"""Which disks may be restore targets, and why the others may not. Pure: no I/O.

Public API::

    assess(inventory, repo_devices=(), boot_devices=None) -> Inventory
    reasons_for(disk, repo_devices, boot_devices) -> tuple[list[str], list[str]]

``assess`` returns a copy of *inventory* with ``Disk.eligible``, ``Disk.ineligible_reasons``
and ``Disk.roles`` filled in; the input is not modified. ``repo_devices`` names the disks
holding the selected image repository and ``boot_devices`` the live system's boot medium
(``None``: the inventory's own ``boot_devices``). Both accept kernel names ("sdb"),
device paths ("/dev/sdb1": its disk is meant) or ``"MAJ:MIN"`` strings; a partition
reference protects its whole disk.

A disk is never a target when it: is the boot medium or holds the current root; holds
the repository; has a mounted partition, a swap in use or a holder (RAID, LVM, dm-crypt);
is, or has a partition that is, a RAID member (md, Intel RST/IMSM, DDF: assembled or
not, the sentence names the array and how to release the member);
is read-only; is an optical drive, a zram/RAM disk or a dm/md volume; has no medium.
Loop devices are eligible (they only appear when asked for with ``include_loop``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from rescue.devices.disks import (
    KIND_CDROM,
    KIND_DM,
    KIND_MD,
    KIND_RAM,
    KIND_ZRAM,
    Disk,
    Inventory,
    raid_member_kind,
)
from rescue.i18n import _

ROLE_BOOT_MEDIUM = "boot-medium"
ROLE_REPOSITORY = "repository"


def _resolve(inventory: Inventory, refs: Iterable[str]) -> set[str]:
    """Whole-disk ``MAJ:MIN`` for each reference that names something in the inventory;
    unknown ``MAJ:MIN`` strings are kept (a disk hidden from the listing, e.g. a loop)."""
    out: set[str] = set()
    for ref in refs:
        found = inventory.locate(str(ref))
        if found is not None:
            out.add(found[0].dev)
        elif ":" in str(ref):
            out.add(str(ref))
    return out


def raid_member_reason(path: str, fstype: str, label: str, uuid: str,
                       member_of: str) -> str:
    """Why a RAID member (a disk or partition of an md, Intel RST or DDF array) is no
    target, naming the array; "" for anything else. A member is protected also when its
    array is not assembled: writing to it destroys the array (a mirror's other half
    loses its partner, a stripe set all its data)."""
    if member_of:
        return _("{device} is a RAID member of {array}: restoring onto it would destroy "
                 "the array").format(device=path, array=member_of)
    kind = raid_member_kind(fstype)
    if not kind:
        return ""
    array = " ".join(x for x in (f"'{label}'" if label else "",
                                 f"UUID {uuid}" if uuid else "") if x)
    if not array:  # blkid names no array (Intel RST members, for one)
        return _("{device} is a RAID member ({kind}) of an array that is not assembled "
                 "now: restoring onto it destroys that array. If the array is no longer "
                 "needed, erase the member's RAID signature first: mdadm --zero-superblock "
                 "{device}").format(device=path, kind=kind)
    return _("{device} is a RAID member ({kind}) of the array {array}, not assembled now: "
             "restoring onto it destroys that array. If the array is no longer needed, "
             "erase the member's RAID signature first: mdadm --zero-superblock {device}"
             ).format(device=path, kind=kind, array=array)


def reasons_for(
    disk: Disk, repo_devs: set[str], boot_devs: set[str]
) -> tuple[list[str], list[str]]:
    """(reasons the disk must not be a target, roles it plays). Empty reasons: eligible."""
    reasons: list[str] = []
    roles: list[str] = []
    if disk.dev in boot_devs:
        roles.append(ROLE_BOOT_MEDIUM)
        reasons.append(_("it holds the running rescue system (boot medium or current root)"))
    if disk.dev in repo_devs:
        roles.append(ROLE_REPOSITORY)
        reasons.append(_("it holds the selected image repository"))
    if disk.kind == KIND_CDROM:
        reasons.append(_("it is an optical drive"))
    elif disk.kind == KIND_ZRAM:
        reasons.append(_("it is a compressed RAM disk (zram), gone at the next restart"))
    elif disk.kind == KIND_RAM:
        reasons.append(_("it is a RAM disk, gone at the next restart"))
    elif disk.kind == KIND_MD:
        reasons.append(_("it is a software RAID volume; restore onto a physical disk"))
    elif disk.kind == KIND_DM:
        reasons.append(_("it is a device-mapper volume; restore onto a physical disk"))
    if disk.size == 0:
        reasons.append(_("it has no medium (size 0)"))
    if disk.read_only:
        reasons.append(_("it is read-only (write-protect switch or firmware lock)"))
    uses = [(disk.path, disk.mountpoints, disk.swap, disk.holders)]
    uses += [(p.path, p.mountpoints, p.swap, p.holders) for p in disk.partitions]
    members = [(disk.path, disk.fstype, disk.label, disk.uuid, disk.member_of)]
    members += [(p.path, p.fstype, p.label, p.uuid, p.member_of) for p in disk.partitions]
    arrays: set[str] = set()
    for path, fstype, label, uuid, member_of in members:
        reason = raid_member_reason(path, fstype, label, uuid, member_of)
        if reason:
            reasons.append(reason)
        if member_of:
            arrays.add(member_of)
    for path, mountpoints, swap, holders in uses:
        for mp in mountpoints:
            reasons.append(_("{device} is mounted on {mountpoint}").format(
                device=path, mountpoint=mp))
        if swap:
            reasons.append(_("{device} is in use as swap").format(device=path))
        for h in holders:
            if h in arrays or (arrays and h.startswith("md")):
                continue  # said above, with the array's name (a container is no news)
            reasons.append(_("{device} is in use by {holder} (RAID, LVM or encryption)").format(
                device=path, holder=h))
    return reasons, roles


def assess(
    inventory: Inventory,
    repo_devices: Iterable[str] = (),
    boot_devices: Iterable[str] | None = None,
) -> Inventory:
    """A copy of *inventory* with every disk's eligibility decided (see module doc)."""
    result = copy.deepcopy(inventory)
    repo_devs = _resolve(result, repo_devices)
    boot_devs = _resolve(
        result, result.boot_devices if boot_devices is None else boot_devices
    )
    for disk in result.disks:
        reasons, roles = reasons_for(disk, repo_devs, boot_devs)
        disk.ineligible_reasons = reasons
        disk.roles = roles
        disk.eligible = not reasons
    return result
