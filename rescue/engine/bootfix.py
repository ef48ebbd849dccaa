"""Boot fix-ups: run the steps ``rescue.plan.fixups.plan_fixups`` chose, on a restored disk.

Called by the restore executor after the data is written, the partition table re-read
and the filesystems grown. Every external command goes through ``ctx.runner``; progress
and findings go to ``ctx.sink``; each step ends in a :class:`FixupResult` (done, skipped
or failed, with a sentence) for the restore report. A failing step does not stop the
others: the report says honestly what was and was not done.

The ESP is read and written with mtools (no vfat mount needed). The restored root is
mounted once (read-write) in a private directory, with /dev, /proc, /sys and /run bound
into it for the chroot that rebuilds the initramfs; everything is unmounted at the end.
The root may be a partition, a btrfs subvolume (mounted with ``subvol=``) or a linear LVM
logical volume (opened through a loop device at its offset in the PV, detached at the end:
no device-mapper needed); fstab entries naming an LV (/dev/mapper/VG-LV, /dev/VG/LV, its
filesystem's UUID) resolve to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rescue import sysmount
from rescue.devices.blockdev import blkid_probe
from rescue.devices.blockdev import parse_blkid_export as parse_export
from rescue.devices.inroot import in_root
from rescue.devices.sysinfo import BTRFS_TOP_LEVEL, btrfs_root_candidates
from rescue.errors import ExternalCommandError, RescueError
from rescue.events import LogMessage, Sink, StageFinished, StageStarted, null_sink
from rescue.fs import registry
from rescue.fs.lvm import LVM_PV, lv_loop, read_linear_lvs
from rescue.i18n import _
from rescue.image.manifest import Manifest
from rescue.plan.fixups import FixupStep, module_name
from rescue.runner import CommandRunner

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
FALLBACK = "/EFI/BOOT/BOOTX64.EFI"
CHROOT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


@dataclass
class FixupResult:
    name: str
    status: str  # "done" | "skipped" | "failed"
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class FixupContext:
    disk: str  # the target whole-disk node, e.g. /dev/nvme0n1
    partitions: dict[int, str]  # partition number -> node on the target
    manifest: Manifest
    firmware: str  # "uefi" | "bios": how the machine running the restore booted
    storage_drivers: list[str] = field(default_factory=list)
    runner: CommandRunner = field(default_factory=CommandRunner)
    sink: Sink = null_sink
    efivars: str = "/sys/firmware/efi/efivars"  # present only when booted via UEFI
    workdir: str | None = None  # where to mount the restored root (a temp dir if None)
    # GPT partition GUIDs the target disk had before it was overwritten: boot entries that
    # point at them lead nowhere now and are removed as stale too.
    previous_partuuids: list[str] = field(default_factory=list)
    disk_index: int = 0  # which disk of the image is on *disk*


class NothingToFix(RescueError):
    """The step does not apply to this image (e.g. no bootable Linux root on it)."""


class StepFailed(RescueError):
    """A fix-up could not do its job; the sentence goes into the restore report."""


# --------------------------------------------------------------------------- entry point


def run_fixups(ctx: FixupContext, steps: list[FixupStep]) -> list[FixupResult]:
    """Run *steps* in order on the restored disk; never raises for a failed step."""
    results: list[FixupResult] = []
    with _Session(ctx) as session:
        for step in steps:
            results.append(_run_one(session, step))
    return results


def _run_one(session: _Session, step: FixupStep) -> FixupResult:
    ctx = session.ctx
    stage = f"fixup-{step.name}"
    ctx.sink(StageStarted(stage, step.display_title))
    started = time.monotonic()
    if step.skip:
        result = FixupResult(step.name, SKIPPED, _("Skipped by option; nothing was changed."))
    else:
        handler = HANDLERS.get(step.name)
        if handler is None:
            result = FixupResult(step.name, FAILED, _("Unknown boot fix-up '{name}'.").format(
                name=step.name))
        else:
            try:
                result = handler(session, step)
            except NothingToFix as exc:
                result = FixupResult(step.name, SKIPPED, str(exc))
            except RescueError as exc:
                result = FixupResult(step.name, FAILED, str(exc))
            except OSError as exc:
                result = FixupResult(step.name, FAILED, f"{exc.strerror or exc}: {exc.filename}")
    level = "error" if result.status == FAILED else "info"
    ctx.sink(LogMessage(level, f"{step.name}: {result.status} - {result.detail}"))
    ctx.sink(StageFinished(stage, time.monotonic() - started))
    return result


# --------------------------------------------------------------------------- session


class _Session:
    """Shared state of one fix-up run: the mounted restored root, cleaned up at the end."""

    def __init__(self, ctx: FixupContext) -> None:
        self.ctx = ctx
        self.run = ctx.runner.run
        self._stack = contextlib.ExitStack()
        self._root: Path | None = None
        self._root_number: int | None = None
        self._tmp: str | None = None
        self._binds = False
        self._lvs: dict[int, list[_LogicalVolume]] = {}
        self.root_on_lvm = False  # the mounted root is an LVM logical volume

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # -- the restored root ------------------------------------------------------------

    def workdir(self) -> Path:
        if self._tmp is None:
            base = self.ctx.workdir
            if base:
                Path(base).mkdir(parents=True, exist_ok=True)
            self._tmp = tempfile.mkdtemp(prefix="rescue-fixup-", dir=base)
            self._stack.callback(_rmdir_quiet, self._tmp)
        return Path(self._tmp)

    def root(self, candidates: list[int]) -> Path:
        """Mount the restored root filesystem (the first candidate holding /etc/fstab and
        an init) and, when fstab names one, its separate /boot.

        A candidate is a partition holding the root itself, a btrfs filesystem holding it
        in a subvolume (the default subvolume, ``root``, ``@``, the top level, then any
        other: the subvolume is mounted with ``subvol=``), or an LVM physical volume holding
        it in a linear logical volume (opened through a loop device at the LV's offset in
        the PV: no device-mapper is needed)."""
        if self._root is not None:
            return self._root
        mnt = self.workdir() / "root"
        mnt.mkdir(exist_ok=True)
        tried = []
        for number in candidates:
            node = self.ctx.partitions.get(number)
            if not node:
                continue
            tried.append(node)
            volumes = [(node, node)]
            if _blkid_type(self, node) == LVM_PV:
                volumes = [(lv.dev, f"{lv.vg}/{lv.name}") for lv in self.lvs(number) if lv.dev]
            for dev, name in volumes:
                found = self._mount_if_root(dev, mnt)
                if found is not None:
                    fstype, options = found
                    # looked at without writing (no log replay); mounted afresh to write
                    self._umount(mnt)
                    try:
                        sysmount.mount(dev, mnt, sysmount.mount_command(
                            fstype, sysmount.RW, options), self.ctx.runner)
                    except sysmount.MountError as exc:
                        what = _("Mounting the restored root {node} for writing").format(
                            node=name)
                        raise ExternalCommandError(_("{what} failed: {detail}").format(
                            what=what, detail=exc.detail or exc)) from exc
                    self._stack.callback(self._umount, mnt)
                    self._root, self._root_number = mnt, number
                    self.root_on_lvm = dev != node
                    self._mount_boot(mnt)
                    return mnt
        if not tried:
            raise NothingToFix(_(
                "No restored Linux root filesystem (with /etc/fstab and an init) was found on "
                "the target; nothing to fix inside the system (a data disk, or not a bootable "
                "Linux)."
            ))
        raise NothingToFix(_(
            "No restored Linux root filesystem (with /etc/fstab and an init) was found on "
            "{devices}; nothing to fix inside the system (a data disk, or not a bootable Linux)."
        ).format(devices=", ".join(tried)))

    def _mount_if_root(self, dev: str, mnt: Path) -> tuple[str, list[str]] | None:
        """Mount *dev* read-only on *mnt* without replaying a journal or log (a read-only
        xfs mount that recovers writes to its superblock), for btrfs the subvolume holding
        the root, and keep it mounted if it is a Linux root: returns its type and the
        options that select it (subvol=) for the read-write mount. A volume that is no root is left
        untouched (None)."""
        fstype = _blkid_type(self, dev)
        if registry.traits(fstype) is not None and fstype not in registry.linux_root_types():
            return None  # a type that never holds a Linux root (and may need a FUSE helper)
        # nouuid (xfs): the source (same UUID) may still be mounted on this machine
        options: list[str] = list(registry.twin_options(fstype))
        if fstype == "btrfs":
            subvol = self._btrfs_root_subvolume(dev)
            if subvol is None:
                return None
            if subvol:
                options.append(f"subvol={subvol}")
            elif shutil.which("btrfs") is not None:
                options.append(f"subvolid={BTRFS_TOP_LEVEL}")
        try:  # ro, and no journal or log replay
            sysmount.mount(dev, mnt, sysmount.mount_command(fstype, sysmount.RO, options),
                           self.ctx.runner)
        except sysmount.MountError:
            return None
        if _looks_like_root(mnt):
            return fstype, options
        self._umount(mnt)
        return None

    def _btrfs_root_subvolume(self, dev: str) -> str | None:
        """The subvolume of the btrfs on *dev* that holds the root ("" for the top level,
        or for the default subvolume when btrfs-progs are missing); None when none does."""
        if shutil.which("btrfs") is None:
            return ""
        top = self.workdir() / "btrfs-top"
        top.mkdir(exist_ok=True)
        try:
            sysmount.mount(dev, top, sysmount.mount_command(
                "btrfs", sysmount.RO, [f"subvolid={BTRFS_TOP_LEVEL}"]), self.ctx.runner)
        except sysmount.MountError:
            return None
        try:
            default = self.run(["btrfs", "subvolume", "get-default", str(top)], check=False)
            listing = self.run(["btrfs", "subvolume", "list", str(top)], check=False)
            for path in btrfs_root_candidates(default.stdout, listing.stdout):
                where = top / path
                if "," in path or where.is_symlink() or not where.is_dir():
                    continue  # a comma cannot be passed in subvol=
                if _looks_like_root(where):
                    return path
            return None
        finally:
            self._umount(top)

    def lvs(self, number: int) -> list[_LogicalVolume]:
        """The linear LVs of the PV on partition *number*, each with a writable loop device
        over its data (detached when the session ends)."""
        if number in self._lvs:
            return self._lvs[number]
        node = self.ctx.partitions[number]
        found: list[_LogicalVolume] = []
        for lv in read_linear_lvs(node, self.ctx.runner):
            dev = self._stack.enter_context(lv_loop(node, lv, self.ctx.runner,
                                                    read_only=False))
            found.append(_LogicalVolume(lv.vg, lv.name, dev or ""))
        self._lvs[number] = found
        return found

    def _mount_boot(self, root: Path) -> None:
        for entry in read_fstab(in_root(root, "etc/fstab")):
            if entry.mountpoint == "/boot":
                node = self._resolve(entry.spec)
                if node:
                    boot = in_root(root, "boot")  # never a mount point outside the root
                    subvol = [o for o in entry.options.split(",")
                              if o.startswith(("subvol=", "subvolid="))]
                    fstype = _blkid_type(self, node)
                    extra = subvol[:1] if fstype == "btrfs" else []
                    if fstype not in registry.writable():
                        fstype = ""  # a type rescue never writes to: mount finds it
                    try:  # twin: the source's /boot (same UUID) may be mounted here
                        sysmount.mount(node, boot, sysmount.mount_command(
                            fstype, sysmount.RW, extra, twin=True), self.ctx.runner)
                    except sysmount.MountError as exc:
                        raise ExternalCommandError(_("{what} failed: {detail}").format(
                            what=_("Mounting /boot"), detail=exc.detail or exc)) from exc
                    self._stack.callback(self._umount, boot)

    def _resolve(self, spec: str) -> str | None:
        for f in self.volume_facts():
            if spec_matches(spec, f):
                return f["DEVNAME"]
        return None

    def partition_facts(self) -> dict[int, dict[str, str]]:
        facts: dict[int, dict[str, str]] = {}
        for number, node in sorted(self.ctx.partitions.items()):
            info = blkid_probe(node, self.ctx.runner)
            part = self.run(
                ["blkid", "-o", "export", "-s", "PARTUUID", "-s", "PARTLABEL", node], check=False
            )
            info.update(parse_export(part.stdout))
            info["DEVNAME"] = node
            facts[number] = info
        return facts

    def lv_facts(self, partitions: dict[int, dict[str, str]] | None = None,
                 ) -> list[dict[str, str]]:
        """What blkid says of each linear LV on the disk's PVs (through its loop device),
        with the names the system knows it by (``ALIASES``: /dev/mapper/VG-LV with '-' in
        the names doubled, /dev/VG/LV, /dev/disk/by-id/dm-name-VG-LV)."""
        partitions = self.partition_facts() if partitions is None else partitions
        out: list[dict[str, str]] = []
        for number, info in sorted(partitions.items()):
            if info.get("TYPE") != LVM_PV:
                continue
            for lv in self.lvs(number):
                if not lv.dev:
                    continue
                facts = blkid_probe(lv.dev, self.ctx.runner)
                facts["DEVNAME"] = lv.dev
                facts["ALIASES"] = " ".join(lv.aliases)
                out.append(facts)
        return out

    def volume_facts(self) -> list[dict[str, str]]:
        """Facts of every partition and every linear LV on the restored disk."""
        partitions = self.partition_facts()
        return list(partitions.values()) + self.lv_facts(partitions)

    def chroot_binds(self) -> None:
        if self._binds:
            return
        assert self._root is not None
        for d in ("dev", "dev/pts", "proc", "sys", "run"):
            target = in_root(self._root, d)  # a link in the restored tree stays inside it
            target.mkdir(parents=True, exist_ok=True)
            sysmount.bind(f"/{d}", target, self.ctx.runner)
            self._stack.callback(self._umount, target)
        self._binds = True

    def chroot(self, *argv: str, what: str | None = None, check: bool = True) -> Any:
        assert self._root is not None
        env = {"PATH": CHROOT_PATH, "LC_ALL": "C", "HOME": "/root", "TMPDIR": "/tmp"}
        return self.run(
            ["chroot", str(self._root), *argv], env=env, what=what or shlex.join(argv),
            check=check,
        )

    def _umount(self, path: Path) -> None:
        sysmount.unmount(path, self.ctx.runner)


@dataclass(frozen=True)
class _LogicalVolume:
    """A linear LV of a restored PV and the loop device over its data ("" if none)."""

    vg: str
    name: str
    dev: str

    @property
    def aliases(self) -> list[str]:
        """The device names a system with this LV active knows it by."""
        mapper = f"{self.vg.replace('-', '--')}-{self.name.replace('-', '--')}"
        return [f"/dev/mapper/{mapper}", f"/dev/{self.vg}/{self.name}",
                f"/dev/disk/by-id/dm-name-{mapper}"]


def _blkid_type(s: _Session, node: str) -> str:
    return blkid_probe(node, s.ctx.runner).get("TYPE", "")


def _looks_like_root(path: Path) -> bool:
    return in_root(path, "etc/fstab").is_file() and any(
        in_root(path, p).exists() for p in ("sbin/init", "usr/sbin/init", "usr/lib/systemd"))


def _rmdir_quiet(path: str) -> None:
    """Remove the scratch directory, unless something is still mounted below it (then it
    stays, rather than deleting files of a mounted filesystem)."""
    real = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1 and (fields[1] == real or fields[1].startswith(real + "/")):
                return
    shutil.rmtree(real, ignore_errors=True)


# --------------------------------------------------------------------------- helpers


@dataclass
class FstabEntry:
    line_no: int
    spec: str
    mountpoint: str
    fstype: str
    options: str

    @property
    def optional(self) -> bool:
        opts = self.options.split(",")
        return "nofail" in opts or "noauto" in opts


FSTAB_LIMIT = 1024 * 1024  # a real fstab is a few KiB; a huge one is not read whole


def read_fstab(path: Path) -> list[FstabEntry]:
    entries = []
    with open(path, "rb") as fh:
        text = fh.read(FSTAB_LIMIT).decode("utf-8", errors="replace")
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split()
        if len(f) < 3:
            continue
        entries.append(FstabEntry(no, f[0], f[1], f[2], f[3] if len(f) > 3 else "defaults"))
    return entries


_TAGS = {
    "UUID": "UUID",
    "PARTUUID": "PARTUUID",
    "LABEL": "LABEL",
    "PARTLABEL": "PARTLABEL",
}
_BY = {
    "/dev/disk/by-uuid/": "UUID",
    "/dev/disk/by-partuuid/": "PARTUUID",
    "/dev/disk/by-label/": "LABEL",
    "/dev/disk/by-partlabel/": "PARTLABEL",
}


def spec_key(spec: str) -> tuple[str, str] | None:
    """``UUID=x`` or ``/dev/disk/by-uuid/x`` -> ("UUID", "x"); None for other specs."""
    tag, sep, value = spec.partition("=")
    if sep and tag.upper() in _TAGS:
        return _TAGS[tag.upper()], value.strip('"')
    for prefix, key in _BY.items():
        if spec.startswith(prefix):
            return key, spec[len(prefix) :]
    return None


def spec_matches(spec: str, facts: dict[str, str]) -> bool:
    key = spec_key(spec)
    if key is None:
        return spec == facts.get("DEVNAME") or spec in facts.get("ALIASES", "").split()
    tag, value = key
    have = facts.get(tag, "")
    if tag in ("UUID", "PARTUUID"):
        return have.lower() == value.lower() and bool(have)
    return have == value and bool(have)


def _kernel_device_partition(spec: str, source_disk: str) -> int | None:
    """``/dev/sda2`` on source disk ``/dev/sda`` -> 2 (also nvme0n1p2, mmcblk0p2)."""
    if not source_disk or not spec.startswith(source_disk):
        return None
    m = re.fullmatch(r"p?(\d+)", spec[len(source_disk) :])
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- BIOS


def fix_bios_boot_code(s: _Session, step: FixupStep) -> FixupResult:
    """Check (read-only) that what SeaBIOS/legacy BIOS needs is on the target."""
    with open(s.ctx.disk, "rb") as f:
        mbr = f.read(512)
        gap = b""
        if step.params.get("table") == "dos":
            f.seek(512)
            gap = f.read(1024 * 1024 - 512)
    if mbr[510:512] != b"\x55\xaa":
        raise StepFailed(_("{disk} has no MBR signature; the BIOS cannot start it.").format(
            disk=s.ctx.disk))
    if not any(mbr[:440]):
        raise StepFailed(_(
            "The MBR boot code on {disk} is empty (the image came from a {firmware}-firmware "
            "system); set the firmware to UEFI boot, or reinstall GRUB for BIOS after the "
            "restore."
        ).format(disk=s.ctx.disk, firmware=step.params.get("image_firmware") or "unknown"))
    if step.params.get("table") == "gpt":
        number = step.params.get("bios_grub_partition")
        if number is None:
            raise StepFailed(_(
                "The GPT disk has no bios_grub partition, so GRUB's core image has nowhere to "
                "live for BIOS boot; set the firmware to UEFI boot, or reinstall GRUB."
            ))
        node = s.ctx.partitions[number]
        with open(node, "rb") as f:
            core = f.read(1024 * 1024)
        if not any(core):
            raise StepFailed(_(
                "The bios_grub partition {node} is empty; GRUB cannot start."
            ).format(node=node))
        found = _("MBR boot code present; GRUB core image in bios_grub partition {number}.")
        found = found.format(number=number)
    else:
        if not any(gap):
            raise StepFailed(_(
                "The post-MBR gap of {disk} is empty: GRUB's core image is missing."
            ).format(disk=s.ctx.disk))
        found = _("MBR boot code present; GRUB core image in the post-MBR gap.")
    return FixupResult(step.name, DONE, found)


# --------------------------------------------------------------------------- UEFI


def _mtools_env() -> dict[str, str]:
    return dict(os.environ, MTOOLS_SKIP_CHECK="1", MTOOLS_NO_VFAT="1")


def esp_files(s: _Session, node: str) -> list[str]:
    """Every file path on the ESP (as stored, '/'-separated, from the root)."""
    env = _mtools_env()
    info = s.run(["minfo", "-i", node, "::"], env=env, check=False)
    if info.returncode != 0:
        detail = (info.stderr or info.stdout).strip().splitlines()
        raise StepFailed(_("The ESP {node} cannot be read as FAT ({error}).").format(
            node=node, error=detail[-1] if detail else _("minfo failed")))
    # mdir exits 1 on an empty root directory: an empty ESP is not an error here.
    res = s.run(["mdir", "-/", "-b", "-i", node, "::/"], env=env, check=False)
    files = []
    for line in res.stdout.splitlines():
        line = line.strip()
        if line.startswith("::/") and not line.endswith("/"):
            files.append(line[2:])
    return files


def _find(files: list[str], path: str) -> str | None:
    want = path.upper()
    return next((f for f in files if f.upper() == want), None)


def choose_loader(files: list[str], os_id: str) -> list[tuple[str, str]]:
    """The installed loader to copy as the fallback, as (source, target-name) pairs.

    Prefers shim (then GRUB) in the image's own distribution directory; shim needs its
    GRUB (and MokManager) beside it in \\EFI\\BOOT."""
    def in_dir(d: str, name: str) -> str | None:
        return _find(files, f"/EFI/{d}/{name}")

    dirs = []
    if os_id:
        dirs.append(os_id)
    for f in files:
        parts = f.split("/")
        if (
            len(parts) == 4
            and parts[1].upper() == "EFI"
            and parts[2].upper() != "BOOT"
            and parts[2] not in dirs
        ):
            dirs.append(parts[2])
    for d in dirs:
        shim = in_dir(d, "shimx64.efi")
        grub = in_dir(d, "grubx64.efi")
        if shim and grub:
            pairs = [(shim, "BOOTX64.EFI"), (grub, "grubx64.efi")]
            mm = in_dir(d, "mmx64.efi")
            if mm:
                pairs.append((mm, "mmx64.efi"))
            return pairs
        if grub:
            return [(grub, "BOOTX64.EFI")]
    for d in dirs:
        others = [
            f
            for f in files
            if f.upper().startswith(f"/EFI/{d.upper()}/")
            and f.upper().endswith(".EFI")
            and f.rsplit("/", 1)[-1].lower() not in ("mmx64.efi", "fbx64.efi")
        ]
        if len(others) == 1:
            return [(others[0], "BOOTX64.EFI")]
    return []


def fix_uefi_fallback(s: _Session, step: FixupStep) -> FixupResult:
    number = step.params.get("esp_partition")
    if number is None:
        raise StepFailed(_(
            "The image has no EFI System Partition, so it cannot boot on UEFI firmware; "
            "set the firmware to legacy/CSM boot, or install a UEFI boot loader afterwards."
        ))
    node = s.ctx.partitions[number]
    files = esp_files(s, node)
    existing = _find(files, FALLBACK)
    if existing:
        return FixupResult(step.name, DONE, _(
            "The fallback loader {loader} is already on the ESP."
        ).format(loader=_efi(existing)))
    pairs = choose_loader(files, step.params.get("os_id", ""))
    if not pairs:
        raise StepFailed(_(
            "The ESP {node} holds no installed UEFI loader to copy as {loader}; "
            "reinstall the boot loader after the restore."
        ).format(node=node, loader=_efi(FALLBACK)))
    env = _mtools_env()
    tmp = s.workdir() / "esp"
    tmp.mkdir(exist_ok=True)
    if not any(f.upper().startswith("/EFI/BOOT/") for f in files):
        s.run(["mmd", "-i", node, "::/EFI/BOOT"], env=env, check=False)
    copied = []
    for src, name in pairs:
        local = tmp / name
        s.run(["mcopy", "-n", "-o", "-i", node, f"::{src}", str(local)], env=env,
              what=_("Reading {file} from the ESP").format(file=_efi(src)))
        s.run(["mcopy", "-o", "-i", node, str(local), f"::/EFI/BOOT/{name}"], env=env,
              what=_("Writing {file} to the ESP").format(file="\\EFI\\BOOT\\" + name))
        back = tmp / (name + ".readback")
        s.run(["mcopy", "-n", "-o", "-i", node, f"::/EFI/BOOT/{name}", str(back)], env=env,
              what=_("Reading back {file}").format(file="\\EFI\\BOOT\\" + name))
        if _sha256(back) != _sha256(local):
            raise StepFailed(_(
                "{file} reads back differently from {source}; the ESP may be damaged."
            ).format(file="\\EFI\\BOOT\\" + name, source=_efi(src)))
        copied.append(f"{_efi(src)} -> \\EFI\\BOOT\\{name}")
    return FixupResult(step.name, DONE, _(
        "Copied the installed loader as the fallback: {copies}."
    ).format(copies="; ".join(copied)))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _efi(path: str) -> str:
    return path.replace("/", "\\")


@dataclass
class BootEntry:
    number: str  # "0003"
    label: str
    active: bool
    partuuid: str  # lower-case GPT partition GUID of HD(...), "" when none
    loader: str  # \EFI\debian\shimx64.efi, "" when none


_ENTRY = re.compile(r"^Boot([0-9A-Fa-f]{4})(\*?)\s+(.*)$")
_HD = re.compile(r"HD\(\d+,GPT,([0-9A-Fa-f-]{36})", re.I)
_FILE = re.compile(r"(\\[^)\t]*\.efi)", re.I)


def parse_efibootmgr(text: str) -> tuple[list[BootEntry], list[str]]:
    """Entries and BootOrder from ``efibootmgr -v`` output (efibootmgr 17 and 18)."""
    entries = []
    order: list[str] = []
    for line in text.splitlines():
        if line.startswith("BootOrder:"):
            order = [x.strip().upper() for x in line.split(":", 1)[1].split(",") if x.strip()]
            continue
        m = _ENTRY.match(line)
        if not m:
            continue
        rest = m.group(3)
        label, _tab, path = rest.partition("\t")
        if not path:
            # efibootmgr 18 separates with two spaces when there is no tab.
            hd = rest.find("HD(")
            label, path = (rest[:hd].strip(), rest[hd:]) if hd >= 0 else (rest.strip(), "")
        hdm = _HD.search(path)
        fm = _FILE.search(path)
        entries.append(
            BootEntry(
                number=m.group(1).upper(),
                label=label.strip(),
                active=m.group(2) == "*",
                partuuid=hdm.group(1).lower() if hdm else "",
                loader=fm.group(1) if fm else "",
            )
        )
    return entries, order


def fix_uefi_nvram(s: _Session, step: FixupStep) -> FixupResult:
    ctx = s.ctx
    if ctx.firmware != "uefi" or not Path(ctx.efivars).is_dir():
        return FixupResult(
            step.name,
            SKIPPED,
            _("This machine was not started in UEFI mode (no EFI variables), so no NVRAM "
              "entry can be written from here; the firmware starts the fallback loader "
              "\\EFI\\BOOT\\BOOTX64.EFI."),
        )
    number = int(step.params["esp_partition"])
    partuuid = str(step.params.get("esp_partuuid") or "").lower()
    label = str(step.params.get("label") or "Linux")
    files = esp_files(s, ctx.partitions[number])
    pairs = choose_loader(files, step.params.get("os_id", ""))
    loader = _efi(pairs[0][0]) if pairs else None
    if loader is None:
        if not _find(files, FALLBACK):
            raise StepFailed(_("The ESP holds no UEFI loader for a boot entry to point at."))
        loader = _efi(FALLBACK)
    before = parse_efibootmgr(
        ctx.runner.run(["efibootmgr", "-v"], what=_("Reading the UEFI boot entries")).stdout
    )[0]
    gone = {u.lower() for u in ctx.previous_partuuids} - {
        str(p.uuid).lower() for p in ctx.manifest.disks[ctx.disk_index].partitions if p.uuid
    }
    stale = [e for e in before if e.partuuid and (e.partuuid == partuuid or e.partuuid in gone)]
    for e in stale:
        ctx.runner.run(["efibootmgr", "-q", "-b", e.number, "-B"],
                       what=_("Removing the stale boot entry {entry}").format(
                           entry="Boot" + e.number))
    ctx.runner.run(
        ["efibootmgr", "-q", "-c", "-d", ctx.disk, "-p", str(number), "-L", label, "-l", loader],
        what=_("Creating the UEFI boot entry"),
    )
    after, order = parse_efibootmgr(
        ctx.runner.run(["efibootmgr", "-v"], what=_("Reading back the UEFI boot entries")).stdout
    )
    ours = [
        e
        for e in after
        if e.label == label and (not partuuid or e.partuuid == partuuid)
        and e.loader.lower() == loader.lower()
    ]
    if not ours:
        raise StepFailed(_(
            "efibootmgr reported success, but reading the NVRAM back shows no entry "
            "'{label}' for {loader}; the firmware may have refused it. The fallback loader "
            "is the way this disk boots."
        ).format(label=label, loader=loader))
    entry = ours[0]
    if order[:1] == [entry.number]:
        where = _("first in BootOrder")
    elif order:
        where = _("BootOrder is {order}").format(order=",".join(order))
    else:
        where = _("BootOrder is empty")
    fields = {"entry": "Boot" + entry.number, "label": label, "loader": loader, "where": where}
    if stale:
        done = _("{entry} '{label}' -> {loader} created and read back ({where}); removed "
                 "stale {stale}.").format(
            stale=", ".join("Boot" + e.number for e in stale), **fields)
    else:
        done = _("{entry} '{label}' -> {loader} created and read back ({where}).").format(
            **fields)
    return FixupResult(step.name, DONE, done)


# --------------------------------------------------------------------------- initramfs


def kernels(root: Path) -> list[str]:
    """Kernel versions that have modules and a kernel image in /boot."""
    found = []
    for moddir in (in_root(root, "lib/modules"), in_root(root, "usr/lib/modules")):
        if not moddir.is_dir():
            continue
        for k in sorted(p.name for p in moddir.iterdir() if p.is_dir()):
            if k not in found and any(
                in_root(root, f"boot/{n}-{k}").exists() for n in ("vmlinuz", "vmlinux", "bzImage")
            ):
                found.append(k)
    return found


def _moddir(root: Path, kver: str) -> Path:
    for d in (in_root(root, f"lib/modules/{kver}"), in_root(root, f"usr/lib/modules/{kver}")):
        if d.is_dir():
            return d
    return in_root(root, f"lib/modules/{kver}")


def module_status(root: Path, kver: str, module: str) -> str:
    """"builtin", "module" or "missing" for *module* in the restored kernel *kver*."""
    d = _moddir(root, kver)
    want = module_name(module)
    builtin = d / "modules.builtin"
    if builtin.exists():
        for line in builtin.read_text(errors="replace").splitlines():
            if module_name(line) == want:
                return "builtin"
    dep = d / "modules.dep"
    if dep.exists():
        for line in dep.read_text(errors="replace").splitlines():
            if module_name(line.split(":", 1)[0]) == want:
                return "module"
    return "missing"


def initramfs_tool(root: Path) -> str:
    if (in_root(root, "usr/sbin/update-initramfs").exists()
            and in_root(root, "etc/initramfs-tools").is_dir()):
        return "initramfs-tools"
    if any(in_root(root, p).exists() for p in ("usr/bin/dracut", "usr/sbin/dracut",
                                               "sbin/dracut")):
        return "dracut"
    return ""


def initramfs_path(root: Path, kver: str, tool: str) -> str:
    """Path inside the restored root of *kver*'s initramfs (where the tool writes it)."""
    for name in (f"initrd.img-{kver}", f"initramfs-{kver}.img", f"initrd-{kver}"):
        if in_root(root, f"boot/{name}").exists():
            return f"/boot/{name}"
    if tool == "initramfs-tools":
        return f"/boot/initrd.img-{kver}"
    return f"/boot/initramfs-{kver}.img"


