"""One boot-matrix cell: back up a test system, restore it onto a blank disk, run the boot
fix-ups as the live system would on the target machine, boot the result in QEMU.

Backup and restore go through the real CLI (``python -m rescue backup|restore``); the
fix-ups through ``rescue.plan.fixups.plan_fixups`` + ``rescue.engine.bootfix.run_fixups``,
the interface the restore executor calls after the data is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import qemu_harness
from testsystem import LAYOUT_RECIPE, TestSystem, loop_device, refresh_partitions

from rescue.engine.bootfix import FixupResult
from rescue.image.repository import Repository
from rescue.plan.fixups import FIXUP_NAMES

# The whole matrix runs with RESCUE_BOOT_MATRIX=1 (make boot-matrix); make test a subset.
FULL_MATRIX = os.environ.get("RESCUE_BOOT_MATRIX") == "1"
FULL_ONLY = "full boot matrix only (TCG boots are slow): run `make boot-matrix`"

MiB = 1024 * 1024
LARGER_BY = 512 * MiB
# "smaller" (issue 13): a 672 MiB target for the 1 GiB test system. Its ext4 root (1021 MiB
# on bios-gpt, 958 MiB on uefi-gpt after the 64 MiB ESP) holds about 300 MiB of files, so
# the planner must shrink it to 669 MiB (66%) / 606 MiB (63%): the root is made anew with
# the source's UUID, label and features and its files are copied one by one from the image.
SMALLER_BY = 352 * MiB
SIZES = ("same", "larger", "smaller")

# What the hardware profile of the target VM reports as its boot-disk driver chain
# (rescue.hardware: HardwareProfile.storage_modules()); the plan adds companions (sd_mod).
BUS_DRIVERS = {"virtio": ["virtio_blk"], "ahci": ["ahci"], "nvme": ["nvme"]}
BUS_DISK = {"virtio": "vda", "ahci": "sda", "nvme": "nvme0n1"}


@dataclass
class CellResult:
    layout: str
    size: str  # "same" | "larger" | "smaller"
    bus: str
    fixups: bool  # False: some or all fix-ups were skipped
    booted: bool
    reason: str
    boot_seconds: float
    restore_seconds: float
    fixup_seconds: float
    marker_line: str
    fixup_results: list[FixupResult] = field(default_factory=list)
    console_tail: str = ""
    plan_lines: list[str] = field(default_factory=list)  # the restore's plan, as printed
    root_uuid: str = ""  # blkid of the restored root partition, before the boot

    def marker_field(self, key: str) -> str:
        for word in self.marker_line.split():
            k, _, v = word.partition("=")
            if k == key:
                return v
        return ""


def rescue_cli(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "rescue", *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"rescue {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


def backup(ts: TestSystem, repo: Path) -> str:
    """Back up the cached test-system image (attached read-only) into *repo*."""
    with loop_device(Path(ts.image), read_only=True) as dev:
        refresh_partitions(dev, expect=ts.root_partition)
        rescue_cli("backup", "--disk", dev, "--repo", str(repo))
    return Repository.open(repo).resolve("latest")


def target_bytes(ts: TestSystem, size: str) -> int:
    """The size of the blank target disk of a *size* cell."""
    return ts.size + {"same": 0, "larger": LARGER_BY, "smaller": -SMALLER_BY}[size]


class Restored(NamedTuple):
    restore_seconds: float
    fixup_seconds: float
    results: list[FixupResult]
    logs: list[str]
    plan_lines: list[str]  # what `rescue restore` printed (the plan, then the outcome)
    root_uuid: str  # the restored root filesystem's UUID (blkid)


def restore_and_fix(
    ts: TestSystem,
    repo: Path,
    image_id: str,
    target: Path,
    *,
    size: str,
    bus: str,
    fixups: bool = True,
    skip: set[str] | None = None,
) -> Restored:
    """Restore onto a blank sparse *target* file with `rescue restore`, which runs the boot
    fix-ups as the live system would on a *bus* machine with the test system's firmware
    (--firmware, --add-driver)."""
    with open(target, "wb") as f:
        f.truncate(target_bytes(ts, size))
    logs: list[str] = []
    with loop_device(target) as dev:
        report_path = target.with_suffix(".report.json")
        skipped = set(FIXUP_NAMES) if not fixups else (skip or set())
        argv = ["restore", "--repo", str(repo), "--image", image_id, "--disk", dev, "--yes",
                "--report", str(report_path), "--firmware", ts.firmware]
        for driver in BUS_DRIVERS[bus]:
            argv += ["--add-driver", driver]
        for name in sorted(skipped):
            argv += ["--skip-fixup", name]
        log_path = target.with_suffix(".events.jsonl")
        started = time.monotonic()
        printed = rescue_cli(*argv, "--log-json", str(log_path))
        restore_s = time.monotonic() - started
        report = json.loads(report_path.read_text())
        results = [FixupResult(s["name"], s["status"], s["detail"]) for s in report["steps"]
                   if s["name"] in FIXUP_NAMES]
        events = [json.loads(line) for line in log_path.read_text().splitlines()]
        logs.extend(e["text"] for e in events if e["event"] == "LogMessage")
        fixup_times = [e["time"] for e in events if e["event"] in ("StageStarted", "StageFinished")
                       and str(e.get("stage", "")).startswith("fixup-")]
        fixup_s = (max(fixup_times) - min(fixup_times)) if fixup_times else 0.0
        os.sync()
        refresh_partitions(dev, expect=ts.root_partition)
        root_uuid = subprocess.run(
            ["blkid", "-p", "-o", "value", "-s", "UUID", f"{dev}p{ts.root_partition}"],
            capture_output=True, text=True,
        ).stdout.strip()
    return Restored(restore_s, fixup_s, results, logs, printed.splitlines(), root_uuid)


def run_cell(
    ts: TestSystem,
    repo: Path,
    image_id: str,
    workdir: Path,
    *,
    size: str,
    bus: str,
    fixups: bool = True,
    skip: set[str] | None = None,
    timeout: float = 240.0,
) -> CellResult:
    """Restore, fix up (minus *skip*), boot. *fixups* False runs none at all."""
    variant = "fix" if fixups and not skip else ("skip-" + "-".join(sorted(skip or {"all"})))
    target = workdir / f"{ts.layout}-{size}-{bus}-{variant}.img"
    try:
        restored = restore_and_fix(
            ts, repo, image_id, target, size=size, bus=bus, fixups=fixups, skip=skip
        )
        logdir = Path(os.environ.get("RESCUE_BOOT_LOGS", "/var/cache/rescue-tests/boot-logs"))
        res = qemu_harness.boot(
            target,
            firmware=ts.firmware,
            bus=bus,
            marker=ts.marker,
            timeout=timeout,
            keep_log=logdir / f"{target.stem}.log",
        )
        return CellResult(
            layout=ts.layout,
            size=size,
            bus=bus,
            fixups=fixups and not skip,
            booted=res.booted,
            reason=res.reason,
            boot_seconds=res.seconds,
            restore_seconds=round(restored.restore_seconds, 1),
            fixup_seconds=round(restored.fixup_seconds, 1),
            marker_line=res.marker_line,
            fixup_results=restored.results,
            console_tail=res.tail(),
            plan_lines=restored.plan_lines,
            root_uuid=restored.root_uuid,
        )
    finally:
        target.unlink(missing_ok=True)
        target.with_suffix(".report.json").unlink(missing_ok=True)


def render_markdown(cells: list[CellResult], build_seconds: dict[str, float],
                    rootfs_seconds: float | None = None) -> str:
    """The results section of docs/BOOT-MATRIX.md for one boot-matrix run."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    disk_mib = LAYOUT_RECIPE["disk_mib"]
    lines = [
        f"Last run: {when}, `make boot-matrix`, {os.cpu_count()} cores, TCG, load average"
        f" {load:.1f} at the end (other test suites share the machine, so boot times vary).",
        f"Target disk: same ({disk_mib} MiB), larger ({disk_mib + LARGER_BY // MiB} MiB: the"
        " root filesystem grown), smaller",
        f"({disk_mib - SMALLER_BY // MiB} MiB: the ext4 root shrunk, made anew with the"
        " source's UUID, its files copied one",
        "by one from the image).",
        "Boot s: QEMU start to marker (or to the failure line). Restore s: `rescue restore`",
        "wall time. Fix-ups s: `run_fixups` wall time (the initramfs rebuild dominates).",
        "",
        "| layout | target disk | bus | fix-ups | result | boot s | restore s | fix-ups s"
        " | root seen by the booted system |",
        "|---|---|---|---|---|---:|---:|---:|---|",
    ]
    for c in cells:
        result = "boots" if c.booted else f"**no boot** ({c.reason})"
        fix = "all" if c.fixups else "initramfs-drivers skipped"
        root = "-"
        if c.booted:
            mib = int(c.marker_field("rootkb") or 0) // 1024
            root = f"{c.marker_field('root')} ({mib} MiB filesystem)"
        lines.append(
            f"| {c.layout} | {c.size} | {c.bus} | {fix} | {result} | {c.boot_seconds:.1f}"
            f" | {c.restore_seconds:.1f} | {c.fixup_seconds:.1f} | {root} |"
        )
    lines += ["", "Test-system build (cached under /var/cache/rescue-tests, keyed by recipe):"]
    if rootfs_seconds is not None:
        lines.append(f"shared root tree (debootstrap + kernel + initramfs) {rootfs_seconds:.0f} s;")
    lines.append(
        "disk images " + ", ".join(f"{k} {v:.0f} s" for k, v in build_seconds.items())
        + "; a cached rerun finds them in well under a second."
    )
    return "\n".join(lines)
