"""The disk inventory: every disk and partition of a machine, probed read-only or replayed
from a recorded JSON file.

Public API::

    probe_inventory(include_loop: bool = False, runner: CommandRunner | None = None,
                    repo_paths: Iterable[str] = (), use_udev: bool | None = None) -> Inventory
    Inventory.load(path) / Inventory.from_dict(d) / inv.to_dict() / inv.dump(path)
    inv.disk(ref) -> Disk | None          # ref: "sda", "/dev/sda", "8:0" or a by-id path
    inv.locate(ref) -> (Disk, Partition | None) | None
    inv.eligible_disks() -> list[Disk]
    repo_devices(paths) -> list[str]      # whole disks ("MAJ:MIN") holding those paths
    boot_medium_devices() -> list[str]    # whole disks behind /run/live/medium and /

md arrays are folded in by :mod:`rescue.devices.md` (one row per array with its level
and members, containers of Intel RST/DDF firmware RAID left out, members marked with
``member_of``).

``Disk.eligible`` and ``Disk.ineligible_reasons`` are filled by
:func:`rescue.devices.eligibility.assess` (``probe_inventory`` calls it; call it again
with the selected repository's devices once the technician picked one).

Sources: pyudev (enumeration; properties from the udev database while systemd-udevd
runs), sysfs (sizes, sector sizes, flags, model/serial fallbacks), /proc/self/mountinfo
and /proc/swaps. When udev has no data for a device (udevd not running, or the device
not processed yet) the filesystem and partition-table fields come from ``blkid -p``,
which only reads. Loop devices are left out unless ``include_loop`` is set, except that
a loop device's backing file still protects the disk it lives on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyudev

from rescue.devices import mounts as _mounts
from rescue.devices.blockdev import blkid_probe, disk_bus
from rescue.devices.blockdev import read_sys as _read
from rescue.devices.disks import (
    KIND_CDROM,
    KIND_DISK,
    KIND_DM,
    KIND_LOOP,
    KIND_MD,
    KIND_RAM,
    KIND_ZRAM,
    Disk,
    Inventory,
    Partition,
    devstr,
)
from rescue.devices.eligibility import assess
from rescue.devices.md import apply_md, read_md_arrays
from rescue.runner import CommandRunner

LIVE_MEDIUM = "/run/live/medium"

def _read_int(path: Path, default: int = 0) -> int:
    try:
        return int(_read(path) or default)
    except ValueError:
        return default


def udevd_running(proc: str = "/proc") -> bool:
    """Whether a udev daemon runs (otherwise the udev database may be stale or empty)."""
    try:
        entries = os.listdir(proc)
    except OSError:
        return False
    for pid in entries:
        if pid.isdigit() and _read(Path(proc, pid, "comm")) in ("systemd-udevd", "udevd"):
            return True
    return False


def _kind(name: str, major: int, props: dict[str, str], sysdir: Path) -> str:
    if major == 7 or name.startswith("loop"):
        return KIND_LOOP
    if name.startswith("zram"):
        return KIND_ZRAM
    if major == 1 or name.startswith("ram"):
        return KIND_RAM
    if (
        major == 11
        or name.startswith("sr")
        or props.get("ID_CDROM") == "1"
        or _read(sysdir / "device/type") == "5"
    ):
        return KIND_CDROM
    if major == 9 or name.startswith("md"):
        return KIND_MD
    if name.startswith("dm-"):
        return KIND_DM
    return KIND_DISK


def _blkid(runner: CommandRunner, node: str) -> dict[str, str]:
    """Low-level probe (reads only) of one device: filesystem and partition fields."""
    return blkid_probe(node, runner)


def _fs_fields(props: dict[str, str], blk: dict[str, str] | None) -> dict[str, str]:
    """Normalised fields from udev properties, or from blkid when *blk* is given."""
    if blk is not None:
        return {
            "fstype": blk.get("TYPE", ""),
            "uuid": blk.get("UUID", ""),
            "label": blk.get("LABEL", ""),
            "partuuid": blk.get("PART_ENTRY_UUID", ""),
            "partlabel": blk.get("PART_ENTRY_NAME", ""),
            "parttype": blk.get("PART_ENTRY_TYPE", ""),
            "table_type": blk.get("PTTYPE", ""),
            "table_uuid": blk.get("PTUUID", ""),
        }
    return {
        "fstype": props.get("ID_FS_TYPE", ""),
        "uuid": props.get("ID_FS_UUID", ""),
        "label": props.get("ID_FS_LABEL", ""),
        "partuuid": props.get("ID_PART_ENTRY_UUID", ""),
        "partlabel": props.get("ID_PART_ENTRY_NAME", ""),
        "parttype": props.get("ID_PART_ENTRY_TYPE", ""),
        "table_type": props.get("ID_PART_TABLE_TYPE", ""),
        "table_uuid": props.get("ID_PART_TABLE_UUID", ""),
    }


def _by_id(props: dict[str, str]) -> str:
    links = props.get("DEVLINKS", "").split()
    ids = [link for link in links if link.startswith("/dev/disk/by-id/")]
    # Prefer the bus-model-serial names over the bare WWN/EUI ones.
    ids.sort(key=lambda p: (os.path.basename(p).startswith(("wwn-", "nvme-eui.")), p))
    return ids[0] if ids else ""


def _mount_table() -> tuple[dict[str, list[str]], set[str]]:
    """Mountpoints per device ("MAJ:MIN") and the swap devices."""
    by_dev: dict[str, list[str]] = {}
    for m in _mounts.current_mounts():
        devnum = _mounts.block_devnum(m)
        if devnum is not None:
            by_dev.setdefault(devstr(devnum), []).append(m.mountpoint)
    swaps = {devstr(n) for n in _mounts.active_swaps()}
    return by_dev, swaps


def _holders(sysdir: Path) -> list[str]:
    hdir = sysdir / "holders"
    try:
        return sorted(h.name for h in hdir.iterdir())
    except OSError:
        return []


def _props(device: Any) -> dict[str, str]:
    try:
        return {str(k): str(device.properties[k]) for k in device.properties}
    except Exception:  # pyudev raises various errors for vanished devices
        return {}


def _udev_knows(props: dict[str, str], use_udev: bool, partition: bool = False) -> bool:
    """Trust the udev database for a device's filesystem and table fields only when udev
    has processed it and recorded what is on it. Right after mkfs or a new partition
    table (a stick just prepared, a test), or after ``mdadm --stop`` released a member,
    the database can lag behind the disk: a device it records as holding nothing is
    probed with blkid instead, so nothing is called blank on udev's word alone.

    A partition's record always carries its parent's ID_PART_TABLE_TYPE, so for a
    partition only a filesystem type (or signature type) counts as "recorded"."""
    if not (use_udev and "USEC_INITIALIZED" in props):
        return False
    if props.get("ID_FS_TYPE"):
        return True
    return not partition and bool(props.get("ID_PART_TABLE_TYPE"))


def _probe_partition(
    device: Any, mounts: dict[str, list[str]], swaps: set[str], use_udev: bool,
    runner: CommandRunner,
) -> Partition:
    props = _props(device)
    sysdir = Path(device.sys_path)
    dev = _read(sysdir / "dev")
    node = device.device_node or f"/dev/{device.sys_name}"
    blk = None if _udev_knows(props, use_udev, partition=True) else _blkid(runner, node)
    fs = _fs_fields(props, blk)
    return Partition(
        name=device.sys_name,
        path=node,
        dev=dev,
        number=_read_int(sysdir / "partition"),
        start=_read_int(sysdir / "start") * 512,
        size=_read_int(sysdir / "size") * 512,
        fstype=fs["fstype"],
        uuid=fs["uuid"],
        label=fs["label"],
        partuuid=fs["partuuid"],
        partlabel=fs["partlabel"],
        parttype=fs["parttype"],
        read_only=_read(sysdir / "ro") == "1",
        mountpoints=sorted(mounts.get(dev, [])),
        swap=dev in swaps,
        holders=_holders(sysdir),
    )


def _probe_disk(
    device: Any, mounts: dict[str, list[str]], swaps: set[str], use_udev: bool,
    runner: CommandRunner,
) -> Disk:
    props = _props(device)
    sysdir = Path(device.sys_path)
    name = device.sys_name
    dev = _read(sysdir / "dev")
    major = int(dev.split(":")[0]) if ":" in dev else 0
    node = device.device_node or f"/dev/{name}"
    kind = _kind(name, major, props, sysdir)
    size = _read_int(sysdir / "size") * 512
    probe_fs = size > 0 and kind not in (KIND_CDROM, KIND_ZRAM, KIND_RAM)
    if _udev_knows(props, use_udev):
        fs = _fs_fields(props, None)
    elif probe_fs:
        fs = _fs_fields({}, _blkid(runner, node))
    else:
        fs = _fs_fields({}, {})
    wwn = props.get("ID_WWN_WITH_EXTENSION") or props.get("ID_WWN") or ""
    if not wwn:
        wwn = _read(sysdir / "wwid") or _read(sysdir / "device/wwid")
    serial = props.get("ID_SERIAL_SHORT") or _read(sysdir / "device/serial") or _read(
        sysdir / "serial"
    )
    model = props.get("ID_MODEL_FROM_DATABASE") or props.get("ID_MODEL", "").replace("_", " ")
    model = model or _read(sysdir / "device/model")
    vendor = props.get("ID_VENDOR_FROM_DATABASE") or props.get("ID_VENDOR", "").replace("_", " ")
    vendor = vendor or _read(sysdir / "device/vendor")
    if vendor.startswith("0x"):  # a PCI/virtio vendor id, not a name
        vendor = {"0x1af4": "Virtio"}.get(vendor, "")
    if kind == KIND_DM and not model:
        model = dm_title(_read(sysdir / "dm/name"), _read(sysdir / "dm/uuid"), props)
    return Disk(
        name=name,
        path=node,
        dev=dev,
        kind=kind,
        by_id=_by_id(props),
        model=model.strip(),
        vendor=vendor.strip(),
        serial=serial.strip(),
        wwn=wwn.strip(),
        size=size,
        logical_sector_size=_read_int(sysdir / "queue/logical_block_size", 512),
        physical_sector_size=_read_int(sysdir / "queue/physical_block_size", 512),
        transport=disk_bus(str(sysdir.resolve()), name),
        removable=_read(sysdir / "removable") == "1",
        rotational=_read(sysdir / "queue/rotational") == "1",
        read_only=_read(sysdir / "ro") == "1",
        table_type=fs["table_type"],
        table_uuid=fs["table_uuid"],
        fstype=fs["fstype"],
        uuid=fs["uuid"],
        label=fs["label"],
        mountpoints=sorted(mounts.get(dev, [])),
        swap=dev in swaps,
        holders=_holders(sysdir),
        backing_file=_read(sysdir / "loop/backing_file") if kind == KIND_LOOP else "",
    )


def dm_title(name: str, uuid: str, props: dict[str, str]) -> str:
    """What a device-mapper volume is, from its dm name and uuid (and udev's DM_VG_NAME
    / DM_LV_NAME): "LVM logical volume vg0/root", "unlocked LUKS volume cr_home",
    "device-mapper volume NAME"."""
    if uuid.startswith("LVM-"):
        vg, lv = props.get("DM_VG_NAME", ""), props.get("DM_LV_NAME", "")
        return f"LVM logical volume {vg}/{lv}" if vg and lv else f"LVM logical volume {name}"
    if uuid.startswith("CRYPT-"):
        kind = uuid.split("-")[1] if uuid.count("-") >= 2 else "dm-crypt"
        kind = {"LUKS1": "LUKS", "LUKS2": "LUKS", "BITLK": "BitLocker"}.get(kind, kind)
        return f"unlocked {kind} volume {name}".rstrip()
    return f"device-mapper volume {name}".rstrip()


def _whole_disks_of_devnum(devnum: int, seen: set[int] | None = None) -> set[str]:
    """Whole disks under a device: its parent disk, and for loop/dm/md devices the disks
    their backing files or members live on (recursively)."""
    seen = seen if seen is not None else set()
    if devnum in seen or os.major(devnum) == 0:
        return set()
    seen.add(devnum)
    try:
        disk = _mounts.parent_disk_devnum(devnum)
    except OSError:
        return set()
    result = {devstr(disk)}
    sysdir = _mounts.sysfs_block_dir(disk)
    backing = _read(sysdir / "loop/backing_file")
    if backing:
        result |= _disks_of_path(backing, seen)
    for d in (sysdir, _mounts.sysfs_block_dir(devnum)):
        slaves = d / "slaves"
        if slaves.is_dir():
            for s in slaves.iterdir():
                dev = _read(s / "dev")
                if ":" in dev:
                    ma, mi = (int(x) for x in dev.split(":"))
                    result |= _whole_disks_of_devnum(os.makedev(ma, mi), seen)
    return result


def _disks_of_path(path: str, seen: set[int] | None = None) -> set[str]:
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return set()
    devnum = st.st_dev
    if os.major(devnum) == 0:  # FUSE (ntfs-3g), overlay, tmpfs...: ask the mount table
        best = None
        for m in _mounts.current_mounts():
            mp = m.mountpoint.rstrip("/") or "/"
            if (real == mp or real.startswith(mp.rstrip("/") + "/")) and (
                best is None or len(mp) > len(best.mountpoint)
            ):
                best = m
        if best is None or not best.source.startswith("/dev/"):
            return set()
        try:
            devnum = _mounts.devnum_of(best.source)
        except (OSError, ValueError):
            return set()
    return _whole_disks_of_devnum(devnum, seen)


def repo_devices(paths: Iterable[str]) -> list[str]:
    """Whole disks (``MAJ:MIN``) that hold the given repository directories, following
    loop backing files and device-mapper/md members. Paths that do not exist or live on
    no block device (network shares) contribute nothing."""
    result: set[str] = set()
    for p in paths:
        result |= _disks_of_path(str(p))
    return sorted(result)


def boot_medium_devices(live_medium: str = LIVE_MEDIUM) -> list[str]:
    """Whole disks behind the live system's medium and the current root filesystem."""
    result: set[str] = set()
    if os.path.ismount(live_medium):
        result |= _disks_of_path(live_medium)
    result |= _disks_of_path("/")
    return sorted(result)


