"""Deterministic services for screen tests and snapshots (fixed dates, sizes, disks).

These stand in for the machine only where a screen's look or navigation is tested; the
restore and backup tests run the real engine on loop devices (test_restore_real.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from rescue.errors import Cancelled, RescueError
from rescue.events import LogMessage, Progress, Sink, StageFinished, StageStarted
from rescue.wizard.model import (
    CopyResult,
    DiskEntry,
    FileEntry,
    ImageEntry,
    LogMedium,
    OpenedImage,
    Outcome,
    Prepared,
    RestoreChoices,
    VerdictView,
    Volume,
)

GB = 1000**3
CET = timezone(timedelta(hours=1))

IMAGES = [
    ImageEntry("3f9a1c2b", "weekly", "web01", datetime(2026, 10, 31, 14, 5, tzinfo=CET),
               "Debian GNU/Linux 12", 21 * GB, 9 * GB, "uefi", "/media/usb/rescue",
               "USB stick SanDisk Ultra (sdb1)",
               (Volume(0, 1, 536_870_912, "vfat", "EFI", 12_000_000),
                Volume(0, 2, 40 * GB, "ext4", "root", 20 * GB),
                Volume(0, 3, 4 * GB, "swap", "", None)), 64 * GB),
    ImageEntry("1b2c3d4e", "monthly", "web01", datetime(2026, 10, 1, 9, 30, tzinfo=CET),
               "Debian GNU/Linux 12", 19 * GB, 8 * GB, "uefi", "/media/usb/rescue",
               "USB stick SanDisk Ultra (sdb1)",
               (Volume(0, 1, 536_870_912, "vfat", "EFI", 12_000_000),
                Volume(0, 2, 40 * GB, "ext4", "root", 18 * GB)), 64 * GB),
    ImageEntry("77aa0011", "before-upgrade", "office-pc", datetime(2026, 9, 12, 18, 45,
                                                                  tzinfo=CET),
               "Ubuntu 24.04 LTS", 35 * GB, 15 * GB, "bios", "/media/usb/rescue",
               "USB stick SanDisk Ultra (sdb1)",
               (Volume(0, 1, 100 * GB, "ext4", "system", 35 * GB),), 120 * GB),
]

DISKS = [
    DiskEntry("/dev/sda", "sda", "Samsung SSD 870", "S5Y1NJ0R123456", 250 * GB,
              "/dev/disk/by-id/ata-Samsung_SSD_870_S5Y1NJ0R123456", "sata",
              partitions=("sda1 ntfs 'Windows'", "sda2 ntfs 'Data'"), has_data=True),
    DiskEntry("/dev/sdb", "sdb", "SanDisk Ultra", "4C530001", 32 * GB, transport="usb",
              eligible=False, reason="it holds the selected image repository",
              partitions=("sdb1 exfat 'RESCUE'",), has_data=True),
    DiskEntry("/dev/sdc", "sdc", "Rescue Live USB", "AA00BB11", 8 * GB, transport="usb",
              eligible=False,
              reason="it holds the running rescue system (boot medium or current root)",
              partitions=("sdc1 iso9660 'RESCUE_LIVE'",), has_data=True),
]

# Writable filesystems for Save logs (sdb, the repository's stick, is mounted read-only by
# the image search and sdc is the boot medium: neither is offered).
LOG_MEDIA = [
    LogMedium("/dev/sdd1", "sdd1", "vfat", "LOGS", "1A2B-3C4D", "usb", 16 * GB, removable=True),
    LogMedium("/dev/sda2", "sda2", "ntfs", "Data", "0123456789ABCDEF", "sata", 200 * GB),
]
LOG_FILE_NAME = "rescue-logs-20261130T101500Z.txt"

# "Browse files in a system image": the image's partitions and a small tree in p2.
WHEN = datetime(2026, 10, 30, 17, 42, tzinfo=CET)
PARTITIONS = (
    FileEntry("p1", "", "p1: vfat 'EFI'", "part", 536_870_912),
    FileEntry("p2", "", "p2: ext4 'root'", "part", 40 * GB),
    FileEntry("p3", "", "p3: swap", "part", 4 * GB,
              note="swap: nothing of it is stored (recreated on restore)"),
)
TREE: dict[tuple[str, str], list[tuple[str, str, int]]] = {  # (name, kind, size)
    ("p1", ""): [("EFI", "dir", 0)],
    ("p1", "EFI"): [],
    ("p2", ""): [("etc", "dir", 0), ("home", "dir", 0), ("vmlinuz", "link", 0)],
    ("p2", "etc"): [("fstab", "file", 712), ("hostname", "file", 6)],
    ("p2", "home"): [("anna", "dir", 0)],
    ("p2", "home/anna"): [("Documents", "dir", 0), ("photos", "dir", 0),
                          (".bashrc", "file", 3_771), ("thesis.odt", "file", 2_481_152)],
    ("p2", "home/anna/Documents"): [("letter.txt", "file", 1_024)],
    ("p2", "home/anna/photos"): [("beach.jpg", "file", 3_500_000)],
}


@dataclass
class FixtureServices:
    images: list[ImageEntry] = field(default_factory=lambda: list(IMAGES))
    disks: list[DiskEntry] = field(default_factory=lambda: list(DISKS))
    verdict: VerdictView = field(default_factory=lambda: VerdictView(
        "compatible", (), ("Network: Intel I219-V (e1000e) was Realtek RTL8111 (r8169)",)))
    prepare_error: RescueError | None = None
    run_error: RescueError | None = None
    restore_warnings: list[str] = field(default_factory=list)  # a restore done, with these
    block_run: threading.Event | None = None  # the run waits for this (cancel tests)
    log_media_found: list[LogMedium] = field(default_factory=lambda: list(LOG_MEDIA))
    save_error: RescueError | None = None
    calls: list[tuple] = field(default_factory=list)
    watchers: list[Callable[[], None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # search_problems() answers these
    # shrink_note() per disk path: a text, or an error it raises (TargetTooSmallError)
    shrink_answers: dict[str, str | Exception] = field(default_factory=dict)
    # browse: errors to raise, the copy's answer, what is open now
    open_error: RescueError | None = None
    list_error: RescueError | None = None
    copy_error: RescueError | None = None
    copy_failed: list[str] = field(default_factory=list)  # "path: reason" of a copy
    copy_media_found: list[LogMedium] = field(default_factory=lambda: list(LOG_MEDIA))
    block_copy: threading.Event | None = None  # the copy waits for this (cancel tests)
    open_images: list[str] = field(default_factory=list)

    def find_images(self, locations: list[str], media: bool = True) -> list[ImageEntry]:
        self.calls.append(("find_images", tuple(locations)) if media
                          else ("find_images", tuple(locations), "no media"))
        return list(self.images)

    def search_problems(self) -> list[str]:
        return list(self.problems)

    def list_disks(self, image: ImageEntry | None, purpose: str) -> list[DiskEntry]:
        return list(self.disks)

    def compatibility(self, image: ImageEntry, disk: DiskEntry | None = None) -> VerdictView:
        return self.verdict

    def shrink_note(self, image: ImageEntry, disk: DiskEntry, disk_index: int = 0) -> str:
        answer = self.shrink_answers.get(disk.path, "")
        if isinstance(answer, Exception):
            raise answer
        return answer

    def prepare_restore(self, image: ImageEntry, disk: DiskEntry,
                        options: RestoreChoices, others=()) -> Prepared:
        self.calls.append(("prepare_restore", image.id, disk.path,
                           *(d.path for d in others)))
        if self.prepare_error:
            raise self.prepare_error
        return Prepared("restore", [
            f"wipe signatures on {disk.path}",
            "create GPT partition table (3 partitions)",
            "write partitions 1-2 (20.0 GB of data), recreate swap 3",
            "grow partition 2 to fill the disk; verify; UEFI boot entry",
        ], handle=("restore", image.id, disk.path), loses_data=disk.has_data,
            total_bytes=20 * GB, volumes=[("1: vfat 'EFI'", 12_000_000),
                                          ("2: ext4 'root'", 20 * GB - 12_000_000)])

    def _run(self, sink: Sink, cancel: threading.Event) -> None:
        total = 20 * GB
        sink(StageStarted("restore-data", "Writing partition 2 (ext4, 40.0 GB)", total))
        sink(Progress("restore-data", total // 4, total, 60.0, 85_000_000.0, 180.0))
        if self.block_run is not None:
            # Wait for the test (at most 20 s, so a snapshot run never hangs at exit).
            for _ in range(400):
                if cancel.is_set() or self.block_run.wait(0.05):
                    break
        if cancel.is_set():
            sink(LogMessage("warning", "Cancelled after the current chunk."))
            raise Cancelled("The restore was cancelled; the target disk is incomplete.")
        if self.run_error:
            raise self.run_error
        sink(Progress("restore-data", total, total, 240.0, 83_333_333.0, 0.0))
        sink(StageFinished("restore-data", 240.0, total))

    def run_restore(self, prepared: Prepared, sink: Sink, cancel: threading.Event) -> Outcome:
        self.calls.append(("run_restore", prepared.handle))
        self._run(sink, cancel)
        return Outcome(ok=True, verified=True, warnings=list(self.restore_warnings))

    def backup_destinations(self) -> list[tuple[str, str]]:
        return [("/media/usb/rescue", "USB stick SanDisk Ultra (sdb1)")]

    def prepare_backup(self, disks: list[DiskEntry], destination: str, name: str,
                       break_lock: bool = False) -> Prepared:
        self.calls.append(("prepare_backup", disks[0].path, destination, name)
                          + (("break lock",) if break_lock else ()))
        self.calls.append(("backup_sources", tuple(d.path for d in disks)))
        if self.prepare_error:
            raise self.prepare_error
        return Prepared("backup", [f"read {disks[0].path}: 2 partitions, 21.0 GB used",
                                   f"write image '{name}' to {destination}"],
                        handle=("backup", disks[0].path), total_bytes=20 * GB)

    def run_backup(self, prepared: Prepared, sink: Sink, cancel: threading.Event) -> Outcome:
        self.calls.append(("run_backup", prepared.handle))
        self._run(sink, cancel)
        return Outcome(ok=True, image_id="9e8d7c6b")

    def watch_media(self, on_change: Callable[[], None]) -> Callable[[], None]:
        self.watchers.append(on_change)
        return lambda: self.watchers.remove(on_change) if on_change in self.watchers else None

    def apply_keymap(self, keymap: str) -> str:
        self.calls.append(("apply_keymap", keymap))
        return "recorded"

    def power(self, action: str) -> None:
        self.calls.append(("power", action))

    def shell(self) -> None:
        self.calls.append(("shell",))

    def check_disk(self, disk: DiskEntry) -> list[str]:
        return [f"{disk.path}1: clean"]

    def log_media(self, exclude: list[str]) -> list[LogMedium]:
        self.calls.append(("log_media", tuple(exclude)))
        return [m for m in self.log_media_found
                if not any(m.device.startswith(disk) for disk in exclude)]

    def save_logs(self, destination: LogMedium | str) -> str:
        where = destination if isinstance(destination, str) else destination.device
        self.calls.append(("save_logs", where))
        if self.save_error:
            raise self.save_error
        if isinstance(destination, str):
            return f"Logs saved to {destination}/{LOG_FILE_NAME}."
        return (f"Logs saved to {destination.short} as {LOG_FILE_NAME}; "
                "you can remove the stick.")

    # -- browse files in a system image ----------------------------------------------
    def open_image(self, image: ImageEntry) -> OpenedImage:
        self.calls.append(("open_image", image.id))
        if self.open_error:
            raise self.open_error
        self.open_images.append(image.id)
        return OpenedImage(f"{image.id}@fixture", image, PARTITIONS)

    def list_folder(self, opened: OpenedImage, part: str, path: str) -> list[FileEntry]:
        self.calls.append(("list_folder", part, path))
        if self.list_error:
            raise self.list_error
        rows = TREE[(part, path)]
        return [FileEntry(part, f"{path}/{name}".lstrip("/"), name, kind, size, WHEN)
                for name, kind, size in sorted(rows, key=lambda r: (r[1] != "dir",
                                                                    r[0].casefold()))]

    def copy_media(self, exclude: list[str]) -> list[LogMedium]:
        self.calls.append(("copy_media", tuple(exclude)))
        return list(self.copy_media_found)

    def copy_files(self, opened: OpenedImage, marked, destination, progress,
                   cancel: threading.Event) -> CopyResult:
        where = destination if isinstance(destination, str) else destination.short
        self.calls.append(("copy_files", tuple(f"{e.part}/{e.path}" for e in marked),
                           destination if isinstance(destination, str)
                           else destination.device))
        if self.copy_error:
            raise self.copy_error
        total = sum(e.size for e in marked) or 1_000_000
        progress(total // 2, total)
        if self.block_copy is not None:
            for _ in range(400):
                if cancel.is_set() or self.block_copy.wait(0.05):
                    break
        folder = f"rescue-files-{opened.image.id}"
        if cancel.is_set():
            return CopyResult(False, (f"Copied to {where}, in the folder {folder}: 1 "
                                      "file(s), 0 folder(s), 1.0 MB.",
                                      "The copy stopped: the copy was cancelled. What was "
                                      "copied stays there."), 1, 1_000_000)
        progress(total, total)
        lines = [f"Copied to {where}, in the folder {folder}: {len(marked)} file(s), "
                 f"0 folder(s), {total} B."]
        if self.copy_failed:
            lines += [f"{len(self.copy_failed)} could not be copied:",
                      *(f"  {f}" for f in self.copy_failed)]
        return CopyResult(not self.copy_failed, tuple(lines), len(marked), total,
                          len(self.copy_failed))

    def close_image(self, opened: OpenedImage) -> None:
        self.calls.append(("close_image", opened.image.id))
        self.open_images.remove(opened.image.id)
