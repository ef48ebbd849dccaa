"""The initramfs fix-up on a real Debian 12 system (the cached test system of
tests/system), in a chroot with /dev, /proc, /sys and /run bound: the driver is added,
the initramfs rebuilt and read back, and a second run changes nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))

import testsystem  # noqa: E402

from rescue.engine.bootfix import FixupContext, run_fixups  # noqa: E402
from rescue.image.manifest import Disk, Manifest, Partition  # noqa: E402
from rescue.plan.fixups import module_name, plan_fixups  # noqa: E402
from rescue.runner import RecordingRunner  # noqa: E402

pytestmark = pytest.mark.root


def manifest_for(ts: testsystem.TestSystem) -> Manifest:
    parts = [Partition(1, 2048, 2048, testsystem.BIOS_GRUB_TYPE),
             Partition(2, 4096, ts.size // 512 - 4096 - 34, testsystem.LINUX_TYPE,
                       filesystem="ext4", fs_uuid=ts.root_uuid)]
    disk = Disk(ts.size, 512, 512, "gpt", "x", source_path="/dev/vda", partitions=parts)
    return Manifest(id="t", name="", created_utc="", created_local="", timezone="",
                    computer=ts.hostname, os_name="Debian GNU/Linux 12 (bookworm)",
                    os_id="debian", os_version="12", firmware="bios", hardware={},
                    chunk_size=4 << 20, compression="zstd", disks=[disk])


def initramfs_modules(root: Path, kernel: str) -> set[str]:
    out = subprocess.run(["chroot", str(root), "lsinitramfs", f"/boot/initrd.img-{kernel}"],
                         capture_output=True, text=True, check=True).stdout
    return {module_name(ln) for ln in out.splitlines() if ".ko" in ln}


@pytest.mark.parametrize("modules_mode", ["list", "dep"])
def test_initramfs_rebuilt_with_nvme_in_a_chroot(tmp_path, modules_mode):
    """``list``: the test system as built. ``dep``: the common Debian setting, which cannot
    be evaluated from a chroot in a live system; the fix-up builds with ``most`` once."""
    testsystem.ensure_host_packages()
    ts = testsystem.test_system("bios-gpt")
    image = tmp_path / "disk.img"
    subprocess.run(["cp", "--sparse=always", ts.image, image], check=True)
    conf = "etc/initramfs-tools/conf.d/rescue-test"
    with testsystem.loop_device(image) as dev:
        testsystem.refresh_partitions(dev, expect=2)
        nodes = {1: f"{dev}p1", 2: f"{dev}p2"}
        if modules_mode == "dep":
            with testsystem.mounted(nodes[2], tmp_path / "edit") as mnt:
                (mnt / conf).write_text("MODULES=dep\n")
        manifest = manifest_for(ts)
        steps = [s for s in plan_fixups(manifest, "bios", ["nvme"], set())
                 if s.name == "initramfs-drivers"]
        runner = RecordingRunner()
        ctx = FixupContext(disk=dev, partitions=nodes, manifest=manifest, firmware="bios",
                           storage_drivers=["nvme"], runner=runner,
                           workdir=str(tmp_path / "work"))
        [result] = run_fixups(ctx, steps)
        assert result.status == "done", result.detail
        assert f"{ts.kernel}: added nvme (initramfs-tools)" in result.detail
        assert ("built once with MODULES=most" in result.detail) == (modules_mode == "dep")
        chroots = [c for c in runner.log if c[0] == "chroot"]
        assert any("update-initramfs" in c for c in chroots)
        # Nothing left mounted: not the root, not the /dev,/proc,/sys,/run binds.
        mounts = Path("/proc/mounts").read_text()
        assert str(tmp_path / "work") not in mounts
        again = run_fixups(ctx, steps)[0]
        assert again.status == "done"
        assert "already contains nvme" in again.detail
        mnt = tmp_path / "check"
        mnt.mkdir()
        subprocess.run(["mount", nodes[2], mnt], check=True)
        try:
            modules = initramfs_modules(mnt, ts.kernel)
            assert {"nvme", "nvme_core", "virtio_blk"} <= modules
            listed = (mnt / "etc/initramfs-tools/modules").read_text().split()
            assert listed.count("nvme") == 1  # future kernels keep it; no duplicates
            # The system's own configuration is as it was; the temporary override is gone.
            assert (mnt / conf).read_text().startswith(
                "MODULES=dep" if modules_mode == "dep" else "#")
            assert not (mnt / "etc/initramfs-tools/conf.d/zz-rescue-restore").exists()
        finally:
            subprocess.run(["umount", mnt], check=True)
    shutil.rmtree(tmp_path / "work", ignore_errors=True)
