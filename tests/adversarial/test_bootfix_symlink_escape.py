"""The boot fix-ups on a restored disk whose root holds absolute symlinks: /etc/fstab and
GRUB's grub.cfg are files of the restored system, but the fix-ups open them through the
host's "/" (pathlib on the mount point follows an absolute symlink out of it). An image of
a hostile (or just odd) disk then makes rescue, as root on the live system, rewrite a file
of the live system or of any mounted disk (the repository), and the root finder takes a
volume whose /etc/fstab exists only on the host for a Linux root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, mounted, partition, sh
from realdisk import blkid

from rescue.engine.bootfix import FixupContext, run_fixups
from rescue.image.manifest import Disk, Manifest, Partition
from rescue.plan.fixups import plan_fixups
from rescue.runner import RecordingRunner

pytestmark = pytest.mark.root
LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
SIZE = 64 * MiB


def _manifest() -> Manifest:
    parts = [Partition(1, 2048, (SIZE // 512) - 2048 - 34, LINUX, filesystem="ext4")]
    disk = Disk(SIZE, 512, 512, "gpt", "x", source_path="/dev/sda", partitions=parts)
    return Manifest(id="m", name="", created_utc="", created_local="", timezone="",
                    computer="pc", os_name="Debian", os_id="debian", os_version="12",
                    firmware="uefi", hardware={}, chunk_size=4 << 20, compression="zstd",
                    disks=[disk])


def test_fstab_check_does_not_write_through_an_absolute_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "outside" / "fstab"  # stands for the live system's /etc/fstab
    victim.parent.mkdir()
    original = "/dev/sda1 / ext4 defaults 0 1\n"
    victim.write_text(original)
    grub_victim = tmp_path / "outside" / "grub.cfg"
    grub_original = "menuentry x {\n linux /vmlinuz root=/dev/sda1 ro\n}\n"
    grub_victim.write_text(grub_original)
    with loop_device(tmp_path / "disk.img", SIZE) as dev:
        (node,) = partition(dev, f"label: gpt\ntype={LINUX}\n")
        sh("mkfs.ext4", "-q", "-F", node)
        with mounted(node, tmp_path / "m") as m:
            for d in ("etc", "usr/sbin", "boot/grub"):
                (m / d).mkdir(parents=True)
            (m / "usr/sbin/init").write_text("#!/bin/sh\n")
            os.symlink(str(victim), m / "etc/fstab")
            os.symlink(str(grub_victim), m / "boot/grub/grub.cfg")
        assert blkid(node)["TYPE"] == "ext4"
        steps = [s for s in plan_fixups(_manifest(), "uefi", [], set())
                 if s.name == "fstab-check"]
        ctx = FixupContext(disk=dev, partitions={1: node}, manifest=_manifest(),
                           firmware="uefi", runner=RecordingRunner(),
                           workdir=str(tmp_path / "work"))
        results = run_fixups(ctx, steps)
        try:
            assert victim.read_text() == original, (
                f"a file outside the restored disk was rewritten: {results}")
            assert grub_victim.read_text() == grub_original, (
                f"a file outside the restored disk was rewritten: {results}")
        finally:
            assert str(tmp_path / "work") not in Path("/proc/mounts").read_text()
