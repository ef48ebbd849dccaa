"""Facts about a restore target, read-only, for the planner's refusal checks."""

from __future__ import annotations

import json
import os

from rescue.devices.blockdev import (
    blkid_probe,
    device_facts,
    require_block_device,
    sysfs_attr,
)
from rescue.devices.inventory import boot_medium_devices, repo_devices
from rescue.devices.mounts import devnum_of, disk_devnums, disk_use
from rescue.plan.restore import TargetInfo
from rescue.runner import CommandRunner


def table_layout(sfdisk_table: dict) -> tuple[str, list[list[str | int]]]:
    """(disk id, [[number, start, size, TYPE, UUID], ...]) from `sfdisk -J` output, in the
    form plan_restore compares with."""
    rows: list[list[str | int]] = []
    for entry in sfdisk_table.get("partitions", []):
        node = str(entry["node"])
        number = int(node[len(node.rstrip("0123456789")):])
        rows.append([number, int(entry["start"]), int(entry["size"]),
                     str(entry["type"]).upper(), str(entry.get("uuid", "")).upper()])
    return str(sfdisk_table.get("id", "")), sorted(rows)


def probe_target(path: str, repo_path: str | None, runner: CommandRunner) -> TargetInfo:
    require_block_device(path)
    facts = device_facts(path)
    use = disk_use(path)
    whole = devnum_of(path)
    nums = disk_devnums(path)
    me = f"{os.major(whole)}:{os.minor(whole)}"
    # both follow loop backing files, ntfs-3g mounts and dm/md members to the real disks
    repo_disks = set(repo_devices([repo_path])) if repo_path else set()
    boot_disks = set(boot_medium_devices())
    info = blkid_probe(path, runner)
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
        holds_repository=me in repo_disks,
        is_boot_medium=me in boot_disks,
        model=sysfs_attr(path, "device/model"),
        serial=sysfs_attr(path, "device/serial"),
        existing_table=info.get("PTTYPE", ""),
        existing_partitions=len(nums) - 1,
        existing_signatures=signatures,
        existing_id=existing_id,
        existing_layout=existing_layout,
    )
