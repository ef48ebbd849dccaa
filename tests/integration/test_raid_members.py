"""RAID members whose array is not assembled are protected (root, real udev, real loop
devices, real blkid).

This host's kernel has no md driver, so ``mdadm --create`` cannot run here; the member
superblocks are written byte for byte instead: struct ``mdp_superblock_1`` (version 1.2,
4 KiB from the start of the member, checksum computed as the kernel's
``calc_sb_1_csum``), which blkid and udev's blkid builtin recognise as
``linux_raid_member`` with the array's name and UUID, exactly as for a member made by
mdadm. The live ISO test (tests/iso/test_storage.py) makes real arrays with mdadm.

A systemd-udevd is started for this module unless one runs (the fixture of
test_udev_devices.py), and stopped by its PID.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, partition, settle, sh
from test_udev_devices import _drop_partitions, _refresh, udevd  # noqa: F401

from rescue.devices.catalog import open_catalog
from rescue.devices.inventory import Disk, probe_inventory
from rescue.devices.target import probe_target
from rescue.errors import TargetRefusedError
from rescue.runner import CommandRunner

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("udevd")]

LINUX_RAID = "A19D880F-05FC-4D3B-A006-743F0F84911E"  # GPT type "Linux RAID"
ARRAY_UUID = uuid.UUID("0fbc5e2a-1d2b-4c3d-9e8f-a0b1c2d3e4f5")
ARRAY_NAME = "rescue-test:7"


def md_superblock_1_2(size_sectors: int, dev_number: int, raid_disks: int = 2,
                      level: int = 1) -> bytes:
    """A version-1.2 md superblock for a member of *size_sectors* (data from 1 MiB)."""
    sb = bytearray(256 + 2 * raid_disks)
    struct.pack_into("<IIII", sb, 0, 0xA92B4EFC, 1, 0, 0)  # magic, major, features
    sb[16:32] = ARRAY_UUID.bytes
    sb[32:64] = ARRAY_NAME.encode().ljust(32, b"\0")
    data = size_sectors - 2048
    # ctime, level, layout, size, chunksize, raid_disks
    struct.pack_into("<QiIQII", sb, 64, 1_700_000_000, level, 0, data, 0, raid_disks)
    # data_offset, data_size, super_offset (sectors), recovery_offset
    struct.pack_into("<QQQQ", sb, 128, 2048, data, 8, 0)
    struct.pack_into("<II", sb, 160, dev_number, 0)
    sb[168:184] = uuid.UUID(int=dev_number + 1).bytes  # device uuid
    struct.pack_into("<QQQ", sb, 192, 1_700_000_000, 1, 2**64 - 1)  # utime, events, resync
    struct.pack_into("<I", sb, 220, raid_disks)  # max_dev
    for i in range(raid_disks):
        struct.pack_into("<H", sb, 256 + 2 * i, i)  # dev_roles
    csum = sum(w for (w,) in struct.iter_unpack("<I", bytes(sb[: len(sb) // 4 * 4])))
    if len(sb) % 4:
        csum += struct.unpack_from("<H", sb, len(sb) - 2)[0]
    csum = (csum & 0xFFFFFFFF) + (csum >> 32)
    struct.pack_into("<I", sb, 216, csum & 0xFFFFFFFF)
    return bytes(sb)


def write_member(node: str, dev_number: int) -> None:
    size = int(sh("blockdev", "--getsz", node).strip())
    fd = os.open(node, os.O_WRONLY)
    try:
        os.pwrite(fd, md_superblock_1_2(size, dev_number), 4096)
        os.fsync(fd)
    finally:
        os.close(fd)


def find(disks: list[Disk], dev: str) -> Disk:
    for d in disks:
        if d.path == dev:
            return d
    raise AssertionError(f"{dev} not in the inventory: {[d.path for d in disks]}")


def test_superblock_is_what_blkid_calls_a_raid_member(tmp_path: Path) -> None:
    img = tmp_path / "member.img"
    with img.open("wb") as f:
        f.truncate(16 * MiB)
    with img.open("r+b") as f:
        f.seek(4096)
        f.write(md_superblock_1_2(16 * MiB // 512, 0))
    out = sh("blkid", "-p", "-o", "export", str(img))
    assert "TYPE=linux_raid_member" in out and f"LABEL={ARRAY_NAME}" in out, out
    assert f"UUID={ARRAY_UUID}" in out, out


def test_members_not_assembled_are_shown_and_refused(tmp_path: Path) -> None:
    """A GPT disk whose partition is a member (the Debian installer's layout) and a
    whole-disk member: both listed, neither a target, each refused naming the array, by
    the inventory (udev and blkid), ``rescue devices`` and the restore's own check."""
    with loop_device(tmp_path / "a.img", 48 * MiB) as a, \
            loop_device(tmp_path / "b.img", 48 * MiB) as b:
        _drop_partitions(a)
        _drop_partitions(b)
        (part,) = partition(a, f"label: gpt\nsize=40MiB, type={LINUX_RAID}\n")
        write_member(part, 0)
        write_member(b, 1)
        _refresh(a, part, b)
        settle()
        import pyudev

        props = pyudev.Devices.from_device_file(pyudev.Context(), part).properties
        assert props.get("ID_FS_TYPE") == "linux_raid_member"
        assert props.get("ID_FS_LABEL") == ARRAY_NAME
        for use_udev in (True, False):
            inv = probe_inventory(include_loop=True, use_udev=use_udev)
            da, db = find(inv.disks, a), find(inv.disks, b)
            assert da.partitions[0].fstype == "linux_raid_member"
            assert db.fstype == "linux_raid_member"
            assert not da.eligible and not db.eligible
            (reason,) = da.ineligible_reasons
            assert reason.startswith(f"{part} is a RAID member (Linux md) of the array "
                                     f"'{ARRAY_NAME}' UUID {ARRAY_UUID}, not assembled now")
            assert f"mdadm --zero-superblock {part}" in reason
            assert f"mdadm --zero-superblock {b}" in db.ineligible_reasons[0]

        text = subprocess.run([sys.executable, "-m", "rescue", "devices", "--include-loop"],
                              capture_output=True, text=True, check=True).stdout
        assert "(RAID member: Linux md, not assembled)" in text, text

        # the image search does not mount a member
        with open_catalog(probe_inventory(include_loop=True)) as catalog:
            skipped = {s.what: s.reason for s in catalog.skipped}
        assert "RAID member" in skipped.get(part, ""), skipped

        # the restore's own target check refuses before writing anything
        for disk in (a, b):
            with pytest.raises(TargetRefusedError) as refused:
                probe_target(disk, None, CommandRunner())
            assert "RAID member (Linux md)" in str(refused.value)
            assert "Nothing was written" in str(refused.value)
        _drop_partitions(a)


def test_zeroed_superblock_makes_the_disk_a_target_again(tmp_path: Path) -> None:
    """What the refusal tells the technician to do (mdadm --zero-superblock, here done
    by hand: mdadm needs the md driver) frees the disk."""
    with loop_device(tmp_path / "c.img", 32 * MiB) as c:
        write_member(c, 0)
        _refresh(c)
        assert not find(probe_inventory(include_loop=True).disks, c).eligible
        fd = os.open(c, os.O_WRONLY)
        try:
            os.pwrite(fd, b"\0" * 4096, 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
        _refresh(c)
        disk = find(probe_inventory(include_loop=True).disks, c)
        assert disk.eligible, disk.ineligible_reasons
        assert probe_target(c, None, CommandRunner()).path == c


def test_member_the_udev_database_has_not_seen_is_still_refused(tmp_path: Path) -> None:
    """After ``mdadm --stop`` (or any write udev has not processed yet) the udev database
    can still record a member partition as holding nothing, while the partition record
    carries its disk's ID_PART_TABLE_TYPE. Found on the live ISO: a stopped array's
    member listed as blank and eligible. udev's event queue is held here so its database
    stays stale while the superblock is on the disk; the inventory must probe the
    partition itself and refuse the disk."""
    with loop_device(tmp_path / "d.img", 48 * MiB) as d:
        _drop_partitions(d)
        (part,) = partition(d, f"label: gpt\nsize=40MiB, type={LINUX_RAID}\n")
        _refresh(d, part)
        import pyudev

        props = pyudev.Devices.from_device_file(pyudev.Context(), part).properties
        assert not props.get("ID_FS_TYPE") and props.get("ID_PART_TABLE_TYPE") == "gpt"
        subprocess.run(["udevadm", "control", "--stop-exec-queue"], check=True)
        try:
            write_member(part, 0)
            stale = pyudev.Devices.from_device_file(pyudev.Context(), part).properties
            assert not stale.get("ID_FS_TYPE"), "udev processed the write; nothing tested"
            disk = find(probe_inventory(include_loop=True, use_udev=True).disks, d)
            assert disk.partitions[0].fstype == "linux_raid_member"
            assert not disk.eligible
            assert "RAID member (Linux md)" in disk.ineligible_reasons[0]
        finally:
            subprocess.run(["udevadm", "control", "--start-exec-queue"], check=True)
            settle()
        _drop_partitions(d)
