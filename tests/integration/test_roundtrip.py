"""Backup and restore of real disks: GPT with ESP/ext4/swap and MBR with boot areas."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from realdisk import (
    SRC_SIZE,
    BackedUp,
    MiB,
    blkid,
    rescue_cli,
    sfdisk_json,
    source_digest,
)

from rescue.demo.sample_system import build_gpt_system, esp_get
from rescue.engine.blockio import lock_whole_disk
from rescue.errors import TargetRefusedError

pytestmark = pytest.mark.root

IDENTITY_KEYS = ("TYPE", "UUID", "LABEL", "PART_ENTRY_UUID", "PART_ENTRY_TYPE",
                 "PART_ENTRY_NAME")


def _partitions(table: dict) -> list[dict]:
    return [{k: v for k, v in p.items() if k != "node"} for p in table["partitions"]]


def _restore(backed: BackedUp, target: str, *extra: str) -> None:
    # the GPT sample is a UEFI system (ESP, no BIOS boot code): restore it for a UEFI
    # machine, as the live system booted in UEFI mode would; the MBR one for BIOS
    firmware = "uefi" if backed.system.table == "gpt" else "bios"
    rescue_cli("restore", "--repo", str(backed.repo), "--image", backed.image_id,
               "--disk", target, "--yes", "--firmware", firmware, *extra, check=True)


def test_gpt_restore_onto_equal_disk(gpt_backup: BackedUp, blank_disk, tmp_path: Path) -> None:
    target = blank_disk(SRC_SIZE)
    _restore(gpt_backup, target, "--verify")
    src, dst = sfdisk_json(gpt_backup.system.dev), sfdisk_json(target)
    assert dst["id"] == src["id"]
    assert _partitions(dst) == _partitions(src)
    nodes = gpt_backup.system.nodes
    for n, role in enumerate(("esp", "root", "swap"), start=1):
        s, d = blkid(nodes[role]), blkid(f"{target}p{n}")
        for key in IDENTITY_KEYS:
            assert d.get(key) == s.get(key), (role, key)
    fsck = subprocess.run(["e2fsck", "-fn", f"{target}p2"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert source_digest(f"{target}p2", tmp_path / "dst") == gpt_backup.digest
    for name, data in gpt_backup.system.esp_files.items():
        assert esp_get(f"{target}p1", name) == data
    fsck_fat = subprocess.run(["fsck.vfat", "-n", f"{target}p1"], capture_output=True)
    assert fsck_fat.returncode == 0


def test_gpt_restore_onto_larger_disk_grows_root(gpt_backup: BackedUp, blank_disk,
                                                 tmp_path: Path) -> None:
    size = SRC_SIZE + 256 * MiB
    target = blank_disk(size)
    _restore(gpt_backup, target)
    src, dst = sfdisk_json(gpt_backup.system.dev), sfdisk_json(target)
    sectors = size // 512
    assert dst["lastlba"] == sectors - 34  # backup GPT header moved to the real end
    s_parts, d_parts = src["partitions"], dst["partitions"]
    assert d_parts[0]["start"] == s_parts[0]["start"] and d_parts[0]["size"] == s_parts[0]["size"]
    grown = d_parts[1]["size"] - s_parts[1]["size"]
    assert grown >= 256 * MiB // 512 and grown % 2048 == 0
    assert d_parts[2]["start"] == s_parts[2]["start"] + grown  # swap moved, same size
    # the disk is filled: swap ends within 1 MiB of the last usable sector
    assert 0 <= dst["lastlba"] - (d_parts[2]["start"] + d_parts[2]["size"] - 1) < 2048
    assert d_parts[2]["size"] == s_parts[2]["size"]
    for s, d in zip(s_parts, d_parts, strict=True):
        assert (d["uuid"], d["type"], d.get("name")) == (s["uuid"], s["type"], s.get("name"))
    # the ext4 filesystem fills its grown partition
    info = subprocess.run(["dumpe2fs", "-h", f"{target}p2"], capture_output=True,
                          text=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fs_bytes = int(fields["Block count"]) * int(fields["Block size"])
    assert fs_bytes == d_parts[1]["size"] * 512
    fsck = subprocess.run(["e2fsck", "-fn", f"{target}p2"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout
    assert source_digest(f"{target}p2", tmp_path / "dst") == gpt_backup.digest
    assert blkid(f"{target}p3")["UUID"] == blkid(gpt_backup.system.nodes["swap"])["UUID"]


def test_backup_never_modifies_the_source(gpt_backup: BackedUp, tmp_path: Path) -> None:
    before = hashlib.blake2b(gpt_backup.source_file.read_bytes()).hexdigest()
    rescue_cli("backup", "--disk", gpt_backup.system.dev, "--repo", str(tmp_path / "r2"),
               check=True)
    after = hashlib.blake2b(gpt_backup.source_file.read_bytes()).hexdigest()
    assert before == after


def test_mbr_boot_areas_restored_byte_identical(mbr_backup: BackedUp, blank_disk,
                                                tmp_path: Path) -> None:
    target = blank_disk(256 * MiB)
    _restore(mbr_backup, target)
    src_table, dst_table = sfdisk_json(mbr_backup.system.dev), sfdisk_json(target)
    assert dst_table["id"] == src_table["id"]
    assert _partitions(dst_table) == _partitions(src_table)
    first = min(p["start"] for p in src_table["partitions"]) * 512
    with open(mbr_backup.system.dev, "rb") as s, open(target, "rb") as d:
        src_head, dst_head = s.read(first), d.read(first)
    assert dst_head[:440] == src_head[:440]  # boot code
    assert dst_head[440:446] == src_head[440:446]  # disk signature + reserved
    assert dst_head[512:first] == src_head[512:first]  # the post-MBR gap (GRUB core)
    assert any(src_head[512:first])  # the sample really put something there
    for n in (1, 5, 6):
        s, d = blkid(f"{mbr_backup.system.dev}p{n}"), blkid(f"{target}p{n}")
        for key in ("TYPE", "UUID", "LABEL", "PART_ENTRY_UUID"):
            assert d.get(key) == s.get(key), (n, key)
    assert source_digest(f"{target}p5", tmp_path / "dst") == mbr_backup.digest


def test_root_as_last_partition_grows_to_the_disk_end(blank_disk, tmp_path: Path) -> None:
    src = blank_disk(256 * MiB, name="src-last")
    system = build_gpt_system(src, hostname="last-pc", files=200, data_bytes=2 * MiB,
                              root_size="120M", root_last=True)
    digest = source_digest(system.nodes["root"], tmp_path / "s")
    repo = tmp_path / "repo"
    rescue_cli("backup", "--disk", src, "--repo", str(repo), check=True)
    target = blank_disk(384 * MiB)
    rescue_cli("restore", "--repo", str(repo), "--disk", target, "--yes", "--firmware", "uefi",
               check=True)
    parts = sfdisk_json(target)["partitions"]
    last = parts[-1]
    assert 0 <= sfdisk_json(target)["lastlba"] - (last["start"] + last["size"] - 1) < 2048
    assert last["size"] > 120 * MiB // 512 + 100 * MiB // 512
    assert subprocess.run(["e2fsck", "-fn", f"{target}p3"], capture_output=True).returncode == 0
    assert source_digest(f"{target}p3", tmp_path / "d") == digest


def test_uefi_image_restored_from_a_bios_booted_system_warns(gpt_backup: BackedUp,
                                                              blank_disk) -> None:
    """The data is restored, but the disk has no BIOS boot code: exit 25 and a sentence."""
    target = blank_disk(SRC_SIZE)
    proc = rescue_cli("restore", "--repo", str(gpt_backup.repo), "--disk", target, "--yes",
                      "--firmware", "bios")
    assert proc.returncode == 25, proc.stderr
    assert "bios-boot-code" in proc.stderr and "UEFI" in proc.stderr
    assert "may not boot" in proc.stderr
    assert blkid(f"{target}p2")["UUID"] == blkid(gpt_backup.system.nodes["root"])["UUID"]


def test_uefi_restore_reports_its_fixups(gpt_backup: BackedUp, blank_disk,
                                         tmp_path: Path) -> None:
    target = blank_disk(SRC_SIZE)
    report = tmp_path / "report.json"
    _restore(gpt_backup, target, "--report", str(report))
    steps = {s["name"]: s for s in json.loads(report.read_text())["steps"]}
    assert steps["uefi-fallback-loader"]["status"] == "done"
    assert steps["uefi-nvram-entry"]["status"] == "skipped"  # no EFI variables on this host
    assert steps["fstab-check"]["status"] == "skipped"  # the sample has no init: no OS


def test_the_target_is_locked_against_udev_while_it_is_written(gpt_backup: BackedUp,
                                                               blank_disk) -> None:
    """udev re-reads a disk's partition table when a writer closes it, unless someone
    holds the disk's BSD lock: the partitions' nodes vanish for a moment (the live
    system's restore once found no /dev/vda3 for mkswap). The restore holds the lock
    from its preflight until its partitions are written, swap recreated and filesystems
    grown; watched here from outside by trying the lock while it runs."""
    target = blank_disk(SRC_SIZE)
    proc = subprocess.Popen([sys.executable, "-m", "rescue", "restore", "--repo",
                             str(gpt_backup.repo), "--image", gpt_backup.image_id, "--disk",
                             target, "--yes", "--firmware", "uefi"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    locked = free = 0
    fd = os.open(target, os.O_RDONLY)
    try:
        while proc.poll() is None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                free += 1
            except BlockingIOError:
                locked += 1
            time.sleep(0.005)
    finally:
        os.close(fd)
    out, err = proc.communicate()
    assert proc.returncode == 0, err + out
    assert locked > 10, f"the disk was never seen locked ({free} tries found it free)"
    # and released at the end: the lock is free now
    fd = os.open(target, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_a_disk_another_program_keeps_locked_is_refused(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 4096)
    holder = os.open(disk, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_SH)
        with pytest.raises(TargetRefusedError, match="keeps .* locked"):
            lock_whole_disk(str(disk), timeout=0.3)
    finally:
        os.close(holder)
    os.close(lock_whole_disk(str(disk), timeout=0.3))  # free again: taken at once
