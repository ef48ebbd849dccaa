"""Read a disk's layout (partition table, filesystems) into the image model. Read-only:
sfdisk -J for the table, blkid -p for filesystems, ioctls for sizes."""

from __future__ import annotations

import json
import os
import shutil

from rescue.devices.blockdev import blkid_probe, device_facts, partition_node, sysfs_attr
from rescue.errors import SourceRefusedError
from rescue.fs import partclone, registry
from rescue.i18n import _
from rescue.image.manifest import (
    METHOD_NONE,
    METHOD_RECREATE,
    METHOD_USED_BLOCKS,
    METHOD_WHOLE,
    Disk,
    Partition,
)
from rescue.plan import parttypes
from rescue.runner import CommandRunner


def read_table(disk: str, runner: CommandRunner) -> dict:
    result = runner.run(["sfdisk", "-J", disk], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        said = result.stderr.strip()
        if not said:
            raise SourceRefusedError(_(
                "{disk} has no partition table rescue can read (GPT or MBR); sfdisk says: "
                "nothing"
            ).format(disk=disk))
        raise SourceRefusedError(_(
            "{disk} has no partition table rescue can read (GPT or MBR); sfdisk says: {said}"
        ).format(disk=disk, said=said))
    return dict(json.loads(result.stdout)["partitiontable"])


def choose_method(p: Partition) -> str:
    """How a backup copies *p*: its used blocks where the type's record names a source
    rescue can read here (dumpe2fs, the FAT, btrfs-progs, an installed partclone),
    recreated (swap), or whole."""
    if p.kind == "extended":
        return METHOD_NONE
    t = registry.traits(p.filesystem)
    if t is not None and t.used_blocks in (registry.DUMPE2FS, registry.FAT):
        return METHOD_USED_BLOCKS
    if t is not None and t.used_blocks == registry.BTRFS_PROGS and shutil.which("btrfs"):
        return METHOD_USED_BLOCKS
    if partclone.supported(p.filesystem):
        return METHOD_USED_BLOCKS
    if t is not None and t.recreate:
        return METHOD_RECREATE
    return METHOD_WHOLE


def probe_disk(disk: str, runner: CommandRunner) -> Disk:
    """The layout of *disk*; partition data is not read here."""
    facts = device_facts(disk)
    table = read_table(disk, runner)
    label = table["label"]
    if label not in ("gpt", "dos"):
        raise SourceRefusedError(_(
            "{disk} has a '{label}' partition table; only GPT and MBR."
        ).format(disk=disk, label=label))
    sector = int(table.get("sectorsize", facts["logical_sector_size"]))
    result = Disk(
        size_bytes=int(facts["size_bytes"]),
        logical_sector_size=sector,
        physical_sector_size=int(facts["physical_sector_size"]),
        table=label,
        id=str(table.get("id", "")),
        first_lba=table.get("firstlba"),
        last_lba=table.get("lastlba"),
        source_path=disk,
        model=sysfs_attr(disk, "device/model"),
        serial=sysfs_attr(disk, "device/serial"),
    )
    for entry in table.get("partitions", []):
        node = entry["node"]
        number = int(node[len(node.rstrip("0123456789")):])
        ptype = str(entry["type"])
        kind = "primary"
        if label == "dos":
            if parttypes.is_extended(ptype):
                kind = "extended"
            elif number > 4:
                kind = "logical"
        part = Partition(
            number=number,
            start=int(entry["start"]),
            size=int(entry["size"]),
            type=ptype.upper() if label == "gpt" else ptype.lower(),
            kind=kind,
            uuid=entry.get("uuid"),
            name=entry.get("name"),
            attrs=entry.get("attrs"),
            bootable=bool(entry.get("bootable", False)),
        )
        if kind != "extended":
            info = blkid_probe(_existing_node(disk, number, node), runner)
            part.filesystem = info.get("TYPE")
            part.fs_uuid = info.get("UUID")
            part.fs_label = info.get("LABEL")
            part.fs_version = info.get("VERSION")
        part.method = choose_method(part)
        result.partitions.append(part)
    result.partitions.sort(key=lambda p: p.number)
    return result


def _existing_node(disk: str, number: int, node: str) -> str:
    for candidate in (node, partition_node(disk, number)):
        if os.path.exists(candidate):
            return candidate
    raise SourceRefusedError(_(
        "The kernel has no device node for partition {number} of {disk}; "
        "run 'partx -u {disk}' and retry."
    ).format(number=number, disk=disk))
