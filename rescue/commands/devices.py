"""``rescue devices``: the disk inventory and, per disk, whether it may be a restore target.

    rescue devices [--json] [--include-loop] [--repo PATH]... [--machine FILE]
    rescue devices --dump FILE [--include-loop] [--boot-disk DISK]
    rescue devices --watch [--include-loop]     # print disks plugged in/out until Ctrl-C
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
from collections.abc import Callable

from rescue.devices.eligibility import assess
from rescue.devices.inventory import Disk, Inventory, probe_inventory, repo_devices
from rescue.devices.monitor import DeviceEvent, DiskMonitor
from rescue.devices.notes import ENCRYPTED, LVM, MEMBER, RAID, storage_note
from rescue.events import human_bytes
from rescue.fs import lvm
from rescue.hardware.machine import Machine
from rescue.runner import CommandRunner


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "devices",
        help="list disks and partitions and whether each may be a restore target",
        description="List every disk and partition with its identity, size, bus and "
        "filesystems, and say for each disk why it is or is not eligible as a restore "
        "target. Reads only.",
    )
    p.add_argument("--json", action="store_true", help="print the inventory as JSON")
    p.add_argument("--include-loop", action="store_true", help="also list loop devices")
    p.add_argument(
        "--repo", action="append", default=[], metavar="PATH",
        help="an image repository in use: its disk is protected (repeatable)",
    )
    p.add_argument("--machine", metavar="FILE", help="read a recorded machine instead of this one")
    p.add_argument(
        "--dump", metavar="FILE",
        help="record this machine (inventory and hardware profile) to FILE as JSON",
    )
    p.add_argument(
        "--boot-disk", metavar="DISK",
        help="with --dump: the disk whose bus and drivers the hardware profile records",
    )
    p.add_argument(
        "--watch", action="store_true",
        help="keep running and report disks as they are plugged in or removed (Ctrl-C ends)",
    )
    p.set_defaults(func=run)


def _flags(disk: Disk) -> str:
    out = []
    if disk.removable:
        out.append("removable")
    if disk.rotational:
        out.append("rotational")
    if disk.read_only:
        out.append("read-only")
    return ", ".join(out)


def _note(node: str, fstype: str, member_of: str,
          describe_pv: Callable[[str], str] | None) -> str:
    """" (member of md126)", " (RAID member: Linux md, not assembled)", " (encrypted:
    LUKS)", " (LVM volume group vg0: root)" or "" (rescue.devices.notes decides which)."""
    note = storage_note(node, fstype, member_of, describe_pv)
    if note is None:
        return ""
    return {
        MEMBER: f" (member of {note.detail})",
        RAID: f" (RAID member: {note.detail}, not assembled)",
        ENCRYPTED: f" (encrypted: {note.detail})",
        LVM: f" (LVM {note.detail})" if note.detail else " (LVM physical volume)",
    }[note.kind]


def format_inventory(inv: Inventory,
                     describe_pv: Callable[[str], str] | None = None) -> list[str]:
    """The inventory as text; *describe_pv* names what an LVM physical volume holds
    (its volume group and logical volumes: read from the disk, so only when asked)."""
    lines: list[str] = []
    if not inv.disks:
        lines.append("No disks found.")
    for d in inv.disks:
        ident = " ".join(x for x in (d.vendor, d.model) if x) or d.kind
        lines.append(
            f"{d.path}  {ident}  {human_bytes(d.size)}  {d.transport or d.kind}"
            f"  {d.table_type or 'no partition table'}"
        )
        details = [f"serial {d.serial}" if d.serial else "", f"wwn {d.wwn}" if d.wwn else "",
                   f"sectors {d.logical_sector_size}/{d.physical_sector_size}", _flags(d)]
        lines.append("    " + "; ".join(x for x in details if x))
        if d.by_id:
            lines.append(f"    {d.by_id}")
        if d.backing_file:
            lines.append(f"    backing file {d.backing_file}")
        if d.raid_level or d.raid_members:
            lines.append(f"    md array {d.raid_level or 'inactive'}, metadata "
                         f"{d.raid_metadata or '-'}"
                         + (f" in container {d.raid_container}" if d.raid_container else "")
                         + f", members: {', '.join(d.raid_members) or '-'}")
        if d.fstype or d.member_of:
            lines.append(
                f"    (whole disk) {d.fstype or '-'} label={d.label or '-'} uuid={d.uuid or '-'}"
                + (f" mounted on {', '.join(d.mountpoints)}" if d.mountpoints else "")
                + _note(d.path, d.fstype, d.member_of, describe_pv)
            )
        for p in d.partitions:
            where = f" mounted on {', '.join(p.mountpoints)}" if p.mountpoints else ""
            where += _note(p.path, p.fstype, p.member_of, describe_pv)
            lines.append(
                f"    {p.path:<18} {human_bytes(p.size):>10}  {p.fstype or '-':<8}"
                f" label={p.label or '-'} uuid={p.uuid or '-'} partuuid={p.partuuid or '-'}{where}"
            )
        if d.eligible:
            lines.append("    -> eligible as a restore target")
        else:
            lines.append("    -> not a restore target:")
            lines.extend(f"       - {r}" for r in d.ineligible_reasons)
    return lines


def watch(include_loop: bool, repos: list[str]) -> int:
    """Print each debounced batch of disk events and the eligible disks after it."""
    batches: queue.Queue[list[DeviceEvent]] = queue.Queue()
    with DiskMonitor(batches.put, include_loop=include_loop):
        print("Watching for disks (Ctrl-C to stop).", flush=True)
        while True:
            batch = batches.get()
            for e in batch:
                print(f"{e.action:<7} {e.devtype:<9} {e.path}", flush=True)
            inv = probe_inventory(include_loop=include_loop, repo_paths=repos)
            names = ", ".join(d.path for d in inv.eligible_disks()) or "none"
            print(f"eligible targets now: {names}", flush=True)


def run(args: argparse.Namespace) -> int:
    if args.watch:
        return watch(args.include_loop, args.repo)
    if args.machine:
        machine = Machine.load(args.machine)
        inv = machine.inventory
        if not args.include_loop:
            inv.disks = [d for d in inv.disks if d.kind != "loop"]
    elif args.dump:
        machine = Machine.probe(include_loop=args.include_loop, boot_disk=args.boot_disk)
        inv = machine.inventory
    else:
        machine = Machine(inventory=probe_inventory(include_loop=args.include_loop))
        inv = machine.inventory
    inv = assess(inv, repo_devices=repo_devices(args.repo) if args.repo else ())
    machine.inventory = inv
    if args.dump:
        machine.dump(args.dump)
        print(f"Recorded {len(inv.disks)} disk(s) and the hardware profile to {args.dump}.",
              file=sys.stderr)
        return 0
    if args.json:
        print(json.dumps(inv.to_dict(), indent=2))
    else:
        runner = CommandRunner()
        live = not args.machine  # a recorded machine's disks are not here to read
        print("\n".join(format_inventory(
            inv, (lambda node: lvm.describe_pv(node, runner)) if live else None)))
    return 0
