"""Fix-up ``initramfs-drivers``: the storage drivers this machine needs in the restored
initramfs, rebuilt in a chroot (initramfs-tools or dracut), configured for future rebuilds
too, and checked by listing the new image."""

from __future__ import annotations

import re
from pathlib import Path

from rescue.devices.inroot import in_root
from rescue.engine.bootfix.context import DONE, FixupResult, StepFailed
from rescue.engine.bootfix.rootfiles import (
    OutsideRoot,
    make_dirs_in_root,
    read_in_root,
    remove_in_root,
    write_in_root,
)
from rescue.engine.bootfix.session import Session
from rescue.i18n import _
from rescue.plan.fixups import FixupStep, module_name

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
MODULES_LIST_LIMIT = 64 * 1024 * 1024  # modules.dep: some hundred KiB
CONFIG_LIMIT = 1024 * 1024  # initramfs-tools' files: a few lines
MODULES_FILE = "etc/initramfs-tools/modules"
OVERRIDE = "etc/initramfs-tools/conf.d/zz-rescue-restore"  # while rebuilding only


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


def _moddir(root: Path, kver: str) -> str:
    """Where *kver*'s modules are, as the restored system names it."""
    for d in (f"lib/modules/{kver}", f"usr/lib/modules/{kver}"):
        if in_root(root, d).is_dir():
            return d
    return f"lib/modules/{kver}"


def module_status(root: Path, kver: str, module: str) -> str:
    """"builtin", "module" or "missing" for *module* in the restored kernel *kver*."""
    rel = _moddir(root, kver)
    want = module_name(module)
    builtin = read_in_root(root, f"{rel}/modules.builtin", MODULES_LIST_LIMIT)
    for line in (builtin or "").splitlines():
        if module_name(line) == want:
            return "builtin"
    dep = read_in_root(root, f"{rel}/modules.dep", MODULES_LIST_LIMIT)
    for line in (dep or "").splitlines():
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


def initramfs_modules(s: Session, root: Path, image: str, tool: str) -> set[str]:
    lister = ["lsinitramfs", image] if tool == "initramfs-tools" else ["lsinitrd", image]
    res = s.chroot(*lister, what=_("Listing {file}").format(file=image))
    mods = set()
    for line in res.stdout.splitlines():
        name = line.strip().rsplit("/", 1)[-1]
        if any(name.endswith(sfx) for sfx in MODULE_SUFFIXES):
            mods.add(module_name(name))
    return mods


def fix_initramfs(s: Session, step: FixupStep) -> FixupResult:
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
            if dep:
                # MODULES=dep inspects the disks of the machine it runs on; from a chroot
                # in the live system that is the live medium, and mkinitramfs fails or
                # picks the wrong drivers. Build this one initramfs with MODULES=most.
                write_in_root(root, OVERRIDE, "# temporary, written by rescue during a "
                              "restore\nMODULES=most\n", follow_last=False)
            try:
                s.chroot("update-initramfs", "-u", "-k", kver,
                         what=_("Rebuilding the initramfs of {kernel} ({tool})").format(
                             kernel=kver, tool="update-initramfs"))
            finally:
                remove_in_root(root, OVERRIDE)
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
    conf = in_root(root, "etc/initramfs-tools/conf.d")
    files = ["etc/initramfs-tools/initramfs.conf"]
    if conf.is_dir():
        files += sorted(f"etc/initramfs-tools/conf.d/{p.name}" for p in conf.iterdir())
    for path in files:
        try:
            text = read_in_root(root, path, CONFIG_LIMIT)
        except OutsideRoot:
            continue  # a link out of the system (e.g. to /dev/null): nothing set there
        for line in (text or "").splitlines():
            m = re.match(r"\s*MODULES\s*=\s*['\"]?([a-z]+)", line)
            if m:
                value = m.group(1)
    return value


def _configure(root: Path, tool: str, drivers: list[str]) -> None:
    """Make the drivers part of every future initramfs too (kernel updates keep them)."""
    if tool == "initramfs-tools":
        text = read_in_root(root, MODULES_FILE, CONFIG_LIMIT) or ""
        listed = {module_name(ln.split()[0]) for ln in text.splitlines()
                  if ln.strip() and not ln.lstrip().startswith("#")}
        add = [d for d in drivers if d not in listed]
        if add:
            if text and not text.endswith("\n"):
                text += "\n"
            text += "# added by rescue: storage drivers of the machine restored onto\n"
            text += "".join(f"{d}\n" for d in add)
            write_in_root(root, MODULES_FILE, text)
    else:
        make_dirs_in_root(root, "etc/dracut.conf.d")
        write_in_root(root, "etc/dracut.conf.d/90-rescue-storage.conf",
                      "# added by rescue: storage drivers of the machine restored onto\n"
                      f'add_drivers+=" {" ".join(drivers)} "\n', follow_last=False)