def initramfs_modules(s: _Session, root: Path, image: str, tool: str) -> set[str]:
    lister = ["lsinitramfs", image] if tool == "initramfs-tools" else ["lsinitrd", image]
    res = s.chroot(*lister, what=_("Listing {file}").format(file=image))
    mods = set()
    for line in res.stdout.splitlines():
        name = line.strip().rsplit("/", 1)[-1]
        if any(name.endswith(sfx) for sfx in MODULE_SUFFIXES):
            mods.add(module_name(name))
    return mods


def fix_initramfs(s: _Session, step: FixupStep) -> FixupResult:
    drivers = [module_name(d) for d in step.params.get("drivers", [])]
    root = s.root(list(step.params.get("root_candidates", [])))
    tool = initramfs_tool(root)
    kvers = kernels(root)
    if not kvers:
        raise StepFailed(_("The restored system has no kernel in /boot with modules."))
    if not tool:
        raise StepFailed(_(
            "The restored system has neither initramfs-tools nor dracut; add {drivers} to "
            "its initramfs by hand."
        ).format(drivers=", ".join(drivers)))
    s.chroot_binds()
    notes: list[str] = []
    rebuilt: list[str] = []
    for kver in kvers:
        status = {d: module_status(root, kver, d) for d in drivers}
        missing_kernel = [d for d, st in status.items() if st == "missing"]
        if missing_kernel:
            raise StepFailed(_(
                "The restored kernel {kernel} has no {drivers} driver; it cannot reach its "
                "disk on this machine. Install a kernel that has it."
            ).format(kernel=kver, drivers=", ".join(missing_kernel)))
        needed = [d for d, st in status.items() if st == "module"]
        if not needed:
            notes.append(_("{kernel}: {drivers} built into the kernel").format(
                kernel=kver, drivers=", ".join(drivers)))
            continue
        image = initramfs_path(root, kver, tool)
        have = initramfs_modules(s, root, image, tool) if in_root(root, image).exists() \
            else set()
        absent = [d for d in needed if d not in have]
        if not absent:
            notes.append(_("{kernel}: {file} already contains {drivers}").format(
                kernel=kver, file=image, drivers=", ".join(needed)))
            continue
        _configure(root, tool, absent)
        if tool == "initramfs-tools":
            dep = initramfs_tools_modules_setting(root) == "dep"
            override = in_root(root, "etc/initramfs-tools/conf.d/zz-rescue-restore")
            if dep:
                # MODULES=dep inspects the disks of the machine it runs on; from a chroot
                # in the live system that is the live medium, and mkinitramfs fails or
                # picks the wrong drivers. Build this one initramfs with MODULES=most.
                override.write_text("# temporary, written by rescue during a restore\n"
                                    "MODULES=most\n")
            try:
                s.chroot("update-initramfs", "-u", "-k", kver,
                         what=_("Rebuilding the initramfs of {kernel} ({tool})").format(
                             kernel=kver, tool="update-initramfs"))
            finally:
                override.unlink(missing_ok=True)
            if dep:
                notes.append(_(
                    "{kernel}: MODULES=dep cannot look at this machine from a chroot, so this "
                    "initramfs was built once with MODULES=most (the configuration is "
                    "unchanged; the drivers are also listed in /etc/initramfs-tools/modules)"
                ).format(kernel=kver))
        else:
            # From the chroot, dracut's host-only mode sees the root on a loop device, not
            # on an LV: the lvm module that activates the root at boot must be asked for.
            extra = ["--add", "lvm"] if s.root_on_lvm else []
            s.chroot("dracut", "--force", *extra, image, kver,
                     what=_("Rebuilding the initramfs of {kernel} ({tool})").format(
                         kernel=kver, tool="dracut"))
        now = initramfs_modules(s, root, image, tool)
        still = [d for d in needed if d not in now]
        if still:
            raise StepFailed(_(
                "{file} was rebuilt but still lacks {drivers}; the restored system will not "
                "find its disk on this machine."
            ).format(file=image, drivers=", ".join(still)))
        rebuilt.append(_("{kernel}: added {drivers} ({tool})").format(
            kernel=kver, drivers=", ".join(absent), tool=tool))
    if rebuilt:
        return FixupResult(step.name, DONE, _(
            "Initramfs rebuilt in a chroot and checked: {notes}."
        ).format(notes="; ".join(rebuilt + notes)))
    return FixupResult(step.name, DONE, _("Nothing to add: {notes}.").format(
        notes="; ".join(notes)))


