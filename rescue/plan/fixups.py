"""Boot fix-ups as a plan: pure decisions about which steps a restore needs, and the
registry of the fix-ups.

After the data is written, the table re-read and the filesystems grown, the restore
executor runs these steps (``rescue.engine.bootfix.run_fixups``). They are data, so the
summary screen lists them, the log records them and ``--dry-run`` prints them.

The registry, :data:`FIXUPS` (at the end of this module), is the one home of what a fix-up
is: its name (what ``--skip-fixup`` takes, what the plan, the log and the report say), its
title (English, marked ``N_()``; translated where shown) and its decision: a pure function
of the image's disk and the machine restored onto that says whether a restore needs the
step and with which facts (``params``) for the executor; its docstring says what the
fix-up does. The registry's order is the order the steps run in. The engine maps each
registered name to its implementation in one table (``rescue.engine.bootfix.HANDLERS``);
tests/unit/test_fixups.py fails when the two disagree.

The root is looked for on the partitions whose filesystem is ext*, xfs or btrfs (the root
may be a subvolume) and on LVM physical volumes (the root may be a linear LV), largest
first; the executor decides which one holds /etc/fstab.

Every step can be skipped by name (``skip``); a skipped step stays in the plan, marked,
so the technician sees what will not happen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from rescue.errors import UsageError
from rescue.fs import registry
from rescue.i18n import N_, _
from rescue.image.manifest import Disk, Manifest, Partition
from rescue.plan import parttypes

LINUX_ROOT_FILESYSTEMS = registry.linux_root_types()
# Where the restored root may be: a filesystem on a partition (the root itself, or btrfs
# with the root in a subvolume) or an LVM PV (the root in one of its linear LVs); the
# types' records in rescue.fs.registry say which (linux_root, root_container).
ROOT_CONTAINERS = registry.root_container_types()

# The fix-ups' names, each registered in FIXUPS below (the engine's table is keyed by these).
BIOS_BOOT_CODE = "bios-boot-code"
UEFI_FALLBACK_LOADER = "uefi-fallback-loader"
UEFI_NVRAM_ENTRY = "uefi-nvram-entry"
INITRAMFS_DRIVERS = "initramfs-drivers"
FSTAB_CHECK = "fstab-check"

# Kernel modules that come with a storage driver: an ATA/SCSI host driver is useless
# without the SCSI disk driver, which is not one of its module dependencies.
COMPANIONS = {
    "ahci": ("sd_mod",),
    "ata_piix": ("sd_mod",),
    "ata_generic": ("sd_mod",),
    "pata_acpi": ("sd_mod",),
    "virtio_scsi": ("sd_mod",),
    "mptsas": ("sd_mod",),
    "mptspi": ("sd_mod",),
    "mpt3sas": ("sd_mod",),
    "megaraid_sas": ("sd_mod",),
    "hpsa": ("sd_mod",),
    "smartpqi": ("sd_mod",),
    "aacraid": ("sd_mod",),
    "vmw_pvscsi": ("sd_mod",),
    "hv_storvsc": ("sd_mod",),
    "xen_blkfront": (),
    "usb_storage": ("sd_mod",),
    "uas": ("sd_mod",),
    "mmc_block": (),
    "sdhci_pci": ("mmc_block",),
    "nvme": (),
    "vmd": ("nvme",),
    "virtio_blk": ("virtio_pci",),
}


@dataclass
class FixupStep:
    """One boot fix-up: what it is (``name``), what the summary screen shows (``title``),
    and the facts the executor needs (``params``). JSON-serialisable."""

    name: str
    title: str
    params: dict[str, Any] = field(default_factory=dict)
    skip: bool = False  # listed, but skipped by an option

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FixupStep:
        return cls(
            name=str(d["name"]),
            title=str(d["title"]),
            params=dict(d.get("params", {})),
            skip=bool(d.get("skip", False)),
        )

    @property
    def display_title(self) -> str:
        """The title in the current language (the plan keeps it in English)."""
        return _(self.title)

    def summary_line(self) -> str:
        if self.skip:
            return _("{title} (skipped by option)").format(title=self.display_title)
        return self.display_title


def module_name(name: str) -> str:
    """Kernel module spelling (underscores, no extension)."""
    base = name.strip().rsplit("/", 1)[-1]
    for ext in (".ko.zst", ".ko.xz", ".ko.gz", ".ko"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base.replace("-", "_")


def expand_drivers(drivers: list[str]) -> list[str]:
    """The drivers plus their companions (``ahci`` -> ``ahci, sd_mod``), deduplicated,
    in order."""
    out: list[str] = []
    for d in drivers:
        m = module_name(d)
        for name in (m, *COMPANIONS.get(m, ())):
            if name and name not in out:
                out.append(name)
    return out


def _esp(parts: list[Partition]) -> Partition | None:
    for p in parts:
        if parttypes.is_esp(p.type) or (p.filesystem == "vfat" and p.name == "EFI System"):
            return p
    return None


def check_skip(skip: set[str] | list[str]) -> set[str]:
    unknown = sorted(set(skip) - set(FIXUP_NAMES))
    if unknown:
        raise UsageError(_("Unknown boot fix-up {names}; the fix-ups are {known}.").format(
            names=", ".join(unknown), known=", ".join(FIXUP_NAMES)))
    return set(skip)


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Target:
    """What the decisions look at: the image's disk being restored and the machine."""

    manifest: Manifest
    disk: Disk
    firmware: str  # "uefi" | "bios": how the machine running the restore booted
    drivers: list[str]  # the storage drivers it needs, with their companions
    esp: Partition | None
    bios_grub: int | None  # the number of the bios_grub partition
    bootable: bool  # boot code, a bios_grub partition or an ESP (else a data disk)
    root_candidates: list[int]  # partitions that may hold the root, largest first

    @classmethod
    def of(cls, manifest: Manifest, disk_index: int, firmware: str,
           storage_drivers: list[str]) -> Target:
        disk = manifest.disks[disk_index]
        parts = sorted(disk.partitions, key=lambda p: p.number)
        esp = _esp(parts)
        linux = sorted(
            (p for p in parts if p.filesystem in ROOT_CONTAINERS),
            key=lambda p: (-p.size, p.number),
        )
        bios_grub = next((p.number for p in parts if parttypes.is_bios_boot(p.type)), None)
        boot_code = any(a.name == "mbr-boot-code" and a.data.stored_chunks
                        for a in disk.boot_areas)
        return cls(
            manifest=manifest, disk=disk, firmware=firmware,
            drivers=expand_drivers(storage_drivers), esp=esp, bios_grub=bios_grub,
            # A data disk (no boot code, no bios_grub, no ESP) needs no boot-loader steps.
            bootable=boot_code or bios_grub is not None or esp is not None,
            root_candidates=[p.number for p in linux],
        )


