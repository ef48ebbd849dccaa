"""The EFI System Partition, read and written with mtools (no vfat mount needed), and the
fix-up ``uefi-fallback-loader``: \\EFI\\BOOT\\BOOTX64.EFI on the ESP, copied from the
installed loader (shim and its GRUB, or GRUB) when the image lacks it, and read back."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from rescue.engine.bootfix.context import DONE, FixupResult, StepFailed
from rescue.engine.bootfix.session import Session
from rescue.i18n import _
from rescue.plan.fixups import FixupStep

FALLBACK = "/EFI/BOOT/BOOTX64.EFI"


def _mtools_env() -> dict[str, str]:
    return dict(os.environ, MTOOLS_SKIP_CHECK="1", MTOOLS_NO_VFAT="1")


def esp_files(s: Session, node: str) -> list[str]:
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


def find_path(files: list[str], path: str) -> str | None:
    want = path.upper()
    return next((f for f in files if f.upper() == want), None)


def choose_loader(files: list[str], os_id: str) -> list[tuple[str, str]]:
    """The installed loader to copy as the fallback, as (source, target-name) pairs.

    Prefers shim (then GRUB) in the image's own distribution directory; shim needs its
    GRUB (and MokManager) beside it in \\EFI\\BOOT."""
    def in_dir(d: str, name: str) -> str | None:
        return find_path(files, f"/EFI/{d}/{name}")

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


def fix_uefi_fallback(s: Session, step: FixupStep) -> FixupResult:
    number = step.params.get("esp_partition")
    if number is None:
        raise StepFailed(_(
            "The image has no EFI System Partition, so it cannot boot on UEFI firmware; "
            "set the firmware to legacy/CSM boot, or install a UEFI boot loader afterwards."
        ))
    node = s.ctx.partitions[number]
    files = esp_files(s, node)
    existing = find_path(files, FALLBACK)
    if existing:
        return FixupResult(step.name, DONE, _(
            "The fallback loader {loader} is already on the ESP."
        ).format(loader=efi_path(existing)))
    pairs = choose_loader(files, step.params.get("os_id", ""))
    if not pairs:
        raise StepFailed(_(
            "The ESP {node} holds no installed UEFI loader to copy as {loader}; "
            "reinstall the boot loader after the restore."
        ).format(node=node, loader=efi_path(FALLBACK)))
    env = _mtools_env()
    tmp = s.workdir() / "esp"
    tmp.mkdir(exist_ok=True)
    if not any(f.upper().startswith("/EFI/BOOT/") for f in files):
        s.run(["mmd", "-i", node, "::/EFI/BOOT"], env=env, check=False)
    copied = []
    for src, name in pairs:
        local = tmp / name
        s.run(["mcopy", "-n", "-o", "-i", node, f"::{src}", str(local)], env=env,
              what=_("Reading {file} from the ESP").format(file=efi_path(src)))
        s.run(["mcopy", "-o", "-i", node, str(local), f"::/EFI/BOOT/{name}"], env=env,
              what=_("Writing {file} to the ESP").format(file="\\EFI\\BOOT\\" + name))
        back = tmp / (name + ".readback")
        s.run(["mcopy", "-n", "-o", "-i", node, f"::/EFI/BOOT/{name}", str(back)], env=env,
              what=_("Reading back {file}").format(file="\\EFI\\BOOT\\" + name))
        if _sha256(back) != _sha256(local):
            raise StepFailed(_(
                "{file} reads back differently from {source}; the ESP may be damaged."
            ).format(file="\\EFI\\BOOT\\" + name, source=efi_path(src)))
        copied.append(f"{efi_path(src)} -> \\EFI\\BOOT\\{name}")
    return FixupResult(step.name, DONE, _(
        "Copied the installed loader as the fallback: {copies}."
    ).format(copies="; ".join(copied)))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def efi_path(path: str) -> str:
    return path.replace("/", "\\")
