"""Linux md arrays as the inventory shows them: one disk per array, containers hidden,
members marked.

Public API::

    read_md(sysdir) -> MdArray | None            # one /sys/block/mdX directory
    read_md_arrays(sys_block="/sys/block") -> dict[str, MdArray]
    apply_md(disks, arrays) -> list[Disk]         # pure: the listing with arrays folded in
    md_title(array, metadata) -> str              # "RAID1 (2 members: vda1, vdb1)"

What sysfs says (Documentation/admin-guide/md.rst): ``md/level`` ("raid1", "raid0",
"raid10", "linear"; "container" or empty for an IMSM/DDF container),
``md/metadata_version`` ("1.2", "0.90" for native metadata; "external:imsm" or
"external:ddf" for a firmware-RAID container; "external:/md127/0" or, while mdmon has
not taken it over, "external:-md127/0" for a volume inside container md127),
``md/raid_disks``, and ``slaves/`` (the member disks or partitions). Intel RST (IMSM)
and DDF firmware RAID is assembled by mdadm as a container holding the member disks
plus one md device per volume; the volume is what the operating system lives on, the
container is bookkeeping and is not listed. A member is never a restore target:
``rescue.devices.eligibility`` says so with the array's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rescue.devices.blockdev import read_sys as _read
from rescue.devices.disks import KIND_MD, Disk

SYS_BLOCK = Path("/sys/block")
FIRMWARE_METADATA = {"imsm": "Intel RST (IMSM)", "ddf": "DDF"}


@dataclass(frozen=True)
class MdArray:
    name: str  # "md126"
    level: str = ""  # "raid1"...; "container" for an IMSM/DDF container
    metadata: str = ""  # "1.2", "0.90", "imsm", "ddf" ("" when unknown)
    container: str = ""  # the container of an external-metadata volume: "md127"
    members: tuple[str, ...] = ()  # kernel names from slaves/: "vda1", "nvme0n1"
    raid_disks: int = 0

    @property
    def is_container(self) -> bool:
        return self.level == "container" or (
            self.metadata in FIRMWARE_METADATA and not self.container)


def parse_metadata(text: str) -> tuple[str, str]:
    """(metadata, container) from ``md/metadata_version``: "1.2" -> ("1.2", "");
    "external:imsm" -> ("imsm", ""); "external:/md127/0" -> ("", "md127")."""
    if not text.startswith("external:"):
        return (text if text != "none" else ""), ""
    rest = text[len("external:"):]
    if rest[:1] in ("/", "-"):  # a volume in a container: /md127/0 (- while read-only)
        return "", rest[1:].split("/", 1)[0]
    return rest, ""


def read_md(sysdir: Path) -> MdArray | None:
    """The array behind one ``/sys/block/mdX`` directory (None when it has no ``md/``)."""
    if not (sysdir / "md").is_dir():
        return None
    metadata, container = parse_metadata(_read(sysdir / "md/metadata_version"))
    level = _read(sysdir / "md/level")
    try:
        members = tuple(sorted(p.name for p in (sysdir / "slaves").iterdir()))
    except OSError:
        members = ()
    try:
        raid_disks = int(_read(sysdir / "md/raid_disks") or 0)
    except ValueError:
        raid_disks = 0
    if not level and metadata in FIRMWARE_METADATA and not container:
        level = "container"
    return MdArray(name=sysdir.name, level=level, metadata=metadata, container=container,
                   members=members, raid_disks=raid_disks)


def read_md_arrays(sys_block: Path = SYS_BLOCK) -> dict[str, MdArray]:
    """Every md device the kernel has (assembled, or inactive and still holding its
    members), by kernel name. Empty without the md driver."""
    out: dict[str, MdArray] = {}
    try:
        entries = sorted(sys_block.iterdir())
    except OSError:
        return out
    for sysdir in entries:
        if sysdir.name.startswith("md"):
            array = read_md(sysdir)
            if array is not None:
                out[array.name] = array
    return out


def metadata_of(array: MdArray, arrays: dict[str, MdArray]) -> str:
    """The metadata an array is kept in: its own, or its container's (IMSM/DDF)."""
    if array.container:
        return arrays.get(array.container, MdArray(array.container)).metadata
    return array.metadata


def md_title(array: MdArray, metadata: str = "") -> str:
    """"RAID1 (2 members: vda1, vdb1)", "RAID1 Intel RST (IMSM) (2 members: nvme0n1,
    nvme1n1)", "RAID (inactive, 1 member: sdb1)"."""
    level = array.level.upper() if array.level.lower().startswith("raid") else array.level
    words = [level or "RAID"]
    if metadata in FIRMWARE_METADATA:
        words.append(FIRMWARE_METADATA[metadata])
    n = len(array.members)
    what = f"{n} member{'s' if n != 1 else ''}" + (
        f": {', '.join(array.members)}" if array.members else "")
    if not array.level:
        what = "inactive, " + what
    return f"{' '.join(words)} ({what})"


def apply_md(disks: list[Disk], arrays: dict[str, MdArray]) -> list[Disk]:
    """The disk listing with md arrays folded in (modifies and returns the disks):
    containers left out, each array's level, members and metadata filled in (its
    ``model`` says what it is when it has none), and every member disk or partition's
    ``member_of`` naming the array (a volume before its container)."""
    member_of: dict[str, str] = {}
    for each in sorted(arrays.values(), key=lambda a: not a.is_container):
        for m in each.members:  # containers first: a volume's name overrides
            member_of[m] = each.name
    out: list[Disk] = []
    for disk in disks:
        array = arrays.get(disk.name) if disk.kind == KIND_MD else None
        if array is not None:
            if array.is_container:
                continue
            disk.raid_level = array.level
            disk.raid_members = list(array.members)
            disk.raid_metadata = metadata_of(array, arrays)
            disk.raid_container = array.container
            if not disk.model:
                disk.model = md_title(array, disk.raid_metadata)
        disk.member_of = member_of.get(disk.name, "")
        for part in disk.partitions:
            part.member_of = member_of.get(part.name, "")
        out.append(disk)
    return out
