"""Sentences more than one screen shows (no textual here): where an image is, the
hardware verdict."""

from __future__ import annotations

from rescue.devices.notes import ENCRYPTED, LVM
from rescue.i18n import _
from rescue.wizard.model import ImageEntry, VerdictView


def storage_note_text(kind: str, detail: str) -> str:
    """A disk's note in the target list (kinds of rescue.devices.notes): "encrypted:
    LUKS", "LVM volume group vg0: root", "LVM physical volume", "RAID member"."""
    if kind == ENCRYPTED:
        return _("encrypted: {kind}").format(kind=detail)
    if kind == LVM:
        return f"LVM {detail}" if detail else _("LVM physical volume")
    return _("RAID member")


def describe_location(image: ImageEntry) -> str:
    if image.shown:
        return image.shown  # a share or web address, without its password
    return f"{image.location} ({image.medium})" if image.medium else image.location


def verdict_text(verdict: VerdictView | None) -> str:
    if verdict is None:
        return _("Comparing this computer's hardware with the image's…")
    if verdict.level == "same" and not verdict.other:
        return _("Hardware: this computer matches the one the image was made on.")
    lines = []
    if verdict.level == "blocked":
        lines.append(_("Warning: the restored system is not expected to start on this "
                       "computer."))
    if verdict.boot_critical:
        lines.append(_("Boot-critical differences: {items}").format(
            items="; ".join(verdict.boot_critical)))
    else:
        lines.append(_("Hardware: no boot-critical differences."))
    if verdict.other:
        lines.append(_("Other differences (install drivers after restore): {items}").format(
            items="; ".join(verdict.other)))
    if verdict.summary:
        lines.append(verdict.summary)
    return "\n".join(lines)
