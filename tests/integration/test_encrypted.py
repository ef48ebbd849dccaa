"""Encrypted volumes (issue 14): a LUKS partition (made by cryptsetup, no device-mapper
needed to format it) and a BitLocker volume (its boot sector and FVE metadata header
written by hand: this machine has no tool that makes one; blkid recognises it as
BitLocker) are recognised for what they are, copied whole (their used blocks cannot be
read without the key) and restored byte for byte; the backup summary says they are
copied whole, the restore plan warns that Windows may ask for the BitLocker recovery key
on other hardware, and `rescue devices` shows them as encrypted."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
from pathlib import Path

import pytest
from loopdev import loop_device, partition, refresh_partitions
from realdisk import MiB, blkid, rescue_cli

from rescue.image.repository import Repository

pytestmark = pytest.mark.root


def _forge_bitlocker(node: str) -> None:
    """A Windows 7+ BitLocker volume header: boot sector with the -FVE-FS- signature and
    the offset of an FVE metadata block that carries it too; random bytes elsewhere."""
    with open(node, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        f.write(os.urandom(size))
        boot = bytearray(os.urandom(512))
        boot[0:11] = b"\xeb\x58\x90-FVE-FS-"
        struct.pack_into("<Q", boot, 176, 2 * MiB)
        boot[510:512] = b"\x55\xaa"
        f.seek(0)
        f.write(boot)
        f.seek(2 * MiB)
        f.write(b"-FVE-FS-" + struct.pack("<HH", 0, 2))


def _digest(node: str) -> str:
    with open(node, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_luks_and_bitlocker_are_copied_whole_and_said_so(tmp_path: Path, blank_disk
                                                         ) -> None:
    with loop_device(tmp_path / "src.img", 200 * MiB) as dev:
        nodes = partition(dev, "label: gpt\nsize=40M, type=L\nsize=48M, type=L\n"
                               "size=64M, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n")
        subprocess.run(["mkfs.ext4", "-q", "-L", "plain", nodes[0]], check=True)
        subprocess.run(["cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2",
                        "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
                        nodes[1], "-"], input=b"correct horse", check=True,
                       capture_output=True)
        _forge_bitlocker(nodes[2])
        assert blkid(nodes[1])["TYPE"] == "crypto_LUKS"
        assert blkid(nodes[2])["TYPE"] == "BitLocker"
        before = {n: _digest(nodes[n - 1]) for n in (2, 3)}
        devices = rescue_cli("devices", "--include-loop", check=True).stdout
        assert "(encrypted: LUKS)" in devices and "(encrypted: BitLocker)" in devices
        repo = tmp_path / "repo"
        backup = rescue_cli("backup", "--disk", dev, "--repo", str(repo), check=True)
        assert "encrypted (LUKS): copied whole" in backup.stdout, backup.stdout
        assert "encrypted (BitLocker): copied whole" in backup.stdout
    m = Repository.open(repo).load_manifest("latest")
    methods = {p.number: (p.filesystem, p.method) for p in m.disks[0].partitions}
    assert methods == {1: ("ext4", "used-blocks"), 2: ("crypto_LUKS", "whole"),
                       3: ("BitLocker", "whole")}
    target = blank_disk(200 * MiB)
    dry = rescue_cli("restore", "--repo", str(repo), "--disk", target, "--dry-run",
                     check=True).stdout
    assert "Partition 3 is encrypted with BitLocker" in dry and "recovery key" in dry
    assert "Partition 2 is encrypted (LUKS): restored as it was" in dry
    proc = rescue_cli("restore", "--repo", str(repo), "--disk", target, "--yes",
                      "--no-grow", "--firmware", "uefi")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    restored = refresh_partitions(target)
    assert {n: _digest(restored[n - 1]) for n in (2, 3)} == before
    assert blkid(restored[1])["TYPE"] == "crypto_LUKS"
    opened = subprocess.run(["cryptsetup", "luksDump", restored[1]], capture_output=True,
                            text=True)
    assert opened.returncode == 0 and "pbkdf2" in opened.stdout


def test_an_lvm_physical_volume_is_listed_with_its_volume_group(tmp_path: Path) -> None:
    """Issue 14: `rescue devices` shows what an LVM physical volume holds (its volume
    group and logical volumes), read with the private lvm configuration: nothing
    activated, no device-mapper."""
    import tempfile

    from rescue.fs.lvm import LVM_CONF

    conf = tempfile.mkdtemp(prefix="rescue-test-lvm-")
    try:
        Path(conf, "lvm.conf").write_text(LVM_CONF)
        env = dict(os.environ, LVM_SYSTEM_DIR=conf, LVM_SUPPRESS_FD_WARNINGS="1")
        with loop_device(tmp_path / "pv.img", 96 * MiB) as dev:
            pv = partition(dev, "label: gpt\nsize=80M, type=E6D6D379-F507-44C2-A23C-"
                                "238F2A3DF928\n")[0]
            for argv in (["pvcreate", "-q", pv], ["vgcreate", "-q", "techvg", pv],
                         ["lvcreate", "-q", "-an", "-Zn", "-L", "16M", "-n", "root",
                          "techvg"],
                         ["lvcreate", "-q", "-an", "-Zn", "-L", "8M", "-n", "swap",
                          "techvg"]):
                subprocess.run(["lvm", argv[0], "--devices", pv, *argv[1:]], check=True,
                               capture_output=True, env=env)
            listed = rescue_cli("devices", "--include-loop", check=True).stdout
            line = next(x for x in listed.splitlines() if x.strip().startswith(pv + " "))
            assert "(LVM volume group techvg: root, swap)" in line, line
            # the wizard's target list says the same in the disk's state column
            from rescue.wizard.backend import EngineServices
            from rescue.wizard.screens.target import reason_text

            disks = EngineServices(include_loop=True, log_file=tmp_path / "wizard.log",
                                   disk_filter=lambda p: p == dev).list_disks(None, "restore")
            entry = next(d for d in disks if d.path == dev)
            assert reason_text(entry) == "Available (LVM volume group techvg: root, swap)", (
                reason_text(entry), entry.partitions)
    finally:
        import shutil
        shutil.rmtree(conf, ignore_errors=True)
