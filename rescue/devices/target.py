"""Facts about a restore target, read-only, for the planner's refusal checks."""

from __future__ import annotations

import json
import os

from rescue.devices.blockdev import device_facts, require_block_device, sysfs_attr
from rescue.devices.mounts import (
    current_mounts,
    devnum_of,
    disk_devnums,
    disk_use,
    parent_disk_devnum,
)
from rescue.plan.restore import TargetInfo, table_layout
from rescue.runner import CommandRunner

BOOT_MEDIUM_MOUNTS = ("/", "/run/live/medium", "/lib/live/mount/medium")


def boot_medium_devnums() -> set[int]:
    """Whole-disk device numbers of the running system's root and live medium."""
    found = set()
    for m in current_mounts():
        if m.mountpoint in BOOT_MEDIUM_MOUNTS and os.major(m.devnum) != 0:
            try:
                found.add(parent_disk_devnum(m.devnum))
            except OSError:
                continue
    return found


def repository_disk_devnum(repo_path: str | None) -> int | None:
    if not repo_path:
        return None
    try:
        dev = os.stat(repo_path).st_dev
    except OSError:
        return None
    if os.major(dev) == 0:
        return None  # tmpfs, overlay, network filesystem: not on a local disk
    try:
        return parent_disk_devnum(dev)
    except OSError:
        return None


def probe_target(path: str, repo_path: str | None, runner: CommandRunner) -> TargetInfo:
    require_block_device(path)
    facts = device_facts(path)
    use = disk_use(path)
    whole = devnum_of(path)
    nums = disk_devnums(path)
    repo_disk = repository_disk_devnum(repo_path)
    probe = runner.run(["blkid", "-p", "-o", "export", path], check=False)
    info = dict(line.split("=", 1) for line in probe.stdout.splitlines() if "=" in line)
    signatures = [info["TYPE"]] if "TYPE" in info else []
    existing_id = ""
    existing_layout: list[list[str | int]] = []
    table = runner.run(["sfdisk", "-J", path], check=False)
    if table.returncode == 0 and table.stdout.strip():
        existing_id, existing_layout = table_layout(json.loads(table.stdout)["partitiontable"])
    return TargetInfo(
        path=path,
        size_bytes=int(facts["size_bytes"]),
        logical_sector_size=int(facts["logical_sector_size"]),
        physical_sector_size=int(facts["physical_sector_size"]),
        read_only=bool(facts["read_only"]),
        busy=use.describe() if use.busy else "",
        holds_repository=repo_disk is not None and repo_disk in nums,
        is_boot_medium=whole in boot_medium_devnums(),
        model=sysfs_attr(path, "device/model"),
        serial=sysfs_attr(path, "device/serial"),
        existing_table=info.get("PTTYPE", ""),
        existing_partitions=len(nums) - 1,
        existing_signatures=signatures,
        existing_id=existing_id,
        existing_layout=existing_layout,
    )
