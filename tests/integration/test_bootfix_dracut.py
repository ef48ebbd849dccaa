"""The initramfs fix-up on a real dracut system (Debian 12 + dracut, hostonly, built and
cached by tests/system/testsystem.py): nvme added through dracut.conf.d, the initramfs
rebuilt with dracut in a chroot and read back with lsinitrd."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, mounted, partition, sh

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))

import testsystem  # noqa: E402

from rescue.engine.bootfix import FixupContext, run_fixups  # noqa: E402
from rescue.image.manifest import Disk, Manifest, Partition  # noqa: E402
from rescue.plan.fixups import module_name, plan_fixups  # noqa: E402
from rescue.runner import RecordingRunner  # noqa: E402

pytestmark = pytest.mark.root


def dracut_modules(root: Path, kernel: str) -> set[str]:
    subprocess.run(["mount", "--bind", "/proc", root / "proc"], check=True)
    try:
        out = subprocess.run(["chroot", str(root), "lsinitrd", f"/boot/initrd.img-{kernel}"],
                             capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run(["umount", root / "proc"], check=True)
    return {module_name(ln.split()[-1]) for ln in out.splitlines() if ".ko" in ln}


def test_dracut_initramfs_gets_the_driver(tmp_path):
    testsystem.ensure_host_packages()
    rootfs = testsystem.dracut_rootfs_dir()
    kernel = sorted(p.name for p in (rootfs / "lib/modules").iterdir())[-1]
    assert "nvme" not in dracut_modules(rootfs, kernel)  # the fix-up has work to do
    with loop_device(tmp_path / "disk.img", 640 * MiB) as dev:
        [node] = partition(dev, "label: gpt\ntype=linux\n")
        fs_uuid = str(uuid.uuid4())
        sh("mkfs.ext4", "-q", "-F", "-U", fs_uuid, node)
        with mounted(node, tmp_path / "fill") as mnt:
            sh("cp", "-a", f"{rootfs}/.", mnt)
            (mnt / "etc/fstab").write_text(f"UUID={fs_uuid} / ext4 defaults 0 1\n")
        parts = [Partition(1, 2048, 640 * 2048 - 2048 - 34, testsystem.LINUX_TYPE,
                           filesystem="ext4", fs_uuid=fs_uuid)]
        disk = Disk(640 * MiB, 512, 512, "gpt", "x", partitions=parts)
        manifest = Manifest(id="d", name="", created_utc="", created_local="", timezone="",
                            computer="dracut-test", os_name="Debian GNU/Linux 12 (bookworm)",
                            os_id="debian", os_version="12", firmware="bios", hardware={},
                            chunk_size=4 << 20, compression="zstd", disks=[disk])
        steps = [s for s in plan_fixups(manifest, "bios", ["nvme"], set())
                 if s.name == "initramfs-drivers"]
        runner = RecordingRunner()
        ctx = FixupContext(disk=dev, partitions={1: node}, manifest=manifest, firmware="bios",
                           storage_drivers=["nvme"], runner=runner,
                           workdir=str(tmp_path / "work"))
        [result] = run_fixups(ctx, steps)
        assert result.status == "done", result.detail
        assert f"{kernel}: added nvme (dracut)" in result.detail
        assert any(c[0] == "chroot" and "dracut" in c for c in runner.log)
        assert str(tmp_path / "work") not in Path("/proc/mounts").read_text()
        with mounted(node, tmp_path / "check") as mnt:
            conf = (mnt / "etc/dracut.conf.d/90-rescue-storage.conf").read_text()
            assert 'add_drivers+=" nvme "' in conf
            assert "nvme" in dracut_modules(mnt, kernel)
