"""Facts about a restore target, read-only, for the planner's refusal checks, and the
target's identity (device number, size, disk sequence number, WWN, serial, by-id name)
the restore checks again through its open descriptor right before the first write."""

from __future__ import annotations

import fcntl
import json
import os
import struct
from pathlib import Path

from rescue.devices.blockdev import (
    blkid_probe,
    device_facts,
    require_block_device,
    sysfs_attr,
)
from rescue.devices.eligibility import raid_member_reason
from rescue.devices.inventory import boot_medium_devices, repo_devices
from rescue.devices.mounts import (
    devnum_of,
    disk_devnums,
    disk_use,
    parent_disk_devnum,
    sysfs_block_dir,
)
from rescue.errors import TargetRefusedError
from rescue.i18n import _
from rescue.plan.restore import TargetInfo
from rescue.runner import CommandRunner


def table_layout(sfdisk_table: dict) -> tuple[str, list[list[str | int]]]:
    """(disk id, [[number, start, size, TYPE, UUID], ...]) from `sfdisk -J` output, in the
    form plan_restore compares with."""
    rows: list[list[str | int]] = []
    for entry in sfdisk_table.get("partitions", []):
        node = str(entry["node"])
        number = int(node[len(node.rstrip("0123456789")):])
        rows.append([number, int(entry["start"]), int(entry["size"]),
                     str(entry["type"]).upper(), str(entry.get("uuid", "")).upper()])
    return str(sfdisk_table.get("id", "")), sorted(rows)


BLKGETDISKSEQ = 0x80081280  # <linux/fs.h>, Linux 5.15: a new number at each attach/media change
BLKGETSIZE64 = 0x80081272


def _devnum_text(devnum: int) -> str:
    return f"{os.major(devnum)}:{os.minor(devnum)}"


def _sys_text(devnum: int, *names: str) -> str:
    """The first non-empty sysfs attribute of the block device *devnum* among *names*."""
    base = sysfs_block_dir(devnum)
    for name in names:
        try:
            text = (base / name).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return ""


def _by_id(devnum: int) -> str:
    """A /dev/disk/by-id name of the device (bus-model-serial before wwn-), "" when udev
    made none."""
    ids = []
    try:
        links = list(Path("/dev/disk/by-id").iterdir())
    except OSError:
        return ""
    for link in links:
        try:
            if os.stat(link).st_rdev == devnum:
                ids.append(str(link))
        except OSError:
            continue
    ids.sort(key=lambda p: (os.path.basename(p).startswith(("wwn-", "nvme-eui.")), p))
    return ids[0] if ids else ""


def fd_identity(fd: int) -> dict[str, str | int]:
    """The identity of the block device open as *fd*: what TargetInfo records as
    devnum, size_bytes, diskseq, wwn and serial. Read through the descriptor (the
    device number and size, the disk sequence number by ioctl), so it is the identity of
    exactly the device that will be written, not of whatever the path names now."""
    devnum = os.fstat(fd).st_rdev
    buf = bytearray(8)
    fcntl.ioctl(fd, BLKGETSIZE64, buf)
    size = int(struct.unpack("Q", buf)[0])
    try:
        seq = bytearray(8)
        fcntl.ioctl(fd, BLKGETDISKSEQ, seq)
        diskseq = int(struct.unpack("Q", seq)[0])
    except OSError:  # a kernel older than 5.15
        diskseq = int(_sys_text(devnum, "diskseq") or 0)
    return {
        "devnum": _devnum_text(devnum),
        "size_bytes": size,
        "diskseq": diskseq,
        "wwn": _sys_text(devnum, "wwid", "device/wwid"),
        "serial": _sys_text(devnum, "device/serial", "serial"),
    }