Params = dict[str, Any]


def _plan_bios_boot_code(t: Target) -> Params | None:
    """BIOS firmware: the MBR boot code and GRUB's core image (post-MBR gap or bios_grub
    partition) really are on the target (checked, read-only)."""
    if t.firmware != "bios" or not t.bootable:
        return None
    return {
        "table": t.disk.table,
        "bios_grub_partition": t.bios_grub,
        "boot_areas": [a.name for a in t.disk.boot_areas],
        "image_firmware": t.manifest.firmware,
    }


def _plan_uefi_fallback_loader(t: Target) -> Params | None:
    """UEFI firmware: \\EFI\\BOOT\\BOOTX64.EFI on the ESP (copied from the installed
    loader when the image lacks it)."""
    if t.firmware != "uefi" or not t.bootable:
        return None
    # Without an ESP there is nothing to fix on the disk: the plan says so, and the step
    # fails honestly.
    return {"esp_partition": t.esp.number if t.esp else None, "os_id": t.manifest.os_id}


def _plan_uefi_nvram_entry(t: Target) -> Params | None:
    """UEFI firmware: an NVRAM boot entry for the restored system (efibootmgr; stale
    entries for the same ESP replaced; read back)."""
    if t.firmware != "uefi" or not t.bootable or t.esp is None:
        return None
    return {
        "esp_partition": t.esp.number,
        "esp_partuuid": (t.esp.uuid or "").lower(),
        "os_id": t.manifest.os_id,
        "label": _entry_label(t.manifest),
    }