def initramfs_tools_modules_setting(root: Path) -> str:
    """The effective MODULES= of initramfs-tools (initramfs.conf, then conf.d in order)."""
    value = "most"
    conf = in_root(root, "etc/initramfs-tools")
    files = [conf / "initramfs.conf"]
    if (conf / "conf.d").is_dir():
        files += sorted(p for p in (conf / "conf.d").iterdir() if p.is_file())
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            m = re.match(r"\s*MODULES\s*=\s*['\"]?([a-z]+)", line)
            if m:
                value = m.group(1)
    return value


def _configure(root: Path, tool: str, drivers: list[str]) -> None:
    """Make the drivers part of every future initramfs too (kernel updates keep them)."""
    if tool == "initramfs-tools":
        path = in_root(root, "etc/initramfs-tools/modules")
        text = path.read_text() if path.exists() else ""
        listed = {module_name(ln.split()[0]) for ln in text.splitlines()
                  if ln.strip() and not ln.lstrip().startswith("#")}
        add = [d for d in drivers if d not in listed]
        if add:
            if text and not text.endswith("\n"):
                text += "\n"
            text += "# added by rescue: storage drivers of the machine restored onto\n"
            text += "".join(f"{d}\n" for d in add)
            path.write_text(text)
    else:
        in_root(root, "etc/dracut.conf.d").mkdir(parents=True, exist_ok=True)
        conf = in_root(root, "etc/dracut.conf.d/90-rescue-storage.conf")
        conf.write_text(
            "# added by rescue: storage drivers of the machine restored onto\n"
            f'add_drivers+=" {" ".join(drivers)} "\n'
        )


