"""Fix-up ``uefi-nvram-entry``: a UEFI boot entry for the restored system, written with
efibootmgr (stale entries for the same ESP, or for the disk's former partitions, removed)
and read back; skipped when this machine did not start in UEFI mode."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rescue.engine.bootfix.context import DONE, SKIPPED, FixupResult, StepFailed
from rescue.engine.bootfix.esp import FALLBACK, choose_loader, efi_path, esp_files, find_path
from rescue.engine.bootfix.session import Session
from rescue.i18n import _
from rescue.plan.fixups import FixupStep


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


def fix_uefi_nvram(s: Session, step: FixupStep) -> FixupResult:
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
    loader = efi_path(pairs[0][0]) if pairs else None
    if loader is None:
        if not find_path(files, FALLBACK):
            raise StepFailed(_("The ESP holds no UEFI loader for a boot entry to point at."))
        loader = efi_path(FALLBACK)
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
