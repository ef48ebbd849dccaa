"""Disks laid out the way real installers leave them, built on a given loop device.

One builder per layout: Windows Setup on UEFI (ESP, MSR, the Windows partition, the
recovery partition at the end of the disk), Fedora Workstation (ESP, ext4 /boot, btrfs
with ``root`` and ``home`` subvolumes), RHEL (ESP, xfs /boot, xfs root), Ubuntu server
(ESP, ext4 /boot, an LVM PV holding ``ubuntu-vg/ubuntu-lv``) and a legacy MBR disk with
an extended partition holding logical ones. The type GUIDs, names, attributes, labels
and 1 MiB alignment are the installers'; the sizes are scaled down (sparse files, a few
MB of data). Each builder returns a :class:`Layout` that says which files live where and
what a restore onto a larger disk is expected to grow or move.

Files on vfat are written with mtools (this kernel cannot mount vfat), on NTFS through
ntfs-3g, on an LVM logical volume through a loop device at the LV's offset in the PV
(lvmdisk.py; no device-mapper here).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from loopdev import MiB, refresh_partitions, sh
from lvmdisk import LVM_CONF, LvmPV, lvm_pv

SECTOR = 512
ALIGN = 2048  # sectors: 1 MiB
GPT_TAIL = 33  # backup entries + backup header: the last usable LBA is sectors - 34

ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
MSR = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE"
BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
WINRE = "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC"
LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
LINUX_LVM = "E6D6D379-F507-44C2-A23C-238F2A3DF928"

MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


@dataclass
class Volume:
    """A filesystem to check after a restore and the files it must hold."""

    number: int  # partition number
    fstype: str  # blkid TYPE
    files: dict[str, bytes] = field(default_factory=dict)
    subvol: str = ""  # btrfs: files are inside this subvolume
    lv: str = ""  # LVM: the filesystem is on this LV ("vg/lv") of the PV in *number*
    label: str = ""


@dataclass
class Layout:
    name: str
    size: int  # bytes of the source disk
    table: str  # "gpt" or "dos"
    volumes: list[Volume]
    grows: int | None  # the partition a restore onto a larger disk should grow
    moves: list[int] = field(default_factory=list)  # partitions that then move up
    container: int | None = None  # the extended partition that grows with a logical one
    firmware: str = "uefi"


def last_usable(sectors: int) -> int:
    return sectors - GPT_TAIL - 1


def _content(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _text(text: str) -> bytes:
    return text.encode()


# -- writing files ---------------------------------------------------------------------

@contextlib.contextmanager
def mount(node: str, where: Path, fstype: str = "", options: str = "") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    argv = ["mount"]
    if fstype:
        argv += ["-t", fstype]
    if options:
        argv += ["-o", options]
    sh(*argv, node, where)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_vfat(node: str, files: dict[str, bytes], scratch: Path) -> None:
    """Put *files* onto the FAT filesystem on *node* with mtools."""
    made: set[str] = set()
    for rel, data in files.items():
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                sh("mmd", "-i", node, f"::/{d}", env=MTOOLS_ENV)
                made.add(d)
        src = scratch / "mcopy.tmp"
        src.write_bytes(data)
        sh("mcopy", "-i", node, str(src), f"::/{rel}", env=MTOOLS_ENV)
        src.unlink()


def read_vfat(node: str, rel: str, scratch: Path) -> bytes:
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / "mcopy-read.tmp"
    sh("mcopy", "-n", "-i", node, f"::/{rel}", str(out), env=MTOOLS_ENV)
    try:
        return out.read_bytes()
    finally:
        out.unlink()


def _table(dev: str, header: str, rows: list[str]) -> dict[int, str]:
    script = header + "".join(f"{dev}p{row}\n" for row in rows)
    sh("sfdisk", "-q", "--no-reread", "--no-tell-kernel", dev, input=script)
    refresh_partitions(dev)
    nodes = {int(row.split(" ", 1)[0]): f"{dev}p{row.split(' ', 1)[0]}" for row in rows}
    for node in nodes.values():
        if not Path(node).exists():
            raise RuntimeError(f"{node} did not appear after partx")
    return nodes


def _esp(node: str, start: int, files: dict[str, bytes], scratch: Path,
         label: str = "") -> None:
    argv = ["mkfs.fat", "-F", "32", "-h", str(start)]
    if label:
        argv += ["-n", label]
    sh(*argv, node)
    write_vfat(node, files, scratch)


def _linux_esp_files(distro: str) -> dict[str, bytes]:
    return {
        f"EFI/{distro}/shimx64.efi": _content(11, 96 * 1024),
        f"EFI/{distro}/grubx64.efi": _content(12, 160 * 1024),
        f"EFI/{distro}/grub.cfg": _text(f"search --label {distro}\nconfigfile $prefix/grub.cfg\n"),
        "EFI/BOOT/BOOTX64.EFI": _content(11, 96 * 1024),
    }


def _os_files(os_id: str, pretty: str, hostname: str, seed: int) -> dict[str, bytes]:
    return {
        "etc/os-release": _text(f'NAME="{pretty}"\nID={os_id}\nPRETTY_NAME="{pretty}"\n'),
        "etc/hostname": _text(hostname + "\n"),
        "usr/bin/tool": _content(seed, 300 * 1024),
        "var/log/installer.log": _text("installed\n" * 2000),
    }


def _populate(node: str, fstype: str, files: dict[str, bytes], scratch: Path,
              options: str = "") -> None:
    with mount(node, scratch / "populate", fstype, options) as m:
        write_files(m, files)


# -- the layouts -----------------------------------------------------------------------

def _ntfs_extended_once(node: str, label: str, start: int, sectors: int) -> None:
    """An NTFS that was made smaller than its partition and then extended to fill it, as
    Windows Setup leaves C: and as the WinRE update procedure (KB5034441) leaves the
    recovery volume. Its sector count (0x28) is then rounded down to whole clusters, so the
    backup boot sector (the partition's last sector) is not at "sector count" as on a
    volume that was never resized."""
    sh("mkfs.ntfs", "-Q", "-L", label, "-p", str(start), "-H", "255", "-S", "63", node,
       str(sectors - 16 * MiB // SECTOR))
    sh("ntfsresize", "--force", "--no-progress-bar", node, input="y\n")
    # ntfsresize schedules a chkdsk (the volume's dirty flag); Windows' own "Extend
    # volume" does not, and partclone refuses a volume scheduled for a check.
    sh("ntfsfix", "-d", node)


def build_windows(dev: str, size: int, scratch: Path) -> Layout:
    """Windows 10/11 Setup on a blank UEFI disk: ESP (FAT32, 100 MiB), MSR (16 MiB, no
    filesystem), the Windows partition (NTFS) and the recovery partition (NTFS, WinRE
    type, attributes required + no drive letter) ending at the last usable LBA."""
    sectors = size // SECTOR
    end = last_usable(sectors) + 1
    rec_start = (end - 300 * MiB // SECTOR) // ALIGN * ALIGN
    win_start = 2048 + 204800 + 32768
    nodes = _table(dev, "label: gpt\nlabel-id: 5B3D9A0E-7C1F-4E2A-9D61-0A1B2C3D4E5F\n", [
        f"1 : start=2048, size=204800, type={ESP}, name=\"EFI system partition\"",
        f"2 : start=206848, size=32768, type={MSR}, name=\"Microsoft reserved partition\"",
        f"3 : start={win_start}, size={rec_start - win_start}, type={BASIC_DATA}, "
        "name=\"Basic data partition\"",
        f"4 : start={rec_start}, size={end - rec_start}, type={WINRE}, "
        "attrs=\"RequiredPartition GUID:63\"",
    ])
    esp_files = {
        "EFI/Microsoft/Boot/bootmgfw.efi": _content(1, 200 * 1024),
        "EFI/Microsoft/Boot/BCD": _content(2, 32 * 1024),
        "EFI/Boot/bootx64.efi": _content(1, 200 * 1024),
    }
    _esp(nodes[1], 2048, esp_files, scratch)
    win_files = {
        "Windows/System32/config/SYSTEM": _content(3, 512 * 1024),
        "Windows/System32/ntoskrnl.exe": _content(4, 1024 * 1024),
        "Windows/System32/drivers/etc/hosts": _text("127.0.0.1 localhost\r\n"),
        "Users/Public/Desktop/desktop.ini": _text("[.ShellClassInfo]\r\n"),
    }
    _ntfs_extended_once(nodes[3], "Windows", win_start, rec_start - win_start)
    _populate(nodes[3], "ntfs-3g", win_files, scratch)
    rec_files = {
        "Recovery/WindowsRE/Winre.wim": _content(5, 2 * MiB),
        "Recovery/WindowsRE/ReAgent.xml": _text("<WindowsRE version=\"2.0\"/>\r\n"),
    }
    _ntfs_extended_once(nodes[4], "Recovery", rec_start, end - rec_start)
    _populate(nodes[4], "ntfs-3g", rec_files, scratch)
    return Layout("windows", size, "gpt", [
        Volume(1, "vfat", esp_files),
        Volume(3, "ntfs", win_files, label="Windows"),
        Volume(4, "ntfs", rec_files, label="Recovery"),
    ], grows=3, moves=[4])


def build_windows_bios(dev: str, size: int, scratch: Path) -> Layout:
    """Windows 10 Setup on a BIOS machine (MBR): "System Reserved" (NTFS, active, 50 MiB,
    the boot manager), C: (NTFS) and the recovery partition (NTFS, type 27) at the end of
    the disk. BIOS-booted Windows finds its volumes by the "hidden sectors" field, so the
    recovery partition that moves on a larger disk must record its new start."""
    sectors = size // SECTOR
    rec_start = (sectors - 300 * MiB // SECTOR) // ALIGN * ALIGN
    sys_size = 50 * MiB // SECTOR
    win_start = 2048 + sys_size
    nodes = _table(dev, "label: dos\nlabel-id: 0x7d3a1c55\n", [
        f"1 : start=2048, size={sys_size}, type=7, bootable",
        f"2 : start={win_start}, size={rec_start - win_start}, type=7",
        f"3 : start={rec_start}, size={sectors - rec_start}, type=27",
    ])
    sys_files = {"bootmgr": _content(41, 400 * 1024), "Boot/BCD": _content(42, 32 * 1024)}
    sh("mkfs.ntfs", "-Q", "-L", "System Reserved", "-p", "2048", "-H", "255", "-S", "63",
       nodes[1])
    _populate(nodes[1], "ntfs-3g", sys_files, scratch)
    win_files = {
        "Windows/System32/config/SYSTEM": _content(43, 512 * 1024),
        "Windows/System32/winload.exe": _content(44, 1024 * 1024),
        "Users/Public/Documents/notes.txt": _text("invoice 2026-11\r\n" * 200),
    }
    _ntfs_extended_once(nodes[2], "Windows", win_start, rec_start - win_start)
    _populate(nodes[2], "ntfs-3g", win_files, scratch)
    rec_files = {"Recovery/WindowsRE/Winre.wim": _content(45, 2 * MiB)}
    _ntfs_extended_once(nodes[3], "Recovery", rec_start, sectors - rec_start)
    _populate(nodes[3], "ntfs-3g", rec_files, scratch)
    return Layout("windows-bios", size, "dos", [
        Volume(1, "ntfs", sys_files, label="System Reserved"),
        Volume(2, "ntfs", win_files, label="Windows"),
        Volume(3, "ntfs", rec_files, label="Recovery"),
    ], grows=2, moves=[3], firmware="bios")


def build_legacy_mbr(dev: str, size: int, scratch: Path) -> Layout:
    """A BIOS-era Debian install: a bootable primary root, an extended partition with
    /var (ext4), swap and /home (ext4) as logical partitions, each 1 MiB aligned (the
    EBR in the MiB before each logical partition). On a larger disk /home (the largest)
    grows, and the extended partition with it."""
    sectors = size // SECTOR
    root_size = 400 * MiB // SECTOR
    ext_start = 2048 + root_size
    var_start = ext_start + ALIGN
    var_size = 128 * MiB // SECTOR
    swap_start = var_start + var_size + ALIGN
    swap_size = 64 * MiB // SECTOR
    home_start = swap_start + swap_size + ALIGN
    nodes = _table(dev, "label: dos\nlabel-id: 0x4f1c2b3a\n", [
        f"1 : start=2048, size={root_size}, type=83, bootable",
        f"2 : start={ext_start}, size={sectors - ext_start}, type=5",
        f"5 : start={var_start}, size={var_size}, type=83",
        f"6 : start={swap_start}, size={swap_size}, type=82",
        f"7 : start={home_start}, size={sectors - home_start}, type=83",
    ])
    root_files = {**_os_files("debian", "Debian GNU/Linux 7 (wheezy)", "oldbox", 21),
                  "etc/fstab": _text("/dev/sda1 / ext4 errors=remount-ro 0 1\n"
                                     "/dev/sda5 /var ext4 defaults 0 2\n"
                                     "/dev/sda6 none swap sw 0 0\n"
                                     "/dev/sda7 /home ext4 defaults 0 2\n")}
    var_files = {"log/syslog": _text("kernel: booted\n" * 3000),
                 "lib/dpkg/status": _content(22, 200 * 1024)}
    home_files = {"user/.bashrc": _text("export PS1='$ '\n"),
                  "user/photo.jpg": _content(23, 1536 * 1024)}
    for number, label, files in ((1, "root", root_files), (5, "var", var_files),
                                 (7, "home", home_files)):
        sh("mkfs.ext4", "-q", "-L", label, nodes[number])
        _populate(nodes[number], "ext4", files, scratch)
    sh("mkswap", "-L", "swap space", nodes[6])  # a label with a space (blkid escapes it)
    return Layout("legacy-mbr", size, "dos", [
        Volume(1, "ext4", root_files, label="root"),
        Volume(5, "ext4", var_files, label="var"),
        Volume(6, "swap", label="swap space"),
        Volume(7, "ext4", home_files, label="home"),
    ], grows=7, container=2, firmware="bios")


def build_fedora(dev: str, size: int, scratch: Path) -> Layout:
    """Fedora Workstation's default (anaconda, btrfs scheme): ESP, ext4 /boot, and a
    btrfs labelled ``fedora`` filling the disk with subvolumes ``root`` and ``home``."""
    sectors = size // SECTOR
    end = last_usable(sectors) + 1
    boot_start = 2048 + 204800
    btrfs_start = boot_start + 200 * MiB // SECTOR
    nodes = _table(dev, "label: gpt\n", [
        f"1 : start=2048, size=204800, type={ESP}, name=\"EFI System Partition\"",
        f"2 : start={boot_start}, size={btrfs_start - boot_start}, type={LINUX_FS}",
        f"3 : start={btrfs_start}, size={end - btrfs_start}, type={LINUX_FS}",
    ])
    esp_files = _linux_esp_files("fedora")
    _esp(nodes[1], 2048, esp_files, scratch)
    boot_files = {"vmlinuz-6.5.6-300.fc39.x86_64": _content(31, 1024 * 1024),
                  "loader/entries/fedora.conf": _text("title Fedora Linux 39\n")}
    sh("mkfs.ext4", "-q", nodes[2])
    _populate(nodes[2], "ext4", boot_files, scratch)
    root_files = {**_os_files("fedora", "Fedora Linux 39 (Workstation Edition)",
                              "fedora-ws", 32),
                  "etc/fstab": _text("UUID=x / btrfs subvol=root,compress=zstd:1 0 0\n"
                                     "UUID=x /home btrfs subvol=home,compress=zstd:1 0 0\n")}
    home_files = {"alice/.bashrc": _text("# .bashrc\n"),
                  "alice/Documents/report.odt": _content(33, 700 * 1024)}
    sh("mkfs.btrfs", "-q", "-f", "-L", "fedora", nodes[3])
    with mount(nodes[3], scratch / "btrfs-top", "btrfs") as top:
        sh("btrfs", "subvolume", "create", top / "root")
        sh("btrfs", "subvolume", "create", top / "home")
        write_files(top / "root", root_files)
        write_files(top / "home", home_files)
    return Layout("fedora", size, "gpt", [
        Volume(1, "vfat", esp_files),
        Volume(2, "ext4", boot_files),
        Volume(3, "btrfs", root_files, subvol="root", label="fedora"),
        Volume(3, "btrfs", home_files, subvol="home", label="fedora"),
    ], grows=3)


def build_rhel(dev: str, size: int, scratch: Path) -> Layout:
    """RHEL 9 on UEFI without LVM (anaconda's "standard partition" scheme): ESP, xfs
    /boot, xfs root filling the disk. xfs needs 300 MB at least, so /boot is 320 MiB."""
    sectors = size // SECTOR
    end = last_usable(sectors) + 1
    boot_start = 2048 + 204800
    root_start = boot_start + 320 * MiB // SECTOR
    nodes = _table(dev, "label: gpt\n", [
        f"1 : start=2048, size=204800, type={ESP}, name=\"EFI System Partition\"",
        f"2 : start={boot_start}, size={root_start - boot_start}, type={LINUX_FS}",
        f"3 : start={root_start}, size={end - root_start}, type={LINUX_FS}",
    ])
    esp_files = _linux_esp_files("redhat")
    _esp(nodes[1], 2048, esp_files, scratch)
    boot_files = {"vmlinuz-5.14.0-362.el9.x86_64": _content(41, 1024 * 1024),
                  "grub2/grubenv": _text("# GRUB Environment Block\n" + "#" * 999)}
    sh("mkfs.xfs", "-q", "-f", nodes[2])
    _populate(nodes[2], "xfs", boot_files, scratch)
    root_files = {**_os_files("rhel", "Red Hat Enterprise Linux 9.3 (Plow)", "rhel9", 42),
                  "etc/fstab": _text("UUID=x / xfs defaults 0 0\n"
                                     "UUID=y /boot xfs defaults 0 0\n")}
    sh("mkfs.xfs", "-q", "-f", nodes[3])
    _populate(nodes[3], "xfs", root_files, scratch)
    return Layout("rhel", size, "gpt", [
        Volume(1, "vfat", esp_files),
        Volume(2, "xfs", boot_files),
        Volume(3, "xfs", root_files),
    ], grows=3)


@contextlib.contextmanager
def existing_pv(node: str, vg: str) -> Iterator[LvmPV]:
    """The PV already on *node* (a restored one), seen through lvmdisk's private LVM
    configuration (only this device, no udev, no activation, no metadata backups)."""
    system_dir = tempfile.mkdtemp(prefix="lvm-test-")
    try:
        Path(system_dir, "lvm.conf").write_text(LVM_CONF)
        yield LvmPV(node, vg, system_dir)
    finally:
        shutil.rmtree(system_dir, ignore_errors=True)


def build_ubuntu(dev: str, size: int, scratch: Path) -> Layout:
    """Ubuntu server (subiquity's default "use an entire disk" with LVM): ESP, ext4
    /boot, an LVM PV filling the disk with ``ubuntu-vg/ubuntu-lv`` (ext4) as root."""
    sectors = size // SECTOR
    end = last_usable(sectors) + 1
    boot_start = 2048 + 204800
    pv_start = boot_start + 200 * MiB // SECTOR
    nodes = _table(dev, "label: gpt\n", [
        f"1 : start=2048, size=204800, type={ESP}",
        f"2 : start={boot_start}, size={pv_start - boot_start}, type={LINUX_FS}",
        f"3 : start={pv_start}, size={end - pv_start}, type={LINUX_LVM}",
    ])
    esp_files = _linux_esp_files("ubuntu")
    _esp(nodes[1], 2048, esp_files, scratch)
    boot_files = {"vmlinuz-5.15.0-91-generic": _content(51, 1024 * 1024),
                  "grub/grub.cfg": _text("set root=lvmid/x\n")}
    sh("mkfs.ext4", "-q", nodes[2])
    _populate(nodes[2], "ext4", boot_files, scratch)
    root_files = {**_os_files("ubuntu", "Ubuntu 22.04.3 LTS", "ubuntu-server", 52),
                  "etc/fstab": _text("/dev/disk/by-id/dm-uuid-LVM-x / ext4 defaults 0 1\n")}
    with lvm_pv(nodes[3], vg="ubuntu-vg") as pv:
        pv.create_lv("ubuntu-lv", 400 * MiB)
        with pv.lv_loop("ubuntu-lv") as loop:
            sh("mkfs.ext4", "-q", loop)
            _populate(loop, "ext4", root_files, scratch)
    return Layout("ubuntu", size, "gpt", [
        Volume(1, "vfat", esp_files),
        Volume(2, "ext4", boot_files),
        Volume(3, "LVM2_member"),
        Volume(3, "ext4", root_files, lv="ubuntu-vg/ubuntu-lv"),
    ], grows=3)


BUILDERS = {
    "windows": (build_windows, 1024 * MiB),
    "windows-bios": (build_windows_bios, 1024 * MiB),
    "legacy-mbr": (build_legacy_mbr, 1024 * MiB),
    "fedora": (build_fedora, 1024 * MiB),
    "rhel": (build_rhel, 1536 * MiB),
    "ubuntu": (build_ubuntu, 1024 * MiB),
}
