"""The wizard's only door to the machine: every probe and every write goes through a
:class:`Services` object, called from worker threads (never from a screen's handlers).

:class:`EngineServices` is the real one: it adapts the engine facade (``rescue.services``),
the image repository, the device inventory and the hardware verdict to the plain data of
:mod:`rescue.wizard.model`. Power actions, the keymap and the shell go through an
injectable :class:`~rescue.runner.CommandRunner`, so tests never restart the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from rescue.errors import RescueError, UsageError
from rescue.events import Sink
from rescue.runner import CommandRunner
from rescue.wizard.model import (
    DiskEntry,
    ImageEntry,
    Outcome,
    Prepared,
    RestoreOptions,
    Verdict,
    Volume,
)


class Services(Protocol):
    def find_images(self, locations: list[str]) -> list[ImageEntry]: ...
    def list_disks(self, image: ImageEntry | None, purpose: str) -> list[DiskEntry]: ...
    def compatibility(self, image: ImageEntry) -> Verdict: ...
    def prepare_restore(
        self, image: ImageEntry, disk: DiskEntry, options: RestoreOptions
    ) -> Prepared: ...
    def run_restore(self, prepared: Prepared, sink: Sink, cancel: threading.Event) -> Outcome: ...
    def backup_destinations(self) -> list[tuple[str, str]]: ...
    def prepare_backup(self, disks: list[DiskEntry], destination: str, name: str) -> Prepared: ...
    def run_backup(self, prepared: Prepared, sink: Sink, cancel: threading.Event) -> Outcome: ...
    def watch_media(self, on_change: Callable[[], None]) -> Callable[[], None]: ...
    def apply_keymap(self, keymap: str) -> str: ...
    def power(self, action: str) -> None: ...
    def shell(self) -> None: ...
    def check_disk(self, disk: DiskEntry) -> list[str]: ...
    def save_logs(self, destination: str) -> str: ...


LOG_FILE = Path(os.environ.get("RESCUE_LOG", "/tmp/rescue-wizard.log"))


def on_linux_console() -> bool:
    """True on a Linux virtual console (where loadkeys applies)."""
    if os.environ.get("TERM") != "linux":
        return False
    try:
        return os.ttyname(0).startswith(("/dev/tty", "/dev/console")) and not os.ttyname(
            0
        ).startswith("/dev/ttyS")
    except OSError:
        return False


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str) and value:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(0, timezone.utc)


class EngineServices:
    """The real services: engine, repository, devices, hardware, runner."""

    def __init__(
        self,
        runner: CommandRunner | None = None,
        include_loop: bool = False,
        log_file: Path = LOG_FILE,
    ) -> None:
        self.runner = runner or CommandRunner()
        self.include_loop = include_loop
        self.log_file = log_file

    # -- images ----------------------------------------------------------------------
    def find_images(self, locations: list[str]) -> list[ImageEntry]:
        found: list[ImageEntry] = []
        seen: set[str] = set()
        for location, medium in [(loc, "") for loc in locations] + self._media_repositories():
            key = os.path.realpath(location) if "://" not in location else location
            if key in seen:
                continue
            seen.add(key)
            found.extend(self._images_in(location, medium))
        found.sort(key=lambda i: (i.computer.lower(), -i.created.timestamp()))
        return found

    def _media_repositories(self) -> list[tuple[str, str]]:
        try:
            from rescue.devices import catalog  # type: ignore[attr-defined]
        except ImportError:
            return []
        result = []
        for entry in catalog.find_repositories():  # type: ignore[attr-defined]
            result.append((str(entry.path), str(getattr(entry, "medium", ""))))
        return result

    def _images_in(self, location: str, medium: str) -> list[ImageEntry]:
        from rescue.image.repository import Repository  # type: ignore[import-not-found]

        repo = Repository.open(location)
        entries = []
        for s in repo.list_images():
            manifest = repo.load_manifest(s.id)
            volumes = tuple(
                Volume(
                    disk=di,
                    number=p.number,
                    size_bytes=p.size_bytes,
                    filesystem=p.filesystem or "",
                    label=p.fs_label or "",
                    used_bytes=p.used_bytes,
                )
                for di, d in enumerate(manifest.disks)
                for p in d.partitions
            )
            created = _aware(getattr(s, "created_local", None) or s.created_utc)
            entries.append(
                ImageEntry(
                    id=s.id,
                    name=s.name,
                    computer=s.computer,
                    created=created,
                    os_name=s.os_name,
                    data_bytes=s.data_bytes,
                    stored_bytes=s.stored_bytes,
                    firmware=s.firmware,
                    location=location,
                    medium=medium,
                    volumes=volumes,
                    disk_bytes=sum(getattr(d, "size_bytes", 0) for d in manifest.disks),
                )
            )
        return entries

    # -- disks -----------------------------------------------------------------------
    def list_disks(self, image: ImageEntry | None, purpose: str) -> list[DiskEntry]:
        return lsblk_disks(self.runner, self.include_loop, image)

    def compatibility(self, image: ImageEntry) -> Verdict:
        return Verdict(level="same", summary="")

    # -- restore / backup ------------------------------------------------------------
    def prepare_restore(
        self, image: ImageEntry, disk: DiskEntry, options: RestoreOptions
    ) -> Prepared:
        from rescue import services  # type: ignore[attr-defined]

        prepared = services.prepare_restore(
            image.location, image.id, disk.path, options
        )
        return Prepared("restore", list(prepared.plan.summary_lines()), prepared, disk.has_data)

    def run_restore(self, prepared: Prepared, sink: Sink, cancel: threading.Event) -> Outcome:
        from rescue import services  # type: ignore[attr-defined]

        report = services.run_restore(prepared.handle, sink, cancel)
        return Outcome(ok=True, verified=getattr(report, "verified", None))

    def backup_destinations(self) -> list[tuple[str, str]]:
        return [(loc, medium) for loc, medium in self._media_repositories()]

    def prepare_backup(self, disks: list[DiskEntry], destination: str, name: str) -> Prepared:
        from rescue import services  # type: ignore[attr-defined]

        prepared = services.prepare_backup(disks[0].path, destination, name)
        lines = list(getattr(prepared, "summary_lines", lambda: [])())
        return Prepared("backup", lines, prepared)

    def run_backup(self, prepared: Prepared, sink: Sink, cancel: threading.Event) -> Outcome:
        from rescue import services  # type: ignore[attr-defined]

        report = services.run_backup(prepared.handle, sink, cancel)
        return Outcome(ok=True, image_id=str(getattr(report, "image_id", "")))

    # -- hot-plug --------------------------------------------------------------------
    def watch_media(self, on_change: Callable[[], None]) -> Callable[[], None]:
        """Call *on_change* (from a thread) when a disk or stick appears or goes."""
        try:
            import pyudev
        except ImportError:
            return lambda: None
        context = pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(context)
        monitor.filter_by("block")

        def handler(action: str, device: Any) -> None:
            if action in ("add", "remove", "change"):
                on_change()

        observer = pyudev.MonitorObserver(monitor, handler)
        observer.start()
        return observer.stop

    # -- machine actions -------------------------------------------------------------
    def apply_keymap(self, keymap: str) -> str:
        """Load *keymap* on a Linux console; elsewhere only record it."""
        if on_linux_console():
            self.runner.run(["loadkeys", keymap], what=f"Loading the keyboard layout {keymap}")
            return "applied"
        return "recorded"

    def power(self, action: str) -> None:
        if action not in ("reboot", "poweroff"):
            raise UsageError(f"Unknown power action {action!r}.")
        self.runner.run(["systemctl", action], what=f"systemctl {action}")

    def shell(self) -> None:
        shell = os.environ.get("SHELL") or shutil.which("bash") or "/bin/sh"
        subprocess.call([shell])

    def check_disk(self, disk: DiskEntry) -> list[str]:
        lines = []
        for part in _partitions_of(disk.path):
            result = self.runner.run(["fsck", "-n", part], check=False)
            status = "clean" if result.returncode == 0 else f"exit code {result.returncode}"
            lines.append(f"{part}: {status}")
        return lines or [f"{disk.path}: no partitions"]

    def save_logs(self, destination: str) -> str:
        dest = Path(destination)
        if not dest.is_dir():
            raise UsageError(f"{destination} is not a directory; mount the USB stick first.")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = dest / f"rescue-logs-{stamp}.txt"
        text = self.log_file.read_text() if self.log_file.exists() else ""
        journal = self.runner.run(["journalctl", "-b", "--no-pager", "-n", "2000"], check=False)
        target.write_text(text + "\n--- journal ---\n" + journal.stdout)
        return str(target)


def _partitions_of(disk: str) -> list[str]:
    name = Path(disk).name
    sysdir = Path("/sys/class/block") / name
    if not sysdir.is_dir():
        return []
    return sorted(
        f"/dev/{p.name}" for p in sysdir.iterdir() if (p / "partition").exists()
    )


def lsblk_disks(
    runner: CommandRunner, include_loop: bool, image: ImageEntry | None
) -> list[DiskEntry]:
    """Disks from lsblk (used until the device inventory lands in main)."""
    result = runner.run(
        ["lsblk", "-J", "-b", "-o", "NAME,PATH,TYPE,SIZE,MODEL,SERIAL,TRAN,FSTYPE,LABEL,"
         "MOUNTPOINT,RO"],
        what="Listing disks",
    )
    data = json.loads(result.stdout)
    image_dev = _device_of(image.location) if image else None
    boot_dev = _device_of("/run/live/medium") or _device_of("/")
    disks = []
    for dev in data.get("blockdevices", []):
        if dev.get("type") == "loop" and not include_loop:
            continue
        if dev.get("type") not in ("disk", "loop") or not int(dev.get("size") or 0):
            continue
        if dev.get("type") == "loop" and not dev.get("children") and not _loop_backed(dev):
            continue
        children = dev.get("children") or []
        parts = tuple(
            " ".join(
                x
                for x in (
                    c["name"],
                    c.get("fstype") or "",
                    f"'{c['label']}'" if c.get("label") else "",
                )
                if x
            )
            for c in children
        )
        paths = {dev["path"], *(c["path"] for c in children)}
        mounted = [c.get("mountpoint") for c in [dev, *children] if c.get("mountpoint")]
        reason = ""
        if boot_dev and boot_dev in paths:
            reason = "This is the disk the rescue system runs from."
        elif image_dev and image_dev in paths:
            reason = "This disk holds the system image."
        elif mounted:
            reason = f"A partition of this disk is mounted on {mounted[0]}."
        elif dev.get("ro"):
            reason = "This disk is read-only."
        disks.append(
            DiskEntry(
                path=dev["path"],
                name=dev["name"],
                model=(dev.get("model") or ("Loop device" if dev["type"] == "loop" else "")).strip(),
                serial=(dev.get("serial") or "").strip(),
                size_bytes=int(dev["size"]),
                transport=dev.get("tran") or "",
                eligible=not reason,
                reason=reason,
                partitions=parts,
                has_data=bool(children or dev.get("fstype")),
            )
        )
    return disks


def _loop_backed(dev: dict[str, Any]) -> bool:
    return Path(f"/sys/class/block/{dev['name']}/loop/backing_file").exists()


def _device_of(path: str) -> str | None:
    """The block device holding *path* (its partition's /dev node), if local."""
    if "://" in path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    sys_dev = Path(f"/sys/dev/block/{major}:{minor}")
    if not sys_dev.exists():
        return None
    return f"/dev/{sys_dev.resolve().name}"


def describe_error(exc: BaseException) -> str:
    """The sentence to show for *exc* (RescueError's own; others get a short line)."""
    if isinstance(exc, RescueError):
        return str(exc)
    return f"Unexpected error: {type(exc).__name__}: {exc}"
