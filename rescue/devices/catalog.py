"""Find every image on every attached disk (and in explicitly given repositories).

Public API::

    with open_catalog(inventory, extra_repos=(), runner=None, sink=None) as catalog:
        catalog.images      # list[FoundImage], newest first; images[0].recommended
        catalog.skipped     # list[Skipped]: what was not searched, and why
        catalog.repositories  # repository paths found (usable while the block is open)
    discover_images(inventory, extra_repos=(), runner=None, sink=None) -> list[FoundImage]
    format_images(images) -> list[str]   # the table `rescue list` prints

Each filesystem of the inventory (partitions, and whole-disk filesystems) is searched for
repositories at its top and up to two directory levels down. Filesystems that are
already mounted are searched where they are; the others are mounted read-only in a
private directory (mode 0700, under /run when writable; :mod:`rescue.sysmount`) with the
options of :mod:`rescue.fs.registry`, which never write:
ext3/ext4 ``ro,noload``, xfs ``ro,norecovery,nouuid`` (a clone's twin may be attached),
btrfs ``ro,rescue=nologreplay``, NTFS through ntfs-3g ``ro``, others ``ro``. A filesystem
whose driver the running kernel has not loaded gets one ``modprobe`` of its module
(``fs-TYPE``, ``fuse`` for ntfs-3g); those it still cannot mount (e.g. vfat or iso9660 on a
kernel without them), swap, LVM, RAID members and encrypted volumes are skipped with a
logged reason. Leaving the ``with`` block unmounts everything
the catalog mounted and removes its directories, also after an error.

``discover_images`` returns the list after unmounting: its ``FoundImage.repo`` paths
point into mounts that are gone, but ``device`` + ``repo_subdir`` say where to find the
repository again (mount ``device`` read-only and use ``repo_subdir`` beneath it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rescue import sysmount
from rescue.devices.disks import raid_member_kind
from rescue.devices.inventory import Inventory
from rescue.errors import RescueError, UsageError
from rescue.events import LogMessage, Sink, human_bytes, null_sink
from rescue.fs import registry
from rescue.i18n import N_, _
from rescue.image.repository import Repository, RepositoryReader
from rescue.repo import FOLDER, Location, display, open_repository
from rescue.runner import CommandRunner

log = logging.getLogger(__name__)

SEARCH_DEPTH = 2
MAX_DIRS_PER_LEVEL = 256

_NOT_FILESYSTEMS = {
    "swap": N_("it is swap space"),
    "LVM2_member": N_("it is an LVM physical volume (activate LVM to search its volumes)"),
    "linux_raid_member": N_("it is a software RAID member (assemble the array to search it)"),
    "isw_raid_member": N_("it is an Intel RST RAID member (assemble the array to search it)"),
    "ddf_raid_member": N_("it is a DDF RAID member (assemble the array to search it)"),
    "crypto_LUKS": N_("it is encrypted (unlock it to search it)"),
    "BitLocker": N_("it is encrypted with BitLocker"),
}


@dataclass
class FoundImage:
    id: str
    name: str = ""
    created_utc: str = ""
    created_local: str = ""
    computer: str = ""
    os_name: str = ""
    firmware: str = ""
    data_bytes: int = 0
    stored_bytes: int = 0
    repo: str = ""  # repository path, valid while the catalog is open
    location: str = ""  # for people: "sdb1 'BACKUP' (ext4, usb): /rescue"
    device: str = ""  # "/dev/sdb1"; "" for an explicitly given repository
    fs_uuid: str = ""
    repo_subdir: str = ""  # repository path below the filesystem's top ("" = the top)
    recommended: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FoundImage:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Skipped:
    what: str  # "/dev/sdb1" or a path
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Source:
    device: str
    fstype: str
    label: str
    uuid: str
    transport: str
    mountpoints: list[str]
    name: str
    member_of: str = ""  # on a member of this assembled md array: searched there instead


@dataclass
class Catalog:
    images: list[FoundImage] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    repositories: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)  # private mountpoints we made

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": [i.to_dict() for i in self.images],
            "skipped": [s.to_dict() for s in self.skipped],
            "repositories": list(self.repositories),
        }


def kernel_filesystems(path: str = "/proc/filesystems") -> set[str]:
    try:
        text = Path(path).read_text()
    except OSError:
        return set()
    return {line.split()[-1] for line in text.splitlines() if line.strip()}


def _sources(inventory: Inventory) -> list[_Source]:
    out: list[_Source] = []
    for disk in inventory.disks:
        if disk.fstype and not disk.partitions:
            out.append(
                _Source(disk.path, disk.fstype, disk.label, disk.uuid, disk.transport,
                        list(disk.mountpoints), disk.name)
            )
        # a firmware-RAID (IMSM/DDF) member disk shows the volume's partitions too: they
        # are searched on the array, never through one member
        on_member = disk.member_of or (
            raid_member_kind(disk.fstype) and disk.fstype)
        for p in disk.partitions:
            out.append(
                _Source(p.path, p.fstype, p.label, p.uuid, disk.transport, list(p.mountpoints),
                        p.name, member_of=p.member_of or on_member)
            )
    return out


def _find_repositories(top: Path, depth: int = SEARCH_DEPTH) -> list[Path]:
    """Repositories at *top* and up to *depth* levels below, on the same filesystem."""

    try:
        top_dev = top.stat().st_dev
    except OSError:
        return []
    found: list[Path] = []
    level = [top]
    for d in range(depth + 1):
        nxt: list[Path] = []
        for directory in level:
            if Repository.is_repository(directory):
                found.append(directory)
                continue  # a repository's own subdirectories hold no repositories
            if d == depth:
                continue
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries[:MAX_DIRS_PER_LEVEL]:
                if entry.name.startswith(".") or entry.name == "lost+found":
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False) and entry.stat(
                        follow_symlinks=False
                    ).st_dev == top_dev:
                        nxt.append(Path(entry.path))
                except OSError:
                    continue
        level = nxt
    return found


def _images_of(repo: RepositoryReader, address: str,
               problems: list[str]) -> list[FoundImage]:
    # ImageSummary's fields carry the same names; from_dict drops the ones FoundImage lacks
    return [FoundImage.from_dict({**asdict(s), "repo": address})
            for s in repo.list_images(problems)]


@contextlib.contextmanager
def open_catalog(
    inventory: Inventory,
    extra_repos: Iterable[str] = (),
    runner: CommandRunner | None = None,
    sink: Sink | None = None,
    depth: int = SEARCH_DEPTH,
) -> Iterator[Catalog]:
    """Search everything (see the module docstring); unmount on leaving the block."""
    runner = runner or CommandRunner()
    sink = sink or null_sink
    catalog = Catalog()
    private: Path | None = None
    seen_repos: set[str] = set()

    def skip(what: str, reason: str) -> None:
        catalog.skipped.append(Skipped(what, reason))
        log.info("not searching %s: %s", what, reason)
        sink(LogMessage("info", f"Not searching {what}: {reason}."))

    def add_repo(path: Path | str, src: _Source | None, top: Path | None,
                 repo: RepositoryReader | None = None, shown: str = "") -> None:
        """The images of the repository at *path* (a folder, or the address *repo* was
        opened from; reopened from it later)."""
        local = repo.local_folder if repo is not None else str(path)
        real = os.path.realpath(local) if local is not None else str(path)
        if real in seen_repos:
            return
        seen_repos.add(real)
        path = local if local is not None else path  # a share: its folder, while mounted
        shown = shown or str(path)  # never a password
        problems: list[str] = []
        try:
            images = _images_of(repo or Repository.open(path), str(path), problems)
        except RescueError as exc:
            skip(shown, str(exc))
            return
        except OSError as exc:  # an unreadable filesystem must not end the whole search
            skip(shown, _("it could not be read ({error})").format(
                error=exc.strerror or exc))
            return
        for problem in problems:  # a damaged or forged image: said, the others shown
            skip(shown, problem)
        catalog.repositories.append(str(path))
        sub = ""
        if top is not None:
            rel = os.path.relpath(path, top)
            sub = "" if rel == "." else rel
        for img in images:
            if src is not None:
                label = f" '{src.label}'" if src.label else ""
                where = f"{src.name}{label} ({src.fstype}, {src.transport or 'disk'})"
                img.location = f"{where}: /{sub}"
                img.device, img.fs_uuid, img.repo_subdir = src.device, src.uuid, sub
            else:
                img.location = shown
            catalog.images.append(img)

    shares = contextlib.ExitStack()
    mounts = contextlib.ExitStack()  # closed first: the mounts, then the private root
    try:
        have = kernel_filesystems()
        tried: set[str] = set()  # filesystem modules modprobe was asked for
        for src in _sources(inventory):
            if src.member_of and src.fstype not in _NOT_FILESYSTEMS:
                skip(src.device, _("it is on a RAID member ({array}): the array is searched "
                                   "instead").format(array=src.member_of))
                continue
            if src.fstype in _NOT_FILESYSTEMS:
                skip(src.device, _(_NOT_FILESYSTEMS[src.fstype]))
                continue
            argv = registry.ro_mount_argv(src.fstype)
            if argv is None:
                skip(src.device, _("rescue does not search {fstype} filesystems").format(
                    fstype=src.fstype))
                continue
            if src.mountpoints:  # already mounted (e.g. the live medium): look in place
                top = Path(src.mountpoints[0])
                for repo in _find_repositories(top, depth):
                    add_repo(repo, src, top)
                continue
            kernel_fs = registry.kernel_filesystem(src.fstype)
            if kernel_fs not in have and kernel_fs not in tried:
                # Its driver may be a module nobody loaded yet (an installed system, a
                # live system without rescue's modules-load list): load it once and look
                # (by its fs-TYPE alias; fuse for a FUSE helper).
                tried.add(kernel_fs)
                runner.run(["modprobe", "-q", registry.kernel_module(src.fstype)],
                           check=False)
                have = kernel_filesystems()
            if kernel_fs not in have:
                skip(src.device, _("the running kernel cannot mount {fstype}").format(
                    fstype=src.fstype))
                continue
            if argv[0] == "ntfs-3g" and shutil.which("ntfs-3g") is None:
                skip(src.device, _("ntfs-3g is not installed"))
                continue
            if private is None:
                private = mounts.enter_context(sysmount.private_dir("catalog"))
            mp = private / src.name
            mp.mkdir(mode=0o700)
            mounts.callback(sysmount.remove_empty_dir, mp)
            try:
                # twin: a clone's source and target (same UUIDs) may both be attached
                mounts.enter_context(sysmount.mounted(
                    src.device, src.fstype, mode=sysmount.RO, twin=True, runner=runner,
                    where=mp))
            except sysmount.MountError as exc:
                skip(src.device, _("it could not be mounted read-only ({why})").format(
                    why=exc.detail or exc))
                continue
            catalog.mounts.append(str(mp))
            for repo in _find_repositories(mp, depth):
                add_repo(repo, src, mp)
        for extra in extra_repos:
            try:
                where = Location.parse(extra)
            except UsageError as exc:
                skip(display(extra), str(exc))
                continue
            if where.kind == FOLDER:
                if not Repository.is_repository(where.address):
                    skip(where.display, _("it is not a rescue repository"))
                    continue
                add_repo(where.address, None, None)
                continue
            try:  # a web server: read in place; a share: mounted read-only until the end
                reader = shares.enter_context(open_repository(where, runner=runner))
            except RescueError as exc:
                skip(where.display, str(exc))
                continue
            add_repo(where.address, None, None, reader, where.display)
        catalog.images.sort(key=lambda i: (i.created_utc, i.id), reverse=True)
        if catalog.images:
            catalog.images[0].recommended = True
        yield catalog
    finally:
        shares.close()
        try:
            mounts.close()  # unmounted in reverse order, their directories removed
        finally:
            catalog.mounts.clear()


def discover_images(
    inventory: Inventory,
    extra_repos: Iterable[str] = (),
    runner: CommandRunner | None = None,
    sink: Sink | None = None,
) -> list[FoundImage]:
    """Every image found, newest first (the first is recommended); mounts are gone when
    this returns (see the module docstring)."""
    with open_catalog(inventory, extra_repos, runner, sink) as catalog:
        return list(catalog.images)


def _when(img: FoundImage) -> str:
    """Creation date and time as the source machine's clock showed it."""
    text = img.created_local or img.created_utc
    return text.replace("T", " ")[:16] if text else "?"


def format_images(images: list[FoundImage],
                  notes: dict[tuple[str, str], str] | None = None) -> list[str]:
    """Lines for people: newest first, the recommended image marked; *notes* adds a line
    under an image (by its repository and id: who signed it)."""
    if not images:
        return ["No images found."]
    lines = []
    for img in images:
        mark = "*" if img.recommended else " "
        lines.append(
            f"{mark} {img.id}  {_when(img)}  {img.computer or '?'}  {img.os_name or '?'}"
            f"  {human_bytes(img.data_bytes)}"
        )
        lines.append(f"    {img.location}")
        if notes and (img.repo, img.id) in notes:
            lines.append(f"    {notes[img.repo, img.id]}")
    lines.append("* recommended (newest)")
    return lines
