"""The built ISO: size, boot equipment (BIOS + UEFI), menus and the live root's tools."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu

MAX_ISO_BYTES = 450 * 1000 * 1000  # the bar: under 450 MB


def xorriso(iso: Path, *args: str) -> str:
    proc = subprocess.run(["xorriso", "-indev", str(iso), *args], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def extract(iso: Path, path: str, dest: Path) -> Path:
    xorriso(iso, "-osirrox", "on", "-extract", path, str(dest))
    return dest


def test_iso_size_is_under_the_bar(iso_path: Path) -> None:
    size = iso_path.stat().st_size
    assert size < MAX_ISO_BYTES, f"ISO is {size / 1e6:.0f} MB; the bar is 450 MB"


def test_iso_holds_kernel_initrd_squashfs_and_both_boot_loaders(iso_path: Path) -> None:
    files = set(re.findall(r"'([^']+)'", xorriso(iso_path, "-find", "/", "-type", "f")))
    for needed in ("/live/vmlinuz", "/live/initrd.img", "/live/filesystem.squashfs",
                   "/isolinux/isolinux.bin", "/isolinux/ldlinux.c32", "/isolinux/menu.c32",
                   "/isolinux/isolinux.cfg", "/boot/grub/grub.cfg", "/boot/grub/efi.img",
                   "/EFI/boot/bootx64.efi"):
        assert needed in files, f"{needed} missing from the ISO"
    eltorito = xorriso(iso_path, "-report_el_torito", "plain")
    assert re.search(r"El Torito boot img :\s+1\s+BIOS", eltorito), eltorito
    assert re.search(r"El Torito boot img :\s+2\s+UEFI", eltorito), eltorito
    # Hybrid: an MBR (USB sticks on BIOS) with the EFI system partition as entry 2.
    table = subprocess.run(["sfdisk", "-d", str(iso_path)], capture_output=True, text=True,
                           check=True).stdout
    assert "label: dos" in table and "type=ef" in table, table


def test_esp_image_has_the_uefi_loader(iso_path: Path, tmp_path: Path) -> None:
    esp = extract(iso_path, "/boot/grub/efi.img", tmp_path / "efi.img")
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    listing = subprocess.run(["mdir", "-/", "-b", "-i", str(esp), "::/"], capture_output=True,
                             text=True, env=env, check=True).stdout
    assert "::/efi/boot/bootx64.efi" in listing.lower(), listing
    assert "::/efi/boot/grubx64.efi" in listing.lower() or "grub.cfg" in listing.lower()


def test_boot_menus_have_the_entries_a_version_and_a_timeout(iso_path: Path,
                                                             tmp_path: Path) -> None:
    isolinux = extract(iso_path, "/isolinux/isolinux.cfg", tmp_path / "i.cfg").read_text()
    grub = extract(iso_path, "/boot/grub/grub.cfg", tmp_path / "g.cfg").read_text()
    for label in ("^Rescue", "Rescue (^safe graphics)", "Rescue (se^rial console)",
                  "Rescue to a ^shell"):
        assert f"menu label {label}\n" in isolinux
    for title in ('"Rescue"', '"Rescue (safe graphics)"', '"Rescue (serial console)"',
                  '"Rescue to a shell"'):
        assert f"menuentry {title}" in grub
    assert "@" not in isolinux.replace("@tty", "") and "@" not in grub, "unfilled placeholder"
    m = re.search(r"^timeout (\d+)$", isolinux, re.M)
    assert m and 0 < int(m.group(1)) <= 100, "isolinux must boot on its own within 10 s"
    assert re.search(r"^totaltimeout \d+$", isolinux, re.M)
    m = re.search(r"^set timeout=(\d+)$", grub, re.M)
    assert m and 0 < int(m.group(1)) <= 10
    version = re.search(r"rescue (\d+\.\d+\.\d+\S*)", isolinux)
    assert version and f"rescue {version.group(1)}" in grub
    assert "rescue_console=shell" in isolinux and "rescue_console=shell" in grub
    assert "nomodeset" in isolinux and "nomodeset" in grub
    assert "console=ttyS0,115200n8" in isolinux and "console=ttyS0,115200n8" in grub
    assert "include custom.cfg" in isolinux and "/boot/grub/custom.cfg" in grub


@pytest.fixture(scope="module")
def squashfs_listing(iso_path: Path, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    tmp = tmp_path_factory.mktemp("squashfs")
    fs = extract(iso_path, "/live/filesystem.squashfs", tmp / "filesystem.squashfs")
    try:
        out = subprocess.run(["unsquashfs", "-lc", "-d", "", str(fs)], capture_output=True,
                             text=True, check=True).stdout
    finally:
        fs.unlink()
    return {line.strip() for line in out.splitlines() if line.strip()}


@pytest.mark.parametrize("path", [
    # rescue in its venv, and the console plumbing
    "/opt/rescue/venv/bin/rescue", "/usr/local/bin/rescue", "/usr/local/sbin/rescue-console",
    "/etc/systemd/system/getty@tty1.service.d/zz-rescue-wizard.conf",
    "/etc/systemd/system/serial-getty@.service.d/zz-rescue-wizard.conf",
    "/etc/systemd/system/getty@.service.d/zz-rescue-root-shell.conf",
    "/etc/rescue-release",
    # every tool the engine and the boot fix-ups call
    "/usr/sbin/partclone.ext4", "/usr/sbin/partclone.ntfs", "/usr/sbin/partclone.xfs",
    "/usr/sbin/mkfs.ext4", "/usr/sbin/resize2fs", "/usr/sbin/mkfs.vfat", "/usr/bin/mcopy",
    "/usr/sbin/mkfs.xfs", "/usr/sbin/xfs_growfs", "/usr/bin/btrfs", "/usr/bin/ntfs-3g",
    "/usr/sbin/ntfsresize", "/usr/sbin/mkfs.exfat", "/usr/sbin/parted", "/usr/sbin/sgdisk",
    "/usr/sbin/sfdisk", "/usr/bin/lsblk", "/usr/sbin/wipefs", "/usr/bin/efibootmgr",
    "/usr/sbin/grub-install", "/usr/lib/grub/i386-pc/boot.img",
    "/usr/lib/grub/x86_64-efi/linux.mod", "/usr/sbin/mdadm", "/usr/sbin/lvm",
    "/usr/sbin/cryptsetup", "/usr/bin/loadkeys", "/usr/bin/setupcon", "/usr/bin/udevadm",
    "/usr/sbin/update-initramfs", "/usr/bin/zstd", "/usr/bin/xorriso", "/usr/sbin/dmidecode",
    "/usr/bin/lspci", "/usr/sbin/ip", "/usr/sbin/mount.nfs", "/usr/sbin/mount.cifs",
    "/usr/bin/curl", "/usr/bin/ssh",
])
def test_live_root_has(squashfs_listing: set[str], path: str) -> None:
    candidates = {path, path.replace("/usr/sbin/", "/sbin/"), path.replace("/usr/bin/", "/bin/")}
    assert candidates & squashfs_listing, f"{path} is not in the live root filesystem"


def test_live_root_has_no_compiler_or_manuals(squashfs_listing: set[str]) -> None:
    assert "/usr/bin/gcc" not in squashfs_listing
    assert not any(p.startswith("/usr/share/man/man1/") for p in squashfs_listing)
    site = [p for p in squashfs_listing if "/opt/rescue/venv/lib/python3.11/site-packages/" in p]
    for pkg in ("textual", "pyudev", "parted", "zstandard", "blake3", "rescue"):
        assert any(f"/site-packages/{pkg}/" in p for p in site), f"{pkg} missing from the venv"
