"""Boot fix-ups as a plan: pure decisions about which steps a restore needs.

After the data is written, the table re-read and the filesystems grown, the restore
executor runs these steps (``rescue.engine.bootfix.run_fixups``). They are data, so the
summary screen lists them, the log records them and ``--dry-run`` prints them:

    bios-boot-code        BIOS firmware: the MBR boot code and GRUB's core image (post-MBR
                          gap or bios_grub partition) really are on the target
    uefi-fallback-loader  UEFI firmware: \\EFI\\BOOT\\BOOTX64.EFI on the ESP (copied from the
                          installed loader when the image lacks it)
    uefi-nvram-entry      UEFI firmware: an NVRAM boot entry for the restored system
                          (efibootmgr; stale entries for the same ESP replaced; read back)
    initramfs-drivers     the target's storage drivers in the restored initramfs (rebuilt in
                          a chroot: initramfs-tools or dracut)
    fstab-check           every /etc/fstab entry (and GRUB's root=) resolves to a restored
                          UUID/label; source-disk device names rewritten to UUID=

The root is looked for on the partitions whose filesystem is ext*, xfs or btrfs (the root
may be a subvolume) and on LVM physical volumes (the root may be a linear LV), largest
first; the executor decides which one holds /etc/fstab.

Every step can be skipped by name (``skip``); a skipped step stays in the plan, marked,
so the technician sees what will not happen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rescue.errors import UsageError
from rescue.fs import registry
from rescue.i18n import N_, _
from rescue.image.manifest import Manifest, Partition

ESP_TYPES = {"C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EF"}
BIOS_GRUB_TYPE = "21686148-6449-6E6F-744E-656564454649"
LINUX_ROOT_FILESYSTEMS = registry.linux_root_types()
# Where the restored root may be: a filesystem on a partition (the root itself, or btrfs
# with the root in a subvolume) or an LVM PV (the root in one of its linear LVs); the
# types' records in rescue.fs.registry say which (linux_root, root_container).
ROOT_CONTAINERS = registry.root_container_types()

# English in the plan (JSON, reports); translated where shown (FixupStep.display_title).
STEP_TITLES = {
    "bios-boot-code": N_("Check the BIOS boot code (MBR and GRUB core image)"),
    "uefi-fallback-loader": N_(
        "Make sure the UEFI fallback loader \\EFI\\BOOT\\BOOTX64.EFI exists"),
    "uefi-nvram-entry": N_("Create the UEFI boot entry for the restored system"),
    "initramfs-drivers": N_("Add the storage drivers this machine needs to the initramfs"),
    "fstab-check": N_("Check /etc/fstab and the boot loader's root= against the restored UUIDs"),
}
FIXUP_NAMES = tuple(STEP_TITLES)

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
        if p.type.upper() in ESP_TYPES or (p.filesystem == "vfat" and p.name == "EFI System"):
            return p
    return None


def check_skip(skip: set[str] | list[str]) -> set[str]:
    unknown = sorted(set(skip) - set(FIXUP_NAMES))
    if unknown:
        raise UsageError(_("Unknown boot fix-up {names}; the fix-ups are {known}.").format(
            names=", ".join(unknown), known=", ".join(FIXUP_NAMES)))
    return set(skip)


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
    disk = manifest.disks[disk_index]
    parts = sorted(disk.partitions, key=lambda p: p.number)
    esp = _esp(parts)
    linux = sorted(
        (p for p in parts if p.filesystem in ROOT_CONTAINERS),
        key=lambda p: (-p.size, p.number),
    )
    root_candidates = [p.number for p in linux]
    steps: list[FixupStep] = []

    def add(name: str, **params: Any) -> None:
        steps.append(FixupStep(name, STEP_TITLES[name], params, name in skipped))

    bios_grub = next((p.number for p in parts if p.type.upper() == BIOS_GRUB_TYPE), None)
    boot_code = any(a.name == "mbr-boot-code" and a.data.chunks for a in disk.boot_areas)
    # A data disk (no boot code, no bios_grub, no ESP) needs no boot-loader steps.
    bootable = boot_code or bios_grub is not None or esp is not None
    if firmware == "bios" and bootable:
        add(
            "bios-boot-code",
            table=disk.table,
            bios_grub_partition=bios_grub,
            boot_areas=[a.name for a in disk.boot_areas],
            image_firmware=manifest.firmware,
        )
    if firmware == "uefi" and bootable:
        if esp is None:
            # Nothing to fix on the disk: say so in the plan, the step will fail honestly.
            add("uefi-fallback-loader", esp_partition=None, os_id=manifest.os_id)
        else:
            add("uefi-fallback-loader", esp_partition=esp.number, os_id=manifest.os_id)
            add(
                "uefi-nvram-entry",
                esp_partition=esp.number,
                esp_partuuid=(esp.uuid or "").lower(),
                os_id=manifest.os_id,
                label=_entry_label(manifest),
            )
    drivers = expand_drivers(storage_drivers)
    if drivers and root_candidates:
        add("initramfs-drivers", drivers=drivers, root_candidates=root_candidates)
    if root_candidates:
        add(
            "fstab-check",
            root_candidates=root_candidates,
            source_disk=disk.source_path,
        )
    return steps


def _entry_label(manifest: Manifest) -> str:
    name = manifest.os_name or manifest.os_id or "Linux"
    label = f"{name} ({manifest.computer})" if manifest.computer else name
    return label[:60]


def steps_to_json(steps: list[FixupStep]) -> list[dict[str, Any]]:
    return [s.to_dict() for s in steps]


def steps_from_json(data: list[dict[str, Any]]) -> list[FixupStep]:
    return [FixupStep.from_dict(d) for d in data]