# --------------------------------------------------------------------------- fstab


def fix_fstab(s: _Session, step: FixupStep) -> FixupResult:
    root = s.root(list(step.params.get("root_candidates", [])))
    fstab = in_root(root, "etc/fstab")
    entries = read_fstab(fstab)
    facts = s.partition_facts()
    lvs = s.lv_facts(facts)  # LVs are named by their VG/LV names: never rewritten
    source_disk = str(step.params.get("source_disk") or "")
    ok, warnings, broken, rewrites = 0, [], [], {}
    for e in entries:
        if e.fstype in ("proc", "sysfs", "tmpfs", "devpts", "nfs", "nfs4", "cifs", "smb3",
                        "none", "bind", "fuse", "9p", "virtiofs") or e.spec in ("none",):
            continue
        if spec_key(e.spec):
            if any(spec_matches(e.spec, f) for f in [*facts.values(), *lvs]):
                ok += 1
            elif e.optional:
                warnings.append(_("{spec} ({mountpoint}, nofail) is not on this disk").format(
                    spec=e.spec, mountpoint=e.mountpoint))
            else:
                broken.append(f"{e.spec} ({e.mountpoint})")
            continue
        number = _kernel_device_partition(e.spec, source_disk)
        if number is not None and number in facts and facts[number].get("UUID"):
            rewrites[e.line_no] = (e.spec, f"UUID={facts[number]['UUID']}")
        elif any(spec_matches(e.spec, f) for f in lvs):
            ok += 1  # an LV's name (/dev/mapper/VG-LV, /dev/VG/LV) does not change
        elif e.spec.startswith("/dev/"):
            warnings.append(_("{spec} ({mountpoint}) names a device path that may change").format(
                spec=e.spec, mountpoint=e.mountpoint))
            ok += 1
    if rewrites:
        original = fstab.read_text()
        in_root(root, "etc/fstab.rescue-backup").write_text(original)
        lines = original.splitlines(keepends=True)
        for no, (old, new) in rewrites.items():
            lines[no - 1] = lines[no - 1].replace(old, new, 1)
        fstab.write_text("".join(lines))
    parts = [_("{ok} of {total} entries resolve on the restored disk").format(
        ok=ok + len(rewrites), total=len(entries))]
    parts += check_boot_loader_root(root, facts, source_disk, lvs)
    if rewrites:
        parts.append(_("rewrote {changes} (old file kept as /etc/fstab.rescue-backup)").format(
            changes=", ".join(f"{a} -> {b}" for a, b in rewrites.values())))
    if warnings:
        parts.append(_("note: {notes}").format(notes="; ".join(warnings)))
    if broken:
        raise StepFailed(_(
            "/etc/fstab names filesystems that are not on the restored disk: {entries}; the "
            "restored system will stop in emergency mode. {findings}."
        ).format(entries=", ".join(broken), findings="; ".join(parts)))
    return FixupResult(step.name, DONE, "; ".join(parts) + ".")


