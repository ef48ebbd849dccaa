"""The wizard's only door to the machine: every probe and every write goes through a
:class:`Services` object, called from worker threads (never from a screen's handlers).

:class:`EngineServices` is the real one: it adapts the engine facade (``rescue.services``),
the image repository, the device inventory and the hardware verdict to the plain data of
:mod:`rescue.wizard.model`. Power actions, the keymap and the shell go through an
injectable :class:`~rescue.runner.CommandRunner`, so tests never restart the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rescue import services as facade
from rescue import sysmount
from rescue.devices.catalog import FoundImage, open_catalog
from rescue.devices.disks import KIND_DISK, KIND_LOOP, Disk, Inventory
from rescue.devices.inroot import resolve_in_root
from rescue.devices.inventory import probe_inventory
from rescue.devices.monitor import DiskMonitor
from rescue.devices.mounts import current_mounts
from rescue.devices.notes import ENCRYPTED, LVM, StorageNote, storage_note
from rescue.errors import DeviceError, RescueError, UsageError
from rescue.events import LogMessage, Sink, StageStarted, human_bytes
from rescue.hardware.compat import BOOT_CRITICAL, Difference, compare
from rescue.hardware.profile import HardwareProfile, collect_profile
from rescue.i18n import _, format_size
from rescue.repo import FOLDER, Location
from rescue.repo.location import redact
from rescue.runner import CommandRunner
from rescue.wizard import logsave
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
from rescue.wizard.ports import WifiJoin, WifiNetwork, WifiStatus
from rescue.wizard.ports import describe_error as describe_error
from rescue.wizard.texts import storage_note_text

#: the wizard log (the restore report beside it): in a folder only root can enter, never a
#: name in /tmp another user could have prepared; passwords are taken out of every line
LOG_FILE = Path(os.environ.get("RESCUE_LOG", "/run/rescue/wizard.log"))


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
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, UTC)


class _Browsing:
    """An image open in the browse tool: its mount (and the repository) until closed."""

    def __init__(self, stack: contextlib.ExitStack, mount: Any, image: ImageEntry) -> None:
        self.stack, self.mount, self.image = stack, mount, image
        self.lock = threading.Lock()  # held while a copy reads from the image
        self.cancel = threading.Event()


class EngineServices:
    """The real services: engine facade, image catalog, device inventory, hardware verdict.

    *disk_filter* (a predicate on /dev paths) narrows which disks are searched for images
    and offered as targets or sources; the demo and the tests use it to stay on their own
    loop devices on a shared machine. *scan_media* turns the search of attached disks off
    (only the locations given are read).
    """

    def __init__(
        self,
        runner: CommandRunner | None = None,
        include_loop: bool = False,
        log_file: Path = LOG_FILE,
        disk_filter: Callable[[str], bool] | None = None,
        scan_media: bool = True,
        power_runner: CommandRunner | None = None,
        trusted_keys: Sequence[str] = (),
    ) -> None:
        self.runner = runner or CommandRunner()
        self.power_runner = power_runner or self.runner
        self.include_loop = include_loop
        self.log_file = log_file
        self.disk_filter = disk_filter
        self.scan_media = scan_media
        # --trust files and folders, besides /etc/rescue/trusted-keys (read at each use)
        self.trusted_keys = tuple(trusted_keys)
        self.report_file = log_file.with_name("rescue-restore-report.json")
        self._catalog: contextlib.ExitStack | None = None
        self._lock = threading.Lock()
        self._machines: dict[str, Any] = {}  # hardware profiles by target disk name
        self._problems: list[str] = []
        self._catalog_mounts: set[str] = set()  # the image search's read-only mounts
        # the last prepared restore or backup: it holds its repository open (a share
        # mounted) until it has run
        self._held: facade.PreparedRestore | facade.PreparedBackup | None = None
        self._browsing: dict[str, _Browsing] = {}  # images open in the browse tool

    def close(self) -> None:
        """Unmount the images open for browsing, then what the image search mounted
        (read-only; a browsed image is read from there)."""
        for handle in list(self._browsing):
            self._close_browsing(handle)
        with self._lock:
            if self._catalog is not None:
                self._catalog.close()
                self._catalog = None
            self._catalog_mounts = set()
        self._let_go()

    def _log(self, text: str) -> None:
        line = redact(f"{datetime.now(UTC).isoformat(timespec='seconds')} {text}\n")
        try:
            self.log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "a") as f:
                if os.fstat(fd).st_uid == os.geteuid():
                    os.fchmod(fd, 0o600)  # also a log an older rescue left readable
                f.write(line)
        except OSError:
            pass

    def _inventory(self, include_loop: bool,
                   repo_paths: list[str] | tuple[str, ...] = ()) -> Inventory:
        inv = probe_inventory(include_loop=include_loop, runner=self.runner,
                              repo_paths=repo_paths)
        inv.disks = [
            d for d in inv.disks
            if d.kind in (KIND_DISK, KIND_LOOP)
            and (self.disk_filter is None or self.disk_filter(d.path))
        ]
        return inv

    # -- images ----------------------------------------------------------------------
    def find_images(self, locations: list[str], media: bool = True) -> list[ImageEntry]:
        """The images of *locations* and (*media*, unless the search of attached disks
        is off) of every attached disk, each mounted read-only for the search."""
        wheres = [Location.parse(loc) for loc in locations]  # a UsageError names a typo
        inv = (self._inventory(self.include_loop) if self.scan_media and media
               else Inventory())
        with self._lock:
            if self._catalog is not None:
                self._catalog.close()
            stack = contextlib.ExitStack()
            try:
                catalog = stack.enter_context(open_catalog(inv, locations, self.runner))
            except BaseException:
                stack.close()
                raise
            self._catalog = stack
            self._catalog_mounts = set(catalog.mounts)
        self._problems = []
        asked = {where.display for where in wheres}
        for skipped in catalog.skipped:
            self._log(f"not searched: {skipped.what}: {skipped.reason}")
            if skipped.what in asked:  # the technician asked for this one: say why
                self._problems.append(_("{location}: {reason}").format(
                    location=skipped.what, reason=skipped.reason))
        missing = [where.display for where in wheres
                   if where.display not in {s.what for s in catalog.skipped}
                   and where.kind == FOLDER and not os.path.isdir(where.address)]
        if missing:
            self._log(f"locations not found: {missing}")
        entries = [self._entry(found) for found in catalog.images]
        entries.sort(key=lambda i: (i.computer.lower(), -i.created.timestamp()))
        return entries

    def search_problems(self) -> list[str]:
        """Why a location the technician added gave no images (last search)."""
        return list(self._problems)

    def _entry(self, found: FoundImage) -> ImageEntry:
        with facade.open_repository(found.repo, runner=self.runner) as repo:
            manifest = repo.load_manifest(found.id)
            try:
                signature = facade.image_signature(
                    repo, found.id, facade.trust_store(self.trusted_keys)).text()
            except RescueError as exc:  # a trusted key that cannot be read: said at prepare
                signature = str(exc)
        volumes = tuple(
            Volume(
                disk=di,
                number=p.number,
                size_bytes=p.size_bytes(d.logical_sector_size),
                filesystem=p.filesystem or "",
                label=p.fs_label or "",
                used_bytes=p.used_bytes,
            )
            for di, d in enumerate(manifest.disks)
            for p in d.partitions
            if p.kind != "extended"
        )
        return ImageEntry(
            id=found.id,
            name=found.name,
            computer=found.computer,
            created=_aware(found.created_local or found.created_utc),
            os_name=found.os_name,
            data_bytes=found.data_bytes,
            stored_bytes=found.stored_bytes,
            firmware=found.firmware,
            location=found.repo,
            medium=found.location if found.device else "",
            volumes=volumes,
            disk_bytes=sum(d.size_bytes for d in manifest.disks),
            disk_sizes=tuple(d.size_bytes for d in manifest.disks),
            shown=found.location if not found.device and found.location != found.repo else "",
            signature=signature,
        )

    # -- disks -----------------------------------------------------------------------
    def list_disks(self, image: ImageEntry | None, purpose: str) -> list[DiskEntry]:
        # a repository in a folder here: the disk holding it is no target
        local = image is not None and Location.parse(image.location).kind == FOLDER
        inv = self._inventory(self.include_loop, [image.location] if image and local else [])
        return [_disk_entry(d, lambda node: facade.lvm_volume_group(node, self.runner))
                for d in inv.disks]

    def shrink_note(self, image: ImageEntry, disk: DiskEntry, disk_index: int = 0) -> str:
        """What restoring *image* onto *disk*, smaller than the image's disk, will do, as
        sentences ("" when the layout fits as it is). Raises TargetTooSmallError when
        even shrinking does not make it fit."""
        shrinks = facade.shrink_preview(image.location, image.id, disk.path, disk_index,
                                        self.runner)
        return "\n".join(_(
            "Partition {number} ({fstype}) shrinks from {old} to {new}: it is made anew with "
            "the same UUID and label and its files are copied one by one, which takes "
            "longer than a block copy.").format(
                number=s.number, fstype=s.filesystem, old=format_size(s.old_bytes),
                new=format_size(s.new_bytes)) for s in shrinks)

    def compatibility(self, image: ImageEntry, disk: DiskEntry | None = None) -> VerdictView:
        """The verdict for restoring *image* here (onto *disk*: its bus and driver count)."""
        with facade.open_repository(image.location, runner=self.runner) as repo:
            manifest = repo.load_manifest(image.id)
        if not manifest.hardware:
            return VerdictView("unknown", summary=_("The image records no hardware profile."))
        key = disk.name if disk is not None else ""
        if key not in self._machines:
            self._machines[key] = collect_profile(boot_disk=key or None)
        verdict = compare(HardwareProfile.from_dict(manifest.hardware), self._machines[key])
        self._log("hardware verdict: " + json.dumps(verdict.to_dict()))

        def line(d: Difference) -> str:
            return f"{d.component}: {d.source or '-'} -> {d.target or '-'}. {d.action}"

        critical = tuple(line(d) for d in verdict.differences if d.klass == BOOT_CRITICAL)
        other = tuple(f"{d.component}: {d.target or d.source}" for d in verdict.differences
                      if d.klass != BOOT_CRITICAL)
        level = verdict.level if verdict.differences else "same"
        return VerdictView(level, critical, other)

    # -- restore / backup ------------------------------------------------------------
    def prepare_restore(
        self, image: ImageEntry, disk: DiskEntry, options: RestoreChoices,
        others: Sequence[DiskEntry] = (),
    ) -> Prepared:
        self._let_go()
        prepared = facade.prepare_restore(
            image.location, image.id, [disk.path, *(d.path for d in others)],
            facade.RestoreOptions(grow=options.grow, verify=options.verify,
                                  force=options.force),
            self.runner, facade.trust_store(self.trusted_keys),
        )
        self._held = prepared  # the repository stays open until the restore has run
        self._log("restore plan: " + json.dumps(prepared.to_dict()))
        total = prepared.data_bytes * (2 if options.verify else 1)
        volumes: list[tuple[str, int]] = []
        # the order the engine writes them: the image's disks 2, 3, ... then disk 1
        for plan in prepared.plans[1:] + prepared.plans[:1]:
            which = f"{plan.target.path} " if len(prepared.plans) > 1 else ""
            boot = plan.data_bytes - sum(p.data_bytes for p in plan.partitions)
            if boot > 0:
                volumes.append((f"{which}boot areas", boot))
            for p in sorted(plan.partitions, key=lambda p: p.start):
                if p.data_bytes:
                    label = f" '{p.fs_label}'" if p.fs_label else ""
                    volumes.append((f"{which}{p.number}: {p.filesystem or p.kind}{label}",
                                    p.data_bytes))
        self._log(f"signature: {prepared.signature.text()}")
        return Prepared("restore", prepared.summary_lines(), prepared,
                        prepared.erases_data, total, volumes,
                        signature=prepared.signature.text())

    def run_restore(self, prepared: Prepared, sink: Sink, cancel: threading.Event) -> Outcome:
        self._log(f"restore started: {prepared.lines[0] if prepared.lines else ''}")
        try:
            report = facade.run_restore(prepared.handle, _logging_sink(sink, self._log),
                                        cancel, self.runner,
                                        report_path=str(self.report_file))
        except Exception as exc:
            self._log(f"restore ended: {describe_error(exc)}")
            raise
        finally:
            self._let_go()
        self._log("restore report: " + report.to_json())
        details = [f"{human_bytes(report.bytes_written)} written in {report.elapsed:.0f} s"]
        return Outcome(ok=report.result == "ok", verified=report.verified, details=details,
                       image_id=report.image_id, warnings=list(report.warnings))

    def backup_destinations(self) -> list[tuple[str, str]]:
        inv = self._inventory(self.include_loop)
        found = []
        for disk in inv.disks:
            if "boot-medium" in disk.roles:
                continue
            for part in disk.partitions:
                for mp in part.mountpoints:
                    # The image search's own read-only mounts are no destination.
                    if not part.read_only and "rescue-catalog-" not in mp:
                        label = f" '{part.label}'" if part.label else ""
                        found.append((mp, f"{part.name}{label} ({part.fstype}, "
                                          f"{disk.transport or disk.kind})"))
        return found

    def prepare_backup(self, disks: list[DiskEntry], destination: str, name: str,
                       break_lock: bool = False) -> Prepared:
        """*break_lock*: the technician confirmed that the writer holding the
        repository's lock is gone."""
        if not disks:
            raise UsageError(_("Choose a disk to back up."))
        self._let_go()
        if break_lock:
            self._log(f"breaking the writer lock of {destination}, as the technician asked")
        # an SMB/NFS destination stays mounted (read-write) until the backup has run
        prepared = facade.prepare_backup([d.path for d in disks], destination,
                                         facade.BackupOptions(name=name), self.runner,
                                         break_lock)
        self._held = prepared
        return Prepared("backup", list(prepared.summary_lines()), prepared,
                        total_bytes=prepared.total_bytes)

    def _let_go(self) -> None:
        """Close the repository the last prepared restore or backup holds open."""
        if self._held is not None:
            self._held.close()
            self._held = None

    def run_backup(self, prepared: Prepared, sink: Sink, cancel: threading.Event) -> Outcome:
        try:
            result = facade.run_backup(prepared.handle, _logging_sink(sink, self._log),
                                       cancel)
        finally:
            self._let_go()
        m = result.manifest
        self._log(f"backup written: image {m.id}")
        return Outcome(ok=True, image_id=m.id, details=[
            f"{human_bytes(m.data_bytes)} of data; {human_bytes(result.new_stored_bytes)} "
            f"new in the repository; {human_bytes(result.reused_bytes)} reused"])

    # -- hot-plug --------------------------------------------------------------------
    def watch_media(self, on_change: Callable[[], None]) -> Callable[[], None]:
        """Call *on_change* (from the monitor's thread) when disks come or go."""
        monitor = DiskMonitor(lambda events: on_change(), include_loop=self.include_loop)
        try:
            monitor.start()
        except Exception as exc:  # noqa: BLE001 - no netlink: the list just stays put
            self._log(f"hot-plug monitor unavailable: {exc}")
            return lambda: None
        return monitor.stop

    # -- machine actions -------------------------------------------------------------
    def apply_keymap(self, keymap: str) -> str:
        """Load *keymap* on a Linux console; elsewhere only record it."""
        self._log(f"keyboard layout: {keymap}")
        if on_linux_console():
            self.runner.run(["loadkeys", keymap], what=f"Loading the keyboard layout {keymap}")
            return "applied"
        return "recorded"

    def power(self, action: str) -> None:
        if action not in ("reboot", "poweroff"):
            raise UsageError(f"Unknown power action {action!r}.")
        self._log(f"power: {action}")
        self.power_runner.run(["systemctl", action], what=f"systemctl {action}")

    def shell(self) -> None:
        shell = os.environ.get("SHELL") or shutil.which("bash") or "/bin/sh"
        subprocess.call([shell])

    # -- Wi-Fi (WifiServices): the passphrase is handed on, never logged ------------------
    wifi: facade.Wifi | None = None  # None: made with this runner at first use

    def _wifi(self) -> facade.Wifi:
        if self.wifi is None:
            self.wifi = facade.wifi(self.runner)
        return self.wifi

    def wifi_interfaces(self) -> list[str]:
        return self._wifi().interfaces()

    def wifi_status(self, interface: str) -> WifiStatus:
        return self._wifi().status(interface)

    def wifi_scan(self, interface: str) -> list[WifiNetwork]:
        networks = self._wifi().scan(interface)
        self._log(f"Wi-Fi: {interface}: {len(networks)} network(s) found")
        return networks

    def wifi_join(self, interface: str, ssid: bytes, passphrase: str | None) -> WifiJoin:
        name = facade.show_ssid(ssid)
        self._log(f"Wi-Fi: {interface}: joining {name}"
                  + (" with a passphrase" if passphrase else " (open network)"))
        try:
            result = self._wifi().join(interface, ssid, passphrase)
        except Exception as exc:
            self._log(f"Wi-Fi: {interface}: {name} not joined: {describe_error(exc)}")
            raise
        self._log(f"Wi-Fi: {result.message}")
        return result

    def check_disk(self, disk: DiskEntry) -> list[str]:
        lines = []
        for part in _partitions_of(disk.path):
            result = self.runner.run(["fsck", "-n", part], check=False)
            status = "clean" if result.returncode == 0 else (
                f"problems found (fsck exit code {result.returncode})")
            lines.append(f"{part}: {status}")
        return lines or [f"{disk.path}: no partitions"]

    def log_media(self, exclude: list[str]) -> list[LogMedium]:
        """Probe: the writable filesystems the logs can be saved on, USB sticks first
        (never the boot medium, the image search's read-only mounts, or *exclude*: the
        restore target's disks)."""
        inv = self._inventory(self.include_loop)
        return logsave.writable_media(inv, exclude, logsave.rw_mountpoints(current_mounts()),
                                      releasable=self._catalog_mounts)

    def save_logs(self, destination: LogMedium | str) -> str:
        """Write ``rescue-logs-<UTC stamp>.txt`` (wizard log, restore report, journal,
        kernel messages, disks, hardware) onto *destination*: a filesystem from
        :meth:`log_media` (mounted read-write in a private directory under /run and
        unmounted again, unless it was mounted read-write already) or a folder. Returns
        the sentence to show."""
        now = datetime.now(UTC)
        if not isinstance(destination, str) and any(
                os.path.basename(m) == destination.name for m in self._catalog_mounts):
            # The stick holds the images too and the image search has it mounted
            # read-only: let go of the search's mounts (no restore is reading from them
            # when logs are saved); the next image search mounts again.
            self._log(f"releasing the image search's mounts to save logs on "
                      f"{destination.device}")
            self.close()
        try:
            inv: Any = probe_inventory(include_loop=self.include_loop, runner=self.runner)
        except Exception as exc:  # noqa: BLE001 - the logs say so instead
            inv = exc
        text = logsave.gather(self.runner, self.log_file, self.report_file, inv)
        if isinstance(destination, str):
            folder = Path(destination)
            if not folder.is_dir():
                raise UsageError(_("{folder} is not a folder; type the folder of a mounted "
                                   "disk or USB stick.").format(folder=destination))
            path = logsave.write_logs(folder, text, now, str(folder))
            self._log(f"logs saved: {path}")
            return _("Logs saved to {path}.").format(path=path)
        if isinstance(inv, BaseException):
            raise DeviceError(_("The disks could not be listed ({error}); the logs were not "
                                "saved.").format(error=inv))
        medium = logsave.recheck(destination, inv, logsave.rw_mountpoints(current_mounts()))
        with logsave.mounted_rw(medium, self.runner) as folder:
            path = logsave.write_logs(folder, text, now, medium.short)
        self._log(f"logs saved: {medium.device} {path.name}")
        if medium.mountpoint:
            return _("Logs saved to {medium} (mounted on {mountpoint}) as {file}.").format(
                medium=medium.short, mountpoint=medium.mountpoint, file=path.name)
        return _("Logs saved to {medium} as {file}; you can remove the stick.").format(
            medium=medium.short, file=path.name)

    # -- browse files in a system image ------------------------------------------------
    def open_image(self, image: ImageEntry) -> OpenedImage:
        """Mount *image* read-only in a private folder (``/run/rescue-browse-*``): its
        partitions as files, each readable filesystem mounted; until :meth:`close_image`
        (or :meth:`close`, when the wizard ends)."""
        stack = contextlib.ExitStack()
        try:
            repo, manifest = stack.enter_context(facade.opened_image(
                image.location, image.id, self.runner,
                facade.trust_store(self.trusted_keys)))
            top = stack.enter_context(sysmount.private_dir("browse"))
            # libfuse's daemonize moves the whole process to / (right for `rescue mount`,
            # which serves in the background); the wizard keeps its working folder
            cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                mount = stack.enter_context(facade.ImageMount(repo, manifest, top,
                                                              self.runner))
            finally:
                with contextlib.suppress(OSError):
                    os.fchdir(cwd)
                os.close(cwd)
        except BaseException:
            stack.close()
            raise
        handle = f"{image.id}@{top}"
        self._browsing[handle] = _Browsing(stack, mount, image)
        labels = {(v.disk + 1, v.number): v.label for v in image.volumes}
        parts = []
        for view in mount.views:
            label = labels.get((view.disk, view.number), "")
            name = " ".join(x for x in (f"{view.name}:", view.fstype or "?",
                                        f"'{label}'" if label else "") if x)
            parts.append(FileEntry(view.name, "", name, "part", view.size,
                                   note="" if view.mounted else view.note))
        self._log(f"browse: image {image.id} mounted read-only on {top}: " + ", ".join(
            f"{v.name} {v.mounted or v.note}" for v in mount.views))
        return OpenedImage(handle, image, tuple(parts))

    def _session(self, opened: OpenedImage) -> _Browsing:
        session = self._browsing.get(opened.handle)
        if session is None or not session.mount.alive:
            raise DeviceError(_("The image is not open any more; open it again from the "
                                "repair options."))
        return session

    def _source(self, session: _Browsing, part: str, path: str) -> str:
        """The real path of *path* in partition *part*, no symbolic link on the way."""
        view = next((v for v in session.mount.views if v.name == part and v.mounted), None)
        names = [n for n in path.split("/") if n]
        if view is None or view.mounted is None or any(n in (".", "..") for n in names):
            raise UsageError(_("{path} is not in this image.").format(path=f"{part}/{path}"))
        plain = os.path.join(view.mounted, *names)
        found = resolve_in_root(view.mounted, path, follow_last=False)
        if found is None or str(found) != plain.rstrip("/"):
            raise UsageError(_("{path} is not in this image.").format(path=f"{part}/{path}"))
        return plain

    def list_folder(self, opened: OpenedImage, part: str, path: str) -> list[FileEntry]:
        """The folder *path* of partition *part* (folders first, then by name); links
        are shown, never followed."""
        folder = self._source(self._session(opened), part, path)
        entries = []
        try:
            with os.scandir(folder) as it:
                for item in it:
                    try:
                        info = item.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    mode = info.st_mode
                    kind = ("dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode)
                            else "link" if stat.S_ISLNK(mode) else "other")
                    entries.append(FileEntry(
                        part, "/".join(x for x in (path.strip("/"), item.name) if x),
                        item.name, kind, info.st_size if kind == "file" else 0,
                        datetime.fromtimestamp(info.st_mtime, UTC).astimezone()))
        except OSError as exc:
            raise DeviceError(_("The folder {path} of the image cannot be read: {why}"
                                ).format(path=f"{part}/{path}", why=exc.strerror)) from exc
        entries.sort(key=lambda e: (e.kind != "dir", e.name.casefold(), e.name))
        return entries

    def copy_media(self, exclude: list[str]) -> list[LogMedium]:
        """The writable filesystems files can be copied to: as for the logs, except
        that the image search's read-only mounts are kept (a browsed image is read
        from one of them), so those sticks are not offered."""
        inv = self._inventory(self.include_loop)
        return logsave.writable_media(inv, exclude, logsave.rw_mountpoints(current_mounts()))

    def copy_files(self, opened: OpenedImage, marked: Sequence[FileEntry],
                   destination: LogMedium | str, progress: Callable[[int, int], None],
                   cancel: threading.Event) -> CopyResult:
        """Copy the *marked* files and folders into ``rescue-files-<image id>/<partition>/
        <path>`` on *destination* (a filesystem from :meth:`copy_media`, mounted
        read-write for the copy and unmounted after, or a folder), metadata kept where
        its filesystem allows. Returns the sentences to show."""
        session = self._session(opened)
        if not marked:
            raise UsageError(_("Mark files or folders with Space first."))
        with session.lock:
            session.cancel = cancel
            sources = [(self._source(session, e.part, e.path), e) for e in marked]
            if isinstance(destination, str):
                folder = Path(destination)
                if not folder.is_dir():
                    raise UsageError(_("{folder} is not a folder; type the folder of a "
                                       "mounted disk or USB stick.").format(folder=destination))
                if any(os.path.realpath(folder) == p or os.path.realpath(folder).startswith(
                        p.rstrip("/") + "/") for p in self._browse_tops()):
                    raise UsageError(_("{folder} is inside the image, which is read-only; "
                                       "choose another folder.").format(folder=destination))
                report = self._copy(session, sources, folder, progress, cancel)
                os.sync()
                return self._copy_result(opened, report, str(folder), "", removable=False)
            inv = self._inventory(self.include_loop)
            medium = logsave.recheck(destination, inv,
                                     logsave.rw_mountpoints(current_mounts()), files=True)
            with logsave.mounted_rw(medium, self.runner, files=True) as folder:
                report = self._copy(session, sources, folder, progress, cancel)
                os.sync()
            return self._copy_result(opened, report, medium.short, medium.fstype,
                                     removable=not medium.mountpoint)

    def _browse_tops(self) -> list[str]:
        return [os.path.realpath(s.mount.where) for s in self._browsing.values()]

    def _copy(self, session: _Browsing, sources: list[tuple[str, FileEntry]], folder: Path,
              progress: Callable[[int, int], None],
              cancel: threading.Event) -> facade.CopyReport:
        top = folder / f"rescue-files-{session.image.id}"
        pairs = [(src, str(top.joinpath(e.part, *[n for n in e.path.split("/") if n])))
                 for src, e in sources]
        self._log(f"browse: copying {[f'{e.part}/{e.path}' for _s, e in sources]} to {top}")
        report = facade.copy_out(pairs, progress, cancel)
        self._log(f"browse: copied {report.files} files, {report.folders} folders, "
                  f"{report.bytes} bytes; {report.failures} failed; not kept: "
                  f"{sorted(report.not_kept)}; stopped: {report.stopped or 'no'}")
        return report

    def _copy_result(self, opened: OpenedImage, report: facade.CopyReport, where: str,
                     fstype: str, removable: bool) -> CopyResult:
        folder = f"rescue-files-{opened.image.id}"
        lines = [_("Copied to {where}, in the folder {folder}: {files} file(s), "
                   "{folders} folder(s), {size}.").format(
                       where=where, folder=folder, files=report.files,
                       folders=report.folders, size=format_size(report.bytes))]
        names = {
            "owners": _("owners"), "permissions": _("permissions"),
            "extended attributes": _("extended attributes"),
            "symbolic links": _("symbolic links"), "device nodes": _("device nodes"),
        }
        if report.not_kept:
            kept = ", ".join(names.get(n, n) for n in sorted(report.not_kept))
            lines.append(_("The filesystem there ({fstype}) cannot keep {what}; the files "
                           "were copied without them.").format(
                               fstype=fstype or _("unknown"), what=kept))
        if report.failures:
            lines.append(_("{count} could not be copied:").format(count=report.failures))
            lines += [f"  {line}" for line in report.failed]
            if report.failures > len(report.failed):
                lines.append("  …")
        if report.stopped:
            lines.append(_("The copy stopped: {why}. What was copied stays there.").format(
                why=report.stopped))
        elif removable:
            lines.append(_("You can remove the stick."))
        ok = not report.failures and not report.stopped
        return CopyResult(ok, tuple(lines), report.files, report.bytes, report.failures)

    def close_image(self, opened: OpenedImage) -> None:
        """Unmount the image opened by :meth:`open_image` (a copy running from it is
        cancelled first)."""
        self._close_browsing(opened.handle)

    def _close_browsing(self, handle: str) -> None:
        session = self._browsing.pop(handle, None)
        if session is None:
            return
        session.cancel.set()
        got = session.lock.acquire(timeout=60)
        try:
            session.stack.close()
        finally:
            if got:
                session.lock.release()
        self._log(f"browse: image {session.image.id} unmounted")


