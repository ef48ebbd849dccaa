"""Writing partition tables: the only module that imports parted.

pyparted (libparted 3.5) lays out the table with exact geometry; the identity fields
libparted 3.5 cannot set (disk GUID / MBR identifier, partition GUIDs, arbitrary type
GUIDs/ids, GPT attributes) are then set with sfdisk, so the restored fstab and boot
loader configuration, which name them, still match."""

from __future__ import annotations

import os
import time

import parted

from rescue.devices.blockdev import partition_node
from rescue.errors import DeviceError
from rescue.i18n import _
from rescue.image.manifest import Disk
from rescue.plan.restore import RestorePlan
from rescue.runner import CommandRunner

_PARTED_LABEL = {"gpt": "gpt", "dos": "msdos"}
_KIND = {
    "primary": parted.PARTITION_NORMAL,
    "extended": parted.PARTITION_EXTENDED,
    "logical": parted.PARTITION_LOGICAL,
}


def write_table(plan: RestorePlan, image_disk: Disk, runner: CommandRunner) -> None:
    path = plan.target.path
    try:
        device = parted.getDevice(path)
        if device.length * device.sectorSize != plan.target.size_bytes:
            # libparted keeps each device it saw, with its size then: a disk attached
            # at the same node since (a swapped stick, a loop device set up again) would
            # be laid out with the old size. Drop it (not freed: see below), probe anew.
            device.removeFromCache()
            device = parted.getDevice(path)
        disk = parted.freshDisk(device, _PARTED_LABEL[plan.table])
        order = sorted(plan.partitions, key=lambda p: (p.kind == "logical", p.number))
        # libparted numbers partitions in the order they are added (GPT 1, 2, 3, ...; MBR
        # primaries and the extended one 1-4, logical ones 5, 6, ...); numbers with gaps
        # (a partition deleted on the source) are given afterwards (see _renumber).
        written = _libparted_numbers(order)
        renumber = {w: pp.number for w, pp in zip(written, order, strict=True)
                    if w != pp.number}
        for pp, expected in zip(order, written, strict=True):
            geometry = parted.Geometry(device=device, start=pp.start, length=pp.size)
            part = parted.Partition(disk=disk, type=_KIND[pp.kind], geometry=geometry)
            disk.addPartition(partition=part, constraint=parted.Constraint(exactGeom=geometry))
            if part.number != expected:
                raise DeviceError(_(
                    "parted numbered partition {number} as {parted_number}; "
                    "the layout cannot be reproduced exactly."
                ).format(number=pp.number, parted_number=part.number))
            src = image_disk.partition(pp.number)
            if plan.table == "gpt" and src.name:
                part.set_name(src.name)
            if plan.table == "dos" and src.bootable:
                part.setFlag(parted.PARTITION_BOOT)
        disk.commit()
    except parted.PartedException as exc:
        raise DeviceError(_("Writing the partition table to {path} failed: {error}").format(
            path=path, error=exc)) from exc
    # No parted.freeAllDevices() here: it frees PedDevices that the Python objects above
    # still point at, and their deallocation then crashes the process (SIGFPE at exit).
    if renumber:
        _renumber(path, renumber, runner)
    _set_identity(plan, image_disk, runner)


def _libparted_numbers(order: list) -> list[int]:
    """The numbers libparted gives partitions added in *order*."""
    primary, logical, out = 0, 4, []
    for pp in order:
        if pp.kind == "logical":
            logical += 1
            out.append(logical)
        else:
            primary += 1
            out.append(primary)
    return out


def _renumber(path: str, numbers: dict[int, int], runner: CommandRunner) -> None:
    """Give the entries libparted wrote as *numbers*' keys the source's numbers (its
    values): sfdisk writes each entry of a dump into the slot its device name ends in,
    keeping geometry, type, GUID, name and flags (GPT entries; MBR primary slots)."""
    dump = runner.run(["sfdisk", "-d", path],
                      what=_("Reading the new partition table of {path}").format(path=path))
    lines, seen = [], set()
    for line in dump.stdout.splitlines():
        name, sep, rest = line.partition(" : ")
        if sep and name.startswith(path):
            current = int(name[len(name.rstrip("0123456789")):])
            line = f"{path}-part{numbers.get(current, current)} : {rest}"
            seen.add(current)
        lines.append(line)
    if not set(numbers) <= seen:
        raise DeviceError(_(
            "The new partition table of {path} holds {found} partitions, {expected} were "
            "written."
        ).format(path=path, found=len(seen), expected=len(numbers)))
    runner.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", path],
               input="\n".join(lines) + "\n",
               what=_("Numbering the partitions of {path} as on the source").format(path=path))
    # libparted told the kernel about its numbering: drop those, tell_kernel adds the
    # renumbered ones (a changed start cannot be updated in place)
    forget_partitions(path, runner)


def _set_identity(plan: RestorePlan, image_disk: Disk, runner: CommandRunner) -> None:
    path = plan.target.path
    sf = ["sfdisk", "--no-reread", "--no-tell-kernel", "-q"]
    runner.run([*sf, "--disk-id", path, plan.disk_id],
               what=_("Setting the disk id of {path}").format(path=path))
    for pp in plan.partitions:
        src = image_disk.partition(pp.number)
        n = str(pp.number)
        if pp.kind != "extended":
            runner.run([*sf, "--part-type", path, n, src.type],
                       what=_("Setting the type of partition {number}").format(number=n))
        if plan.table == "gpt":
            if src.uuid:
                runner.run([*sf, "--part-uuid", path, n, src.uuid],
                           what=_("Setting the GUID of partition {number}").format(number=n))
            if src.attrs:
                runner.run([*sf, "--part-attrs", path, n, src.attrs],
                           what=_("Setting the attributes of partition {number}").format(
                               number=n))


def tell_kernel(path: str, numbers: list[int], runner: CommandRunner,
                timeout: float = 15.0, settle: bool = True) -> dict[int, str]:
    """Make the kernel list the new partitions (partx: loop devices have no parser here,
    and it is right on real disks too), wait for their nodes, return number -> node.
    *settle*: also wait for udev; not while the caller holds the disk's BSD lock (udev
    waits for that lock, the nodes appear without it)."""
    runner.run(["partx", "-u", path], check=False)
    if settle:
        runner.run(["udevadm", "settle", "--timeout=10"], check=False)
    nodes = {n: partition_node(path, n) for n in numbers}
    deadline = time.monotonic() + timeout
    while True:
        missing = [n for n, node in nodes.items() if not os.path.exists(node)]
        if not missing:
            return nodes
        if time.monotonic() > deadline:
            raise DeviceError(_(
                "The kernel did not create device nodes for partitions {numbers} of {path}."
            ).format(numbers=missing, path=path))
        runner.run(["partx", "-a", path], check=False)
        time.sleep(0.2)


def forget_partitions(path: str, runner: CommandRunner) -> None:
    """Drop the kernel's idea of the old partitions before the table is replaced."""
    runner.run(["partx", "-d", path], check=False)
