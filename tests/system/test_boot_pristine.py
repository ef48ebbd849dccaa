"""The built test systems themselves: they boot on virtio, their initramfs really holds
only virtio, and the UEFI one (no fallback loader, empty NVRAM) does not boot as built."""

from __future__ import annotations

import subprocess

import pytest
import qemu_harness
import systemfixtures
from bootcell import FULL_MATRIX, FULL_ONLY

pytestmark = [pytest.mark.root, pytest.mark.qemu]

# The shared fixtures (see systemfixtures.py for why they are not in a conftest.py).
test_systems = systemfixtures.test_systems


@pytest.mark.parametrize("layout", ["bios-mbr", "bios-gpt"])
def test_pristine_bios_system_boots_on_virtio(test_systems, layout, tmp_path):
    ts = test_systems[layout]
    res = qemu_harness.boot(
        ts.image, firmware="bios", bus="virtio", marker=ts.marker, snapshot=True
    )
    assert res.booted, f"{layout} did not boot ({res.reason}):\n{res.tail()}"
    root = "/dev/vda1" if layout == "bios-mbr" else "/dev/vda2"
    assert f"root={root} " in res.marker_line


def test_initramfs_holds_virtio_only(test_systems):
    """The negative case is real: no NVMe, AHCI or SCSI-disk driver in the initramfs."""
    from testsystem import rootfs_dir

    ts = test_systems["bios-gpt"]
    out = subprocess.run(
        ["chroot", str(rootfs_dir()), "lsinitramfs", f"/boot/initrd.img-{ts.kernel}"],
        capture_output=True, text=True, check=True,
    ).stdout
    modules = {line.rsplit("/", 1)[-1].split(".ko")[0] for line in out.splitlines()
               if ".ko" in line}
    assert {"virtio_blk", "virtio_pci", "ext4"} <= modules
    assert not modules & {"nvme", "nvme_core", "ahci", "libahci", "sd_mod"}


def test_pristine_uefi_system_needs_the_fallback_loader(test_systems):
    """As built (GRUB only as \\EFI\\debian\\grubx64.efi, no NVRAM entry), OVMF finds
    nothing to start and falls into its shell: what the fallback fix-up exists for."""
    ts = test_systems["uefi-gpt"]
    res = qemu_harness.boot(
        ts.image, firmware="uefi", bus="virtio", marker=ts.marker, snapshot=True, timeout=120
    )
    assert not res.booted
    assert res.reason == "uefi-shell", res.tail()


@pytest.mark.skipif(not FULL_MATRIX, reason=FULL_ONLY)
def test_pristine_bios_system_fails_on_nvme(test_systems):
    ts = test_systems["bios-mbr"]
    res = qemu_harness.boot(ts.image, firmware="bios", bus="nvme", marker=ts.marker,
                            snapshot=True)
    assert not res.booted and res.reason in ("root-not-found", "initramfs-shell"), res.tail()
