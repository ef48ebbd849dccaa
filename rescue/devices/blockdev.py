"""Read-only facts about a block device node: size, sector sizes, read-only flag,
partition node names. ioctl numbers from <linux/fs.h>."""

from __future__ import annotations

import fcntl
import os
import re
import stat
import struct
from pathlib import Path

from rescue.errors import DeviceError, from_oserror
from rescue.i18n import _
from rescue.runner import CommandRunner

BLKROGET = 0x125E
BLKSSZGET = 0x1268
BLKPBSZGET = 0x127B
BLKGETSIZE64 = 0x80081272


def _ioctl_int(fd: int, request: int, fmt: str) -> int:
    buf = bytearray(struct.calcsize(fmt))
    fcntl.ioctl(fd, request, buf)
    return int(struct.unpack(fmt, buf)[0])


def require_block_device(path: str) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise from_oserror(exc, _("Opening {path}").format(path=path)) from exc
    if not stat.S_ISBLK(st.st_mode):
        raise DeviceError(_("{path} is not a block device (a disk such as /dev/sda).").format(
            path=path))


def device_facts(path: str) -> dict[str, int | bool]:
    """size_bytes, logical_sector_size, physical_sector_size, read_only."""
    require_block_device(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise from_oserror(exc, _("Opening {path}").format(path=path)) from exc
    try:
        return {
            "size_bytes": _ioctl_int(fd, BLKGETSIZE64, "Q"),
            "logical_sector_size": _ioctl_int(fd, BLKSSZGET, "i"),
            "physical_sector_size": _ioctl_int(fd, BLKPBSZGET, "I"),
            "read_only": bool(_ioctl_int(fd, BLKROGET, "i")),
        }
    finally:
        os.close(fd)


def partition_node(disk: str, number: int) -> str:
    """/dev/sda + 1 -> /dev/sda1; /dev/nvme0n1 + 1 -> /dev/nvme0n1p1; loop0 -> loop0p1."""
    base = os.path.realpath(disk)
    sep = "p" if base[-1].isdigit() else ""
    return f"{base}{sep}{number}"


def read_sys(path: Path, default: str = "") -> str:
    """One sysfs attribute as text (stripped); *default* when it cannot be read."""
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return default


def sysfs_attr(disk: str, attr: str) -> str:
    name = Path(os.path.realpath(disk)).name
    try:
        return (Path("/sys/class/block") / name / attr).read_text().strip()
    except OSError:
        return ""


_ESCAPED = re.compile(r"\\(.)")


def parse_blkid_export(text: str) -> dict[str, str]:
    """``blkid -o export`` output as a dict. blkid escapes values for a shell (a label
    "System Reserved" is printed ``LABEL=System\\ Reserved``); the escapes are undone, so
    a label is recorded, shown and recreated as the filesystem holds it."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = _ESCAPED.sub(r"\1", value.strip())
    return out


def blkid_probe(node: str, runner: CommandRunner) -> dict[str, str]:
    """Low-level probe (reads only) of one device: filesystem and partition fields."""
    return parse_blkid_export(runner.run(["blkid", "-p", "-o", "export", node],
                                         check=False).stdout)


def disk_bus(sys_path: str, name: str) -> str:
    """Pure: the transport of a disk from its resolved sysfs path and kernel name."""
    p = sys_path
    if name.startswith("loop"):
        return "loop"
    if name.startswith(("zram", "ram")):
        return "virtual"
    if "/usb" in p:
        return "usb"
    if "/nvme" in p or name.startswith("nvme"):
        return "nvme"
    if re.search(r"/ata\d+/", p):
        return "sata"
    if "/mmc_host/" in p or name.startswith("mmcblk"):
        return "mmc"
    if name.startswith("vd") and "/virtio" in p:
        return "virtio"
    if "/host" in p or name.startswith("sd"):
        return "scsi"
    if name.startswith(("sr", "md", "dm-")):
        return "scsi" if name.startswith("sr") else "virtual"
    return ""