def _plan_initramfs_drivers(t: Target) -> Params | None:
    """The target's storage drivers in the restored initramfs (rebuilt in a chroot:
    initramfs-tools or dracut); planned when the machine needs drivers."""
    if not (t.drivers and t.root_candidates):
        return None
    return {"drivers": t.drivers, "root_candidates": t.root_candidates}


def _plan_fstab_check(t: Target) -> Params | None:
    """Every /etc/fstab entry (and GRUB's root=) resolves to a restored UUID/label;
    source-disk device names rewritten to UUID=."""
    if not t.root_candidates:
        return None
    return {"root_candidates": t.root_candidates, "source_disk": t.disk.source_path}


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Fixup:
    """A registered boot fix-up."""

    name: str
    title: str  # English, marked N_(); FixupStep.display_title translates it
    plan: Callable[[Target], Params | None]  # the step's params when needed, else None


# In the order the steps run. Adding a fix-up: a name above, a decision, a line here, and
# its implementation in rescue.engine.bootfix (see that package's docstring).
FIXUPS: tuple[Fixup, ...] = (
    Fixup(BIOS_BOOT_CODE, N_("Check the BIOS boot code (MBR and GRUB core image)"),
          _plan_bios_boot_code),
    Fixup(UEFI_FALLBACK_LOADER, N_(
        "Make sure the UEFI fallback loader \\EFI\\BOOT\\BOOTX64.EFI exists"),
          _plan_uefi_fallback_loader),
    Fixup(UEFI_NVRAM_ENTRY, N_("Create the UEFI boot entry for the restored system"),
          _plan_uefi_nvram_entry),
    Fixup(INITRAMFS_DRIVERS, N_("Add the storage drivers this machine needs to the initramfs"),
          _plan_initramfs_drivers),
    Fixup(FSTAB_CHECK, N_(
        "Check /etc/fstab and the boot loader's root= against the restored UUIDs"),
          _plan_fstab_check),
)
FIXUP_NAMES = tuple(f.name for f in FIXUPS)
# English in the plan (JSON, reports); translated where shown (FixupStep.display_title).
STEP_TITLES = {f.name: f.title for f in FIXUPS}


def plan_fixups(
    manifest: Manifest,
    firmware: str,
    storage_drivers: list[str],
    skip: set[str] | list[str] = frozenset(),  # type: ignore[assignment]
    disk_index: int = 0,
) -> list[FixupStep]:
    """Which boot fix-ups a restore of *manifest* needs on a machine whose firmware is
    *firmware* ("uefi" | "bios") and whose boot disk needs *storage_drivers* (from the
    compatibility verdict; empty when unchanged), for the image's disk *disk_index*. Pure."""
    if firmware not in ("uefi", "bios"):
        raise UsageError(_("Firmware must be 'uefi' or 'bios', not {firmware!r}.").format(
            firmware=firmware))
    skipped = check_skip(skip)
    target = Target.of(manifest, disk_index, firmware, storage_drivers)
    steps: list[FixupStep] = []
    for fixup in FIXUPS:
        params = fixup.plan(target)
        if params is not None:
            steps.append(FixupStep(fixup.name, fixup.title, params, fixup.name in skipped))
    return steps


def _entry_label(manifest: Manifest) -> str:
    name = manifest.os_name or manifest.os_id or "Linux"
    label = f"{name} ({manifest.computer})" if manifest.computer else name
    return label[:60]


def steps_to_json(steps: list[FixupStep]) -> list[dict[str, Any]]:
    return [s.to_dict() for s in steps]


def steps_from_json(data: list[dict[str, Any]]) -> list[FixupStep]:
    return [FixupStep.from_dict(d) for d in data]