_LINUX_CMD = re.compile(r"\s*linux(16|efi)?\s")
_ROOT_ARG = re.compile(r"(?<![\w.-])root=(\S+)")


def check_boot_loader_root(root: Path, facts: dict[int, dict[str, str]],
                           source_disk: str,
                           volumes: list[dict[str, str]] | None = None) -> list[str]:
    """The kernel's ``root=`` in GRUB's config: source-disk device names are rewritten to
    ``root=UUID=``; values that resolve nowhere (not on a partition of *facts*, nor on one
    of the other *volumes*, e.g. the LVs) are reported."""
    notes: list[str] = []
    known = [*facts.values(), *(volumes or [])]
    for rel in ("boot/grub/grub.cfg", "boot/grub2/grub.cfg"):
        cfg = in_root(root, rel)
        if not cfg.is_file():
            continue
        text = cfg.read_text(errors="replace")
        kernel_lines = [ln for ln in text.splitlines() if _LINUX_CMD.match(ln)]
        values = sorted({v for ln in kernel_lines for v in _ROOT_ARG.findall(ln)})
        changed = text
        unresolved = []
        for value in values:
            number = _kernel_device_partition(value, source_disk)
            if number is not None and facts.get(number, {}).get("UUID"):
                new = f"UUID={facts[number]['UUID']}"
                changed = re.sub(rf"(?<![\w.-])root={re.escape(value)}(?=\s)", f"root={new}",
                                 changed)
                notes.append(f"/{rel}: root={value} -> root={new}")
            elif not any(spec_matches(value, f) for f in known):
                unresolved.append(value)
        if changed != text:
            in_root(root, rel + ".rescue-backup").write_text(text)
            cfg.write_text(changed)
        if unresolved:
            notes.append(_("{file} also names root={values}, not on this disk").format(
                file="/" + rel, values=", ".join(unresolved)))
        elif values:
            notes.append(_("{file}: root= resolves on the restored disk").format(file="/" + rel))
    return notes


HANDLERS: dict[str, Callable[[_Session, FixupStep], FixupResult]] = {
    "bios-boot-code": fix_bios_boot_code,
    "uefi-fallback-loader": fix_uefi_fallback,
    "uefi-nvram-entry": fix_uefi_nvram,
    "initramfs-drivers": fix_initramfs,
    "fstab-check": fix_fstab,
}


def results_summary(results: list[FixupResult]) -> Iterator[str]:
    for r in results:
        yield f"{r.name}: {r.status} - {r.detail}"


__all__ = [
    "FixupContext",
    "FixupResult",
    "run_fixups",
    "parse_efibootmgr",
    "choose_loader",
]