def _logging_sink(sink: Sink, log: Callable[[str], None]) -> Sink:
    def forward(event: Any) -> None:
        if isinstance(event, LogMessage | StageStarted):
            log(str(getattr(event, "text", "") or getattr(event, "title", "")))
        sink(event)

    return forward


def _row_suffix(note: StorageNote | None) -> str:
    """What a partition row adds: " (encrypted: LUKS)", " (LVM volume group vg0: root)"
    (worded as in the target list; RAID membership and an unread LVM volume add nothing)."""
    if note is not None and (note.kind == ENCRYPTED or (note.kind == LVM and note.detail)):
        return f" ({storage_note_text(note.kind, note.detail)})"
    return ""


def _disk_entry(d: Disk, describe_pv: Callable[[str], str] | None = None) -> DiskEntry:
    rows: list[str] = []
    notes: list[tuple[str, str]] = []
    devices = [(p.path, p.fstype, p.member_of,
                " ".join(x for x in (p.name, p.fstype, f"'{p.label}'" if p.label else "",
                                     human_bytes(p.size)) if x))
               for p in d.partitions]
    if not devices and d.fstype:
        devices = [(d.path, d.fstype, d.member_of, f"{d.name} {d.fstype}")]
    for node, fstype, member_of, row in devices:
        note = storage_note(node, fstype, member_of, describe_pv)
        rows.append(row + _row_suffix(note))
        if note is not None and (note.kind, note.detail) not in notes:
            notes.append((note.kind, note.detail))
    model = " ".join(x for x in (d.vendor, d.model) if x) or (
        "Loop device" if d.kind == "loop" else "")
    return DiskEntry(
        path=d.path,
        name=d.name,
        model=model,
        serial=d.serial,
        size_bytes=d.size,
        by_id=d.by_id,
        transport=d.transport,
        eligible=d.eligible,
        reason="; ".join(d.ineligible_reasons),
        partitions=tuple(rows),
        notes=tuple(notes),
        has_data=bool(d.partitions or d.table_type or d.fstype),
    )


def _partitions_of(disk: str) -> list[str]:
    name = Path(disk).name
    sysdir = Path("/sys/class/block") / name
    if not sysdir.is_dir():
        return []
    return sorted(f"/dev/{p.name}" for p in sysdir.iterdir() if (p / "partition").exists())
