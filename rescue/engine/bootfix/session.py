"""The restored system as the fix-ups see it: one :class:`Session` per run.

The restored root is mounted once (read-write) in a private directory, with /dev, /proc,
/sys and /run bound into it for the chroot that rebuilds the initramfs; everything is
unmounted at the end. The root may be a partition, a btrfs subvolume (mounted with
``subvol=``) or a linear LVM logical volume (opened through a loop device at its offset in
the PV, detached at the end: no device-mapper needed); fstab entries naming an LV
(/dev/mapper/VG-LV, /dev/VG/LV, its filesystem's UUID) resolve to it. The session also
says what blkid reports of every partition and LV on the restored disk."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rescue import sysmount
from rescue.devices.blockdev import blkid_probe
from rescue.devices.blockdev import parse_blkid_export as parse_export
from rescue.devices.inroot import in_root, read_text_in_root
from rescue.devices.sysinfo import BTRFS_TOP_LEVEL, btrfs_root_candidates
from rescue.engine.bootfix.context import FixupContext, NothingToFix
from rescue.engine.bootfix.rootfiles import make_dirs_in_root
from rescue.engine.bootfix.specs import FSTAB_LIMIT, parse_fstab, spec_matches
from rescue.errors import ExternalCommandError
from rescue.fs import registry
from rescue.fs.lvm import LVM_PV, lv_loop, read_linear_lvs
from rescue.i18n import _

CHROOT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class Session:
    """Shared state of one fix-up run: the mounted restored root, cleaned up at the end."""

    def __init__(self, ctx: FixupContext) -> None:
        self.ctx = ctx
        self.run = ctx.runner.run
        self._stack = contextlib.ExitStack()
        self._root: Path | None = None
        self._root_number: int | None = None
        self._boot_error: ExternalCommandError | None = None  # /boot did not mount
        self._tmp: str | None = None
        self._binds = False
        self._lvs: dict[int, list[LogicalVolume]] = {}
        self.root_on_lvm = False  # the mounted root is an LVM logical volume

    def __enter__(self) -> Session:
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
        if self._boot_error is not None:
            raise self._boot_error  # every step that needs the root fails alike
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
                    try:
                        self._mount_boot(mnt)
                    except ExternalCommandError as exc:
                        self._boot_error = exc
                        raise
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

    def lvs(self, number: int) -> list[LogicalVolume]:
        """The linear LVs of the PV on partition *number*, each with a writable loop device
        over its data (detached when the session ends)."""
        if number in self._lvs:
            return self._lvs[number]
        node = self.ctx.partitions[number]
        found: list[LogicalVolume] = []
        for lv in read_linear_lvs(node, self.ctx.runner):
            dev = self._stack.enter_context(lv_loop(node, lv, self.ctx.runner,
                                                    read_only=False))
            found.append(LogicalVolume(lv.vg, lv.name, dev or ""))
        self._lvs[number] = found
        return found

    def _mount_boot(self, root: Path) -> None:
        for entry in parse_fstab(read_text_in_root(root, "etc/fstab", FSTAB_LIMIT) or ""):
            if entry.mountpoint == "/boot":
                node = self._resolve(entry.spec)
                if node:
                    # a real folder of the restored root: a link there (boot -> /etc) is
                    # refused, never followed (sysmount checks every folder below root)
                    boot = root / "boot"
                    subvol = [o for o in entry.options.split(",")
                              if o.startswith(("subvol=", "subvolid="))]
                    fstype = _blkid_type(self, node)
                    extra = subvol[:1] if fstype == "btrfs" else []
                    if fstype not in registry.writable():
                        fstype = ""  # a type rescue never writes to: mount finds it
                    try:  # twin: the source's /boot (same UUID) may be mounted here
                        sysmount.mount(node, boot, sysmount.mount_command(
                            fstype, sysmount.RW, extra, twin=True), self.ctx.runner,
                            inside=root)
                    except sysmount.MountError as exc:
                        raise ExternalCommandError(_("{what} failed: {detail}").format(
                            what=_("Mounting /boot"), detail=exc.detail or str(exc))) from exc
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
            # real folders of the restored root, made when missing: a link there (or on
            # the way) is refused, never followed (it could lead into a folder bound
            # before, i.e. into the live system: run -> /dev/shm)
            target = self._root / d
            if not target.is_symlink() and not target.exists():
                make_dirs_in_root(self._root, d)
            sysmount.bind(f"/{d}", target, self.ctx.runner, inside=self._root)
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
class LogicalVolume:
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


def _blkid_type(s: Session, node: str) -> str:
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