def probe_inventory(
    include_loop: bool = False,
    runner: CommandRunner | None = None,
    repo_paths: Iterable[str] = (),
    use_udev: bool | None = None,
) -> Inventory:
    """Read-only: every disk of the running machine, with eligibility assessed.

    ``use_udev``: trust the udev database for filesystem fields (default: when a udev
    daemon runs); ``False`` probes every device with ``blkid -p`` instead."""
    runner = runner or CommandRunner()
    if use_udev is None:
        use_udev = udevd_running()
    mounts, swaps = _mount_table()
    context = pyudev.Context()
    disks: dict[str, Disk] = {}
    partitions: list[tuple[str, Partition]] = []
    for device in context.list_devices(subsystem="block"):
        try:
            devtype = device.device_type
            if devtype == "disk":
                disk = _probe_disk(device, mounts, swaps, use_udev, runner)
                if disk.kind == KIND_LOOP and (not include_loop or disk.size == 0):
                    continue
                disks[disk.name] = disk
            elif devtype == "partition":
                parent = device.find_parent("block", "disk")
                if parent is None:
                    continue
                part = _probe_partition(device, mounts, swaps, use_udev, runner)
                partitions.append((parent.sys_name, part))
        except (OSError, ValueError):
            continue  # the device vanished while we looked at it
    for parent_name, part in partitions:
        if parent_name in disks:
            disks[parent_name].partitions.append(part)
    for disk in disks.values():
        disk.partitions.sort(key=lambda p: p.number)
    # md arrays: one row each, IMSM/DDF containers left out, members marked
    listed = apply_md(list(disks.values()), read_md_arrays())
    inv = Inventory(
        disks=sorted(listed, key=_disk_order),
        boot_devices=boot_medium_devices(),
        include_loop=include_loop,
        collected_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    return assess(inv, repo_devices=repo_devices(repo_paths))


def _disk_order(disk: Disk) -> tuple[int, str, int]:
    order = [KIND_DISK, KIND_MD, KIND_DM, KIND_LOOP, KIND_CDROM, KIND_ZRAM, KIND_RAM]
    digits = "".join(ch for ch in disk.name if ch.isdigit())
    base = disk.name.rstrip("0123456789")
    return (order.index(disk.kind) if disk.kind in order else 99, base, int(digits or 0))
