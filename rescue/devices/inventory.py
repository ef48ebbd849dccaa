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

import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rescue.devices import mounts as _mounts
from rescue.devices.blockdev import blkid_probe
from rescue.runner import CommandRunner

INVENTORY_SCHEMA = 1
LIVE_MEDIUM = "/run/live/medium"

# Kinds of block device (Disk.kind).
KIND_DISK = "disk"
KIND_LOOP = "loop"
KIND_CDROM = "cdrom"
KIND_ZRAM = "zram"
KIND_RAM = "ram"
KIND_MD = "md"
KIND_DM = "dm"


def devstr(devnum: int) -> str:
    """``"MAJ:MIN"`` for an ``os.makedev`` device number."""
    return f"{os.major(devnum)}:{os.minor(devnum)}"


def _from_known(cls: Any, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass
class Partition:
    name: str  # kernel name: "sda1", "nvme0n1p2", "loop3p1"
    path: str  # "/dev/sda1"
    dev: str  # "MAJ:MIN"
    number: int = 0
    start: int = 0  # bytes from the start of the disk
    size: int = 0  # bytes
    fstype: str = ""  # "ext4", "vfat", "ntfs", "swap", "crypto_LUKS", ...
    uuid: str = ""
    label: str = ""
    partuuid: str = ""
    partlabel: str = ""
    parttype: str = ""  # GPT type GUID or MBR type ("0x83")
    read_only: bool = False
    mountpoints: list[str] = field(default_factory=list)
    swap: bool = False
    holders: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Partition:
        return cls(**_from_known(cls, d))


@dataclass
class Disk:
    name: str  # kernel name: "sda", "nvme0n1", "vda", "loop3"
    path: str  # "/dev/sda"
    dev: str  # "MAJ:MIN"
    kind: str = KIND_DISK  # disk | loop | cdrom | zram | ram | md | dm
    by_id: str = ""  # stable /dev/disk/by-id/... path ("" when udev has none)
    model: str = ""
    vendor: str = ""
    serial: str = ""
    wwn: str = ""
    size: int = 0  # bytes
    logical_sector_size: int = 512
    physical_sector_size: int = 512
    transport: str = ""  # nvme | sata | scsi | usb | virtio | mmc | loop | virtual
    removable: bool = False
    rotational: bool = False
    read_only: bool = False
    table_type: str = ""  # "gpt" | "dos" | "" (none)
    table_uuid: str = ""
    # A filesystem directly on the whole disk (no partition table), e.g. a loop image.
    fstype: str = ""
    uuid: str = ""
    label: str = ""
    mountpoints: list[str] = field(default_factory=list)
    swap: bool = False
    holders: list[str] = field(default_factory=list)
    backing_file: str = ""  # loop devices
    partitions: list[Partition] = field(default_factory=list)
    # Filled by rescue.devices.eligibility.assess:
    eligible: bool = True
    ineligible_reasons: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)  # "boot-medium", "repository"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Disk:
        data = _from_known(cls, d)
        data["partitions"] = [Partition.from_dict(p) for p in d.get("partitions") or []]
        return cls(**data)

    def devs(self) -> set[str]:
        """``MAJ:MIN`` of the disk and all its partitions."""
        return {self.dev, *(p.dev for p in self.partitions)}

    @property
    def mounted(self) -> bool:
        return bool(self.mountpoints or any(p.mountpoints for p in self.partitions))

    def title(self) -> str:
        """One line for people: "sda  Samsung SSD 870 (sata, 500.1 GB)"."""
        what = " ".join(x for x in (self.vendor, self.model) if x) or self.kind
        return f"{self.name}  {what} ({self.transport or self.kind}, {self.size / 1e9:.1f} GB)"


@dataclass
class Inventory:
    disks: list[Disk] = field(default_factory=list)
    # Whole disks ("MAJ:MIN") behind the live system's boot medium and the current root.
    boot_devices: list[str] = field(default_factory=list)
    include_loop: bool = False
    collected_utc: str = ""
    source: str = "live"  # "live" or the file it was loaded from
    schema: int = INVENTORY_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Inventory:
        return cls(
            disks=[Disk.from_dict(x) for x in d.get("disks") or []],
            boot_devices=list(d.get("boot_devices") or []),
            include_loop=bool(d.get("include_loop", False)),
            collected_utc=str(d.get("collected_utc", "")),
            source=str(d.get("source", "live")),
            schema=int(d.get("schema", INVENTORY_SCHEMA)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Inventory:
        """Read an inventory from a JSON file: a recorded machine (``rescue devices
        --dump``, whose ``inventory`` member is used) or a bare inventory."""
        from rescue.recorded import read_member

        inv = cls.from_dict(read_member(path, "inventory", "inventory", "disk inventory"))
        inv.source = str(path)
        return inv

    def dump(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def locate(self, ref: str) -> tuple[Disk, Partition | None] | None:
        """Find a disk or partition by kernel name, /dev path, ``MAJ:MIN`` or by-id path."""
        name = os.path.basename(ref)
        for disk in self.disks:
            if ref in (disk.name, disk.path, disk.dev) or (disk.by_id and ref == disk.by_id):
                return disk, None
            for part in disk.partitions:
                if ref in (part.name, part.path, part.dev):
                    return disk, part
        for disk in self.disks:  # e.g. a /dev/mapper or by-id path resolved elsewhere
            if disk.by_id and name == os.path.basename(disk.by_id):
                return disk, None
        return None

    def disk(self, ref: str) -> Disk | None:
        """The whole disk for *ref*; a partition reference gives its disk."""
        found = self.locate(ref)
        return found[0] if found else None

    def eligible_disks(self) -> list[Disk]:
        return [d for d in self.disks if d.eligible]


# --------------------------------------------------------------------------- probing

_SYS_BLOCK = Path("/sys/class/block")


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return default


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


def _udev_knows(props: dict[str, str], use_udev: bool) -> bool:
    """Trust the udev database for a device's filesystem and table fields only when udev
    has processed it and recorded what is on it. Right after mkfs or a new partition
    table (a stick just prepared, a test) the database can lag behind the disk: a device
    it records as holding nothing is probed with blkid instead."""
    return (use_udev and "USEC_INITIALIZED" in props
            and ("ID_FS_TYPE" in props or "ID_PART_TABLE_TYPE" in props))


def _probe_partition(
    device: Any, mounts: dict[str, list[str]], swaps: set[str], use_udev: bool,
    runner: CommandRunner,
) -> Partition:
    props = _props(device)
    sysdir = Path(device.sys_path)
    dev = _read(sysdir / "dev")
    node = device.device_node or f"/dev/{device.sys_name}"
    blk = None if _udev_knows(props, use_udev) else _blkid(runner, node)
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
    from rescue.hardware.profile import disk_bus

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
    import pyudev

    from rescue.devices.eligibility import assess

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
    inv = Inventory(
        disks=sorted(disks.values(), key=_disk_order),
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