def identity_changes(planned: TargetInfo, now: dict[str, str | int]) -> list[str]:
    """What differs between the planned target and the device open now (field: planned
    -> now); empty when it is the same disk. A field the plan could not read ("" or 0)
    is not compared."""
    changes = []
    for name in ("devnum", "size_bytes", "diskseq", "wwn", "serial"):
        before, after = getattr(planned, name), now.get(name)
        if before and before != after:
            changes.append(f"{name} {before} -> {after or '-'}")
    return changes


def target_roles(path: str, repo_path: str | None) -> tuple[bool, bool]:
    """(is the medium the rescue system started from, holds the repository at
    *repo_path*) for the whole disk *path*."""
    me = _devnum_text(devnum_of(path))
    # both follow loop backing files, ntfs-3g mounts and dm/md members to the real disks
    repo_disks = set(repo_devices([repo_path])) if repo_path else set()
    return me in set(boot_medium_devices()), me in repo_disks


def raid_member_refusal(path: str, info: dict[str, str], partitions: list[int],
                        runner: CommandRunner) -> str:
    """The sentence refusing *path* when it or one of its *partitions* (device numbers)
    carries a RAID member superblock (md, Intel RST, DDF) of an array that is not
    assembled: writing to it would destroy that array. "" otherwise."""
    found = [(path, info)]
    for devnum in partitions:
        node = "/dev/" + sysfs_block_dir(devnum).name
        found.append((node, blkid_probe(node, runner)))
    for node, fields in found:
        reason = raid_member_reason(node, fields.get("TYPE", ""), fields.get("LABEL", ""),
                                    fields.get("UUID", ""), "")
        if reason:
            return _("{path} cannot be a restore target: {reason}. Nothing was written."
                     ).format(path=path, reason=reason)
    return ""


def probe_target(path: str, repo_path: str | None, runner: CommandRunner) -> TargetInfo:
    require_block_device(path)
    facts = device_facts(path)
    whole = devnum_of(path)
    parent = parent_disk_devnum(whole)
    if parent != whole:
        # a partition: refused by the planner (check_target); nothing more is probed
        return TargetInfo(
            path=path, size_bytes=int(facts["size_bytes"]),
            logical_sector_size=int(facts["logical_sector_size"]),
            physical_sector_size=int(facts["physical_sector_size"]),
            read_only=bool(facts["read_only"]), devnum=_devnum_text(whole),
            partition_of="/dev/" + sysfs_block_dir(parent).name,
        )
    use = disk_use(path)
    nums = disk_devnums(path)
    is_boot_medium, holds_repository = target_roles(path, repo_path)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        identity = fd_identity(fd)
    finally:
        os.close(fd)
    info = blkid_probe(path, runner)
    if not use.busy:  # an assembled array's members are busy: the planner says so
        refusal = raid_member_refusal(path, info, sorted(nums - {whole}), runner)
        if refusal:
            raise TargetRefusedError(refusal)
    signatures = [info["TYPE"]] if "TYPE" in info else []
    existing_id = ""
    existing_layout: list[list[str | int]] = []
    table = runner.run(["sfdisk", "-J", path], check=False)
    if table.returncode == 0 and table.stdout.strip():
        existing_id, existing_layout = table_layout(json.loads(table.stdout)["partitiontable"])
    return TargetInfo(
        path=path,
        size_bytes=int(facts["size_bytes"]),
        logical_sector_size=int(facts["logical_sector_size"]),
        physical_sector_size=int(facts["physical_sector_size"]),
        read_only=bool(facts["read_only"]),
        busy=use.describe() if use.busy else "",
        holds_repository=holds_repository,
        is_boot_medium=is_boot_medium,
        model=sysfs_attr(path, "device/model"),
        serial=str(identity["serial"]),
        existing_table=info.get("PTTYPE", ""),
        existing_partitions=len(nums) - 1,
        existing_signatures=signatures,
        existing_id=existing_id,
        existing_layout=existing_layout,
        devnum=str(identity["devnum"]),
        diskseq=int(identity["diskseq"]),
        wwn=str(identity["wwn"]),
        by_id=_by_id(whole),
    )
