"""End to end: the live ISO backs a machine up, unattended, into a Samba share.

The sample system (GPT: ESP + ext4 root + swap) is on a disk of the VM; the kernel command
line asks for ``rescue.action=backup rescue.source=/dev/disk/by-id/virtio-RESCUE-SOURCE
rescue.repo=smb://10.0.2.2/backups/new`` and a power-off. The live system gets an address
by DHCP, mounts the host's writable share (cifs), creates the repository folder, backs up
and powers off. On the host the repository then holds one image of the right computer,
every chunk of which `rescue verify` re-hashes, and restoring it gives the same files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from isoqemu import Disk, Machine
from loopdev import loop_device, mounted
from sambaserve import samba

from rescue.engine.usbstick import UsbJob, UsbWriter
from rescue.runner import CommandRunner

pytestmark = [pytest.mark.qemu, pytest.mark.root]

MiB = 1024 * 1024
SOURCE_SERIAL = "RESCUE-SOURCE"
ANSWERS = (f"rescue.action=backup rescue.source=/dev/disk/by-id/virtio-{SOURCE_SERIAL} "
           "rescue.repo=smb://10.0.2.2/backups/new rescue.name=from-the-iso "
           "rescue.after=poweroff console=ttyS0,115200n8")


def rescue(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "rescue", *args], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_unattended_backup_into_a_samba_share(iso_path: Path, tmp_path: Path) -> None:
    from rescue.demo.sample_system import build_gpt_system, tree_digest

    source = tmp_path / "source.img"
    with loop_device(source, 160 * MiB) as dev:
        system = build_gpt_system(dev, hostname="backed-up-pc", files=120,
                                  data_bytes=3 * MiB, root_size="80M")
        with mounted(system.nodes["root"], tmp_path / "src-mnt", "ro,noload") as m:
            digest = tree_digest(m)
    share = tmp_path / "share"
    share.mkdir()
    iso = tmp_path / "unattended-backup.iso"
    UsbWriter(CommandRunner(), say=lambda _m: None).write(
        UsbJob(iso=str(iso_path), target=iso, append=ANSWERS, title="Rescue (backup)",
               iso_only=True))
    vm = Machine(iso=iso, workdir=tmp_path / "vm", firmware="bios",
                 disks=[Disk(source, SOURCE_SERIAL)])
    with samba(share, tmp_path / "smbd", writable=True):
        try:
            vm.start()
            vm.wait_for(r"unattended backup", 600)
            vm.wait_for(r"unattended run stopped|Shutting down", 900)
            if "unattended run stopped" in vm.text():
                pytest.fail(f"the unattended backup failed:\n{vm.text()[-5000:]}")
            rc = vm.wait_exit(300)
            log = vm.text()
        finally:
            vm.stop()
    assert rc == 0, log[-3000:]
    repo = share / "new"
    images = json.loads(rescue("list", "--repo", str(repo), "--json").stdout)
    assert [(i["computer"], i["name"]) for i in images] == [("backed-up-pc", "from-the-iso")]
    assert "is intact" in rescue("verify", "--repo", str(repo)).stdout
    target = tmp_path / "target.img"
    with loop_device(target, 160 * MiB) as dev:
        rescue("restore", "--repo", str(repo), "--disk", dev, "--yes", "--firmware", "uefi",
               "--skip-fixup", "fstab-check", "--skip-fixup", "uefi-nvram-entry")
        subprocess.run(["partx", "-u", dev], capture_output=True)
        with mounted(f"{dev}p2", tmp_path / "dst-mnt", "ro") as m:
            assert tree_digest(m) == digest
