"""Which block devices are mounted, used as swap, or held by another driver."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from rescue.i18n import _


@dataclass(frozen=True)
class Mount:
    devnum: int  # os.makedev(major, minor) of the mounted device
    mountpoint: str
    fstype: str
    source: str
    options: frozenset[str]

    @property
    def read_write(self) -> bool:
        return "rw" in self.options


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal \040 etc.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and i + 4 <= len(field):
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if " - " not in line or len(parts) < 10:
            continue
        sep = parts.index("-")
        major, minor = (int(x) for x in parts[2].split(":"))
        options = frozenset(parts[5].split(","))
        mounts.append(
            Mount(
                devnum=os.makedev(major, minor),
                mountpoint=_unescape(parts[4]),
                fstype=parts[sep + 1],
                source=_unescape(parts[sep + 2]),
                options=options,
            )
        )
    return mounts


def current_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    return parse_mountinfo(Path(mountinfo).read_text())


def devnum_of(path: str | os.PathLike[str]) -> int:
    """The device number of a block device node."""
    st = os.stat(path)
    if not stat.S_ISBLK(st.st_mode):
        raise ValueError(f"{path} is not a block device")
    return st.st_rdev


def block_devnum(m: Mount) -> int | None:
    """The block device a mount is on: its own device number, or, for a FUSE block
    filesystem (ntfs-3g: device 0:N), the device its source names; None when it is on no
    block device (tmpfs, proc, network shares)."""
    devnum = m.devnum
    if os.major(devnum) == 0 and m.source.startswith("/dev/"):
        try:
            devnum = devnum_of(m.source)
        except (OSError, ValueError):
            return None
    return devnum if os.major(devnum) != 0 else None


def active_swaps(proc_swaps: str = "/proc/swaps") -> set[int]:
    """Device numbers of block devices in use as swap."""
    result: set[int] = set()
    try:
        lines = Path(proc_swaps).read_text().splitlines()[1:]
    except OSError:
        return result
    for line in lines:
        name = line.split()[0] if line.split() else ""
        try:
            result.add(devnum_of(name))
        except (OSError, ValueError):
            continue
    return result


def sysfs_block_dir(devnum: int) -> Path:
    return Path(f"/sys/dev/block/{os.major(devnum)}:{os.minor(devnum)}").resolve()


def disk_devnums(disk: str) -> set[int]:
    """The device numbers of a whole disk and every partition the kernel knows on it."""
    devnum = devnum_of(disk)
    nums = {devnum}
    sysdir = sysfs_block_dir(devnum)
    if sysdir.is_dir():
        for child in sysdir.iterdir():
            dev_file = child / "dev"
            if (child / "partition").exists() and dev_file.exists():
                major, minor = (int(x) for x in dev_file.read_text().split(":"))
                nums.add(os.makedev(major, minor))
    return nums


def parent_disk_devnum(devnum: int) -> int:
    """The whole-disk device number for a partition's device number (or itself)."""
    sysdir = sysfs_block_dir(devnum)
    if (sysdir / "partition").exists():
        major, minor = (int(x) for x in (sysdir.parent / "dev").read_text().split(":"))
        return os.makedev(major, minor)
    return devnum


def holders(disk: str) -> list[str]:
    """Kernel holders (device-mapper, md, ...) of a disk or any of its partitions."""
    sysdir = sysfs_block_dir(devnum_of(disk))
    found: list[str] = []
    for d in [sysdir, *[c for c in sysdir.iterdir() if (c / "partition").exists()]]:
        hdir = d / "holders"
        if hdir.is_dir():
            found.extend(h.name for h in hdir.iterdir())
    return found


@dataclass(frozen=True)
class DiskUse:
    mounts: list[Mount]
    swaps: list[int]
    holders: list[str]

    @property
    def busy(self) -> bool:
        return bool(self.mounts or self.swaps or self.holders)

    def describe(self) -> str:
        parts = [_("{device} is mounted on {mountpoint}").format(
            device=m.source, mountpoint=m.mountpoint) for m in self.mounts]
        if self.swaps:
            parts.append(_("a partition is in use as swap"))
        parts.extend(_("it is held by {holder}").format(holder=h) for h in self.holders)
        return "; ".join(parts)


def disk_use(disk: str) -> DiskUse:
    nums = disk_devnums(disk)
    return DiskUse(
        mounts=[m for m in current_mounts() if m.devnum in nums],
        swaps=sorted(active_swaps() & nums),
        holders=holders(disk),
    )
