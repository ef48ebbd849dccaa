"""What the wizard shows and asks, as plain data (no textual, no I/O).

Screens render these; :mod:`rescue.wizard.backend` builds them from the engine, the
device inventory and the image catalog.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rescue.i18n import format_size


@dataclass(frozen=True)
class Volume:
    disk: int
    number: int
    size_bytes: int
    filesystem: str
    label: str
    used_bytes: int | None = None


@dataclass(frozen=True)
class ImageEntry:
    id: str
    name: str
    computer: str
    created: datetime  # in the source's local time zone (aware)
    os_name: str
    data_bytes: int
    stored_bytes: int
    firmware: str
    location: str  # the repository (path or URL)
    medium: str = ""  # e.g. "USB stick SanDisk (sdb1)"; empty for added locations
    volumes: tuple[Volume, ...] = ()
    disk_bytes: int = 0  # size of the source disk(s), all together
    disk_sizes: tuple[int, ...] = ()  # each source disk's size, in the image's order
    shown: str = ""  # the location as shown, when it differs (a share, a web address)
    signature: str = ""  # "Signed by NAME (fingerprint)", "Not signed", ... ("": not checked)

    @property
    def disk_count(self) -> int:
        return max(1, len(self.disk_sizes))


@dataclass(frozen=True)
class DiskEntry:
    path: str  # /dev/sda
    name: str  # sda
    model: str
    serial: str
    size_bytes: int
    by_id: str = ""
    transport: str = ""
    eligible: bool = True
    reason: str = ""  # why not eligible, a sentence
    partitions: tuple[str, ...] = ()  # "sda1 ext4 'root' 20 GB" descriptions
    has_data: bool = False
    # what it holds beyond filesystems, each once, as (kind, detail) of
    # rescue.devices.notes: ("encrypted", "LUKS"), ("raid", "Linux md"); worded (and
    # translated) when drawn, by rescue.wizard.texts.storage_note_text
    notes: tuple[tuple[str, str], ...] = ()

    @property
    def title(self) -> str:
        return f"{self.model or self.name}".strip()

    def same_disk(self, other: DiskEntry) -> bool:
        """Whether *other* is this disk as seen again (after a hot-plug): same node,
        identity and size; what is on it may differ."""
        return (self.path, self.by_id, self.serial, self.model, self.size_bytes) == (
            other.path, other.by_id, other.serial, other.model, other.size_bytes)


@dataclass(frozen=True)
class LogMedium:
    """A writable filesystem on an attached disk that the logs can be saved on."""

    device: str  # /dev/sdb1 (or a whole disk holding a filesystem without a table)
    name: str  # sdb1
    fstype: str  # vfat, exfat, ext4, ntfs, xfs, btrfs ...
    label: str = ""
    uuid: str = ""
    transport: str = ""  # usb, sata, nvme, loop ...
    size_bytes: int = 0
    removable: bool = False
    mountpoint: str = ""  # already mounted read-write there ("": not mounted)

    @property
    def short(self) -> str:
        """``sdb1 'LABEL'``"""
        return f"{self.name} '{self.label}'" if self.label else self.name

    def title(self) -> str:
        """``sdb1 'LABEL' (vfat, usb, 14.9 GB)``, the size in the regional format."""
        return (f"{self.short} ({self.fstype}, {self.transport or 'disk'}, "
                f"{format_size(self.size_bytes)})")


@dataclass(frozen=True)
class FileEntry:
    """One row of "Browse files in a system image": a partition of the image (at the
    top) or a file or folder of its filesystem."""

    part: str  # the partition's name in the image: "p2" ("d2p1" with several disks)
    path: str  # inside that partition's filesystem: "" (its top), "home/anna"
    name: str  # what the row shows
    kind: str  # "part" | "dir" | "file" | "link" | "other"
    size: int = 0  # bytes (files, partitions)
    modified: datetime | None = None
    note: str = ""  # a partition that cannot be opened: why

    @property
    def opens(self) -> bool:
        """Enter opens it (a folder, or a partition whose filesystem is mounted)."""
        return self.kind == "dir" or (self.kind == "part" and not self.note)

    @property
    def key(self) -> tuple[str, str]:
        return (self.part, self.path)


@dataclass(frozen=True)
class OpenedImage:
    """An image mounted read-only for browsing; *handle* names it to the services."""

    handle: str
    image: ImageEntry
    partitions: tuple[FileEntry, ...]


@dataclass(frozen=True)
class CopyResult:
    """The end of a copy out of an image: a title and sentences for a dialog."""

    ok: bool
    lines: tuple[str, ...]
    files: int = 0
    bytes: int = 0
    failed: int = 0


@dataclass(frozen=True)
class VerdictView:
    """The hardware compatibility verdict as the wizard shows it (boot-critical vs other
    differences); :class:`rescue.hardware.compat.Verdict` is the engine's."""

    level: str  # "same" | "compatible" | "boot-critical"
    boot_critical: tuple[str, ...] = ()
    other: tuple[str, ...] = ()
    summary: str = ""


@dataclass
class RestoreChoices:
    """What the technician chose for a restore; the wizard's services turn it into
    :class:`rescue.plan.restore.RestoreOptions`."""

    repartition: bool = True  # the target gets the image's partition table (required)
    grow: bool = True  # the largest ext partition grows to fill a larger disk
    verify: bool = True
    force: bool = False  # restore although the hardware verdict says it will not start


@dataclass
class Prepared:
    """A prepared restore or backup: what the summary shows and what run_* needs."""

    kind: str  # "restore" | "backup"
    lines: list[str]
    handle: Any = None
    loses_data: bool = False
    total_bytes: int = 0  # bytes the whole run moves (for the overall bar); 0 if unknown
    # (title, bytes) of each volume in the order the data stage moves them; the progress
    # screen names the current volume from the stage's byte count.
    volumes: list[tuple[str, int]] = field(default_factory=list)
    signature: str = ""  # a restore: who signed the image ("Not signed", ...)


@dataclass
class Outcome:
    ok: bool
    cancelled: bool = False
    verified: bool | None = None  # None: not verified
    message: str = ""
    details: list[str] = field(default_factory=list)
    image_id: str = ""
    warnings: list[str] = field(default_factory=list)  # done, but something to know


@dataclass
class WizardState:
    """Every answer given so far (the wizard's single source of truth)."""

    language: str = "en"
    region: str = "en_US"
    keymap: str = "us"
    action: str = ""  # "restore" | "backup" | "browse"
    locations: list[str] = field(default_factory=list)
    image: ImageEntry | None = None
    use_latest: bool = True
    target: DiskEntry | None = None  # for the image's first (or only) disk
    other_targets: list[DiskEntry] = field(default_factory=list)  # its disks 2, 3, ...
    options: RestoreChoices = field(default_factory=RestoreChoices)
    verdict: VerdictView | None = None
    sources: list[DiskEntry] = field(default_factory=list)
    destination: str = ""
    backup_name: str = ""
    prepared: Prepared | None = None
    outcome: Outcome | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def targets(self) -> list[DiskEntry]:
        """The chosen target of each of the image's disks, in the image's order."""
        return ([self.target] if self.target else []) + list(self.other_targets)
