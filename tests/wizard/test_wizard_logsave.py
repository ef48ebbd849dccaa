"""Which filesystems Save logs offers (pure, on a constructed inventory), and the file it
writes."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from wizard_fixtures import english  # noqa: F401 (fixtures)

from rescue import i18n
from rescue.devices.inventory import Disk, Inventory, Partition
from rescue.devices.mounts import Mount
from rescue.wizard.logsave import rw_mountpoints, writable_media, write_logs


def machine() -> Inventory:
    return Inventory(disks=[
        Disk("sda", "/dev/sda", "8:0", transport="sata", size=500 * 10**9, partitions=[
            Partition("sda1", "/dev/sda1", "8:1", 1, size=512 * 10**6, fstype="vfat",
                      label="EFI"),
            Partition("sda2", "/dev/sda2", "8:2", 2, size=400 * 10**9, fstype="ext4",
                      label="root"),
            Partition("sda3", "/dev/sda3", "8:3", 3, size=8 * 10**9, fstype="swap"),
            Partition("sda4", "/dev/sda4", "8:4", 4, size=50 * 10**9, fstype="crypto_LUKS"),
        ]),
        Disk("nvme0n1", "/dev/nvme0n1", "259:0", transport="nvme", size=10**12, partitions=[
            Partition("nvme0n1p1", "/dev/nvme0n1p1", "259:1", 1, size=10**12, fstype="ntfs",
                      label="Data"),
        ]),
        # The live medium: never offered.
        Disk("sdb", "/dev/sdb", "8:16", transport="usb", removable=True, size=8 * 10**9,
             roles=["boot-medium"], partitions=[
                 Partition("sdb1", "/dev/sdb1", "8:17", 1, size=8 * 10**9, fstype="vfat",
                           label="RESCUE", mountpoints=["/run/live/medium"])]),
        # The repository's stick, mounted read-only by the image search: not offered.
        Disk("sdc", "/dev/sdc", "8:32", transport="usb", size=64 * 10**9, partitions=[
            Partition("sdc1", "/dev/sdc1", "8:33", 1, size=64 * 10**9, fstype="exfat",
                      label="BACKUPS", mountpoints=["/run/rescue-catalog-x/sdc1"])]),
        # A stick formatted without a partition table.
        Disk("sdd", "/dev/sdd", "8:48", transport="usb", size=14_900_000_000, fstype="vfat",
             label="LOGS"),
        # A write-protected card reader.
        Disk("sde", "/dev/sde", "8:64", transport="usb", read_only=True, size=32 * 10**9,
             partitions=[Partition("sde1", "/dev/sde1", "8:65", 1, size=32 * 10**9,
                                   fstype="vfat")]),
        # An optical drive.
        Disk("sr0", "/dev/sr0", "11:0", kind="cdrom", size=700 * 10**6, fstype="iso9660"),
        # A stick the technician mounted read-write himself.
        Disk("sdf", "/dev/sdf", "8:80", transport="usb", removable=True, size=16 * 10**9,
             partitions=[Partition("sdf1", "/dev/sdf1", "8:81", 1, size=16 * 10**9,
                                   fstype="btrfs", label="TECH",
                                   mountpoints=["/media/tech"])]),
    ])


def test_usb_sticks_first_and_never_the_boot_medium_or_read_only_mounts():
    media = writable_media(machine(), rw_mounts={"8:81": "/media/tech"})
    assert [m.device for m in media] == [
        "/dev/sdd", "/dev/sdf1", "/dev/sda1", "/dev/sda2", "/dev/nvme0n1p1"]
    assert [m.title() for m in media[:2]] == [
        "sdd 'LOGS' (vfat, usb, 14.9 GB)", "sdf1 'TECH' (btrfs, usb, 16.0 GB)"]
    assert media[1].mountpoint == "/media/tech" and not media[0].mountpoint
    i18n.set_format("de_DE")
    assert media[0].title() == "sdd 'LOGS' (vfat, usb, 14,9 GB)"


def test_the_restore_target_is_never_offered():
    media = writable_media(machine(), exclude=["/dev/sda", "nvme0n1"])
    assert [m.device for m in media] == ["/dev/sdd"]


def test_a_read_write_mount_is_only_reused_when_it_is_read_write():
    # Without a read-write mount sdf1 counts as mounted read-only: not offered.
    assert "/dev/sdf1" not in [m.device for m in writable_media(machine())]
    mounts = [
        Mount(os.makedev(8, 81), "/media/tech", "btrfs", "/dev/sdf1", frozenset({"rw"})),
        Mount(os.makedev(8, 33), "/run/rescue-catalog-x/sdc1", "exfat", "/dev/sdc1",
              frozenset({"ro"})),
    ]
    assert rw_mountpoints(mounts) == {"8:81": "/media/tech"}


def test_write_logs_never_overwrites(tmp_path):
    now = datetime(2026, 11, 30, 10, 15, tzinfo=UTC)
    first = write_logs(tmp_path, "one", now, "here")
    second = write_logs(tmp_path, "two", now, "here")
    assert first.name == "rescue-logs-20261130T101500Z.txt"
    assert second.name == "rescue-logs-20261130T101500Z-1.txt"
    assert first.read_text() == "one" and second.read_text() == "two"
