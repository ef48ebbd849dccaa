"""Fix-up ``fstab-check``: every /etc/fstab entry of the restored system (and GRUB's
``root=``, rescue.engine.bootfix.grub) resolves on the restored disk; names of the source
disk's devices are rewritten to ``UUID=`` (the old file kept)."""

from __future__ import annotations

from rescue.engine.bootfix.context import DONE, FixupResult, StepFailed
from rescue.engine.bootfix.grub import check_boot_loader_root
from rescue.engine.bootfix.rootfiles import read_in_root, write_in_root
from rescue.engine.bootfix.session import Session
from rescue.engine.bootfix.specs import (
    FSTAB_LIMIT,
    kernel_device_partition,
    parse_fstab,
    spec_key,
    spec_matches,
)
from rescue.i18n import _
from rescue.plan.fixups import FixupStep


def fix_fstab(s: Session, step: FixupStep) -> FixupResult:
    root = s.root(list(step.params.get("root_candidates", [])))
    original = read_in_root(root, "etc/fstab", FSTAB_LIMIT)
    if original is None:
        raise StepFailed(_("/etc/fstab of the restored system is no regular file that can "
                           "be read."))
    entries = parse_fstab(original)
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
        number = kernel_device_partition(e.spec, source_disk)
        if number is not None and number in facts and facts[number].get("UUID"):
            rewrites[e.line_no] = (e.spec, f"UUID={facts[number]['UUID']}")
        elif any(spec_matches(e.spec, f) for f in lvs):
            ok += 1  # an LV's name (/dev/mapper/VG-LV, /dev/VG/LV) does not change
        elif e.spec.startswith("/dev/"):
            warnings.append(_("{spec} ({mountpoint}) names a device path that may change").format(
                spec=e.spec, mountpoint=e.mountpoint))
            ok += 1
    if rewrites:
        # rescue's own file: a link there is replaced, never written through
        write_in_root(root, "etc/fstab.rescue-backup", original, follow_last=False)
        lines = original.splitlines(keepends=True)
        for no, (old, new) in rewrites.items():
            lines[no - 1] = lines[no - 1].replace(old, new, 1)
        write_in_root(root, "etc/fstab", "".join(lines))
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
