"""Fix-up ``bios-boot-code``: what legacy BIOS needs to start the disk (MBR boot code,
GRUB's core image in the post-MBR gap or the bios_grub partition) really is on the target.
Read-only."""

from __future__ import annotations

from rescue.engine.bootfix.context import DONE, FixupResult, StepFailed
from rescue.engine.bootfix.session import Session
from rescue.i18n import _
from rescue.plan.fixups import FixupStep


def fix_bios_boot_code(s: Session, step: FixupStep) -> FixupResult:
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
