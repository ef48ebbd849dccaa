"""The compatibility verdict: will an image made on one machine boot on another? Pure.

Public API::

    compare(image_profile: HardwareProfile, machine: HardwareProfile) -> Verdict
    Verdict.level           # "compatible" | "fixups" | "blocked"
    Verdict.differences     # list[Difference]: component, klass, source, target,
                            #   meaning, action, effect
    Verdict.initramfs_drivers  # kernel modules the target's storage needs at boot
    Verdict.exit_code       # EXIT_CODES[level]
    Verdict.to_dict() / Verdict.from_dict(d) / verdict.describe() -> list[str]

``klass`` is ``"boot-critical"`` (CPU architecture/vendor/feature level, firmware mode,
Secure Boot, storage controller and its driver, boot-disk bus, motherboard) or
``"other"`` (NICs, GPUs, audio: "install drivers after restore").
``effect`` says what the difference does to the verdict: ``"none"`` (informational),
``"fixup"`` (the restore changes the restored system so it boots here), ``"warning"``
(nothing can be done automatically; the technician must check), ``"block"`` (the image
cannot boot here; ``rescue restore`` refuses without ``--force``). The level is
``blocked`` if any difference blocks, ``fixups`` if any needs a fix-up or carries a
warning, else ``compatible``. The rules are documented in docs/COMPATIBILITY.md.

``machine`` is the profile of the machine in front of the technician; its ``boot_disk``
should describe the restore target (``collect_profile(boot_disk=target)``). When either
side has no boot disk, the storage controllers are compared instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rescue.errors import IncompatibleImageError
from rescue.hardware.profile import (
    BootDisk,
    HardwareProfile,
    HwDevice,
    driver_module,
    normalize_arch,
)
from rescue.i18n import N_, _

BOOT_CRITICAL = "boot-critical"
OTHER = "other"

LEVEL_COMPATIBLE = "compatible"
LEVEL_FIXUPS = "fixups"
LEVEL_BLOCKED = "blocked"

EFFECT_NONE = "none"
EFFECT_FIXUP = "fixup"
EFFECT_WARNING = "warning"
EFFECT_BLOCK = "block"

# Exit codes of `rescue compat` (and the restore's pre-check): 0, 24, 23.
EXIT_CODES = {
    LEVEL_COMPATIBLE: 0,
    LEVEL_FIXUPS: 24,
    LEVEL_BLOCKED: IncompatibleImageError.exit_code,
}

# Translated where shown (Verdict.describe).
LEVEL_TEXT = {
    LEVEL_COMPATIBLE: N_("compatible"),
    LEVEL_FIXUPS: N_("compatible with fix-ups"),
    LEVEL_BLOCKED: N_("blocked"),
}
KLASS_HEADING = {
    BOOT_CRITICAL: N_("Boot-critical differences:"),
    OTHER: N_("Other differences:"),
}

# Architectures whose binaries a machine of the key architecture runs natively.
_RUNS = {
    "x86_64": {"x86_64", "i686"},
    "aarch64": {"aarch64", "armv7l"},
}

_CPU_VENDOR = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}


@dataclass
class Difference:
    component: str  # "cpu.architecture", "firmware", "storage.driver", "network", ...
    klass: str  # "boot-critical" | "other"
    source: str  # what the image's machine had
    target: str  # what this machine has
    meaning: str  # what the difference means for the restored system
    action: str  # what the restore does about it (or what the technician must do)
    effect: str = EFFECT_NONE  # "none" | "fixup" | "warning" | "block"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Difference:
        return cls(
            component=str(d.get("component", "")),
            klass=str(d.get("klass", OTHER)),
            source=str(d.get("source", "")),
            target=str(d.get("target", "")),
            meaning=str(d.get("meaning", "")),
            action=str(d.get("action", "")),
            effect=str(d.get("effect", EFFECT_NONE)),
        )


@dataclass
class Verdict:
    level: str = LEVEL_COMPATIBLE
    differences: list[Difference] = field(default_factory=list)
    initramfs_drivers: list[str] = field(default_factory=list)
    uefi_entry_needed: bool = False  # the restore must create an NVRAM boot entry

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.level]

    @property
    def blocked(self) -> bool:
        return self.level == LEVEL_BLOCKED

    def boot_critical(self) -> list[Difference]:
        return [d for d in self.differences if d.klass == BOOT_CRITICAL]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exit_code"] = self.exit_code
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(
            level=str(d.get("level", LEVEL_COMPATIBLE)),
            differences=[Difference.from_dict(x) for x in d.get("differences", [])],
            initramfs_drivers=list(d.get("initramfs_drivers", [])),
            uefi_entry_needed=bool(d.get("uefi_entry_needed", False)),
        )

    def describe(self) -> list[str]:
        """Lines for people (CLI, log, confirm screen)."""
        level = _(LEVEL_TEXT[self.level]) if self.level in LEVEL_TEXT else self.level
        lines = [_("Verdict: {level}").format(level=level)]
        if not self.differences:
            lines.append(_("No hardware differences that matter were found."))
        for klass in (BOOT_CRITICAL, OTHER):
            diffs = [d for d in self.differences if d.klass == klass]
            if not diffs:
                continue
            lines.append(_(KLASS_HEADING[klass]))
            for d in diffs:
                lines.append(f"  - {d.component}: {d.source or _('none')} -> "
                             f"{d.target or _('none')}")
                lines.append(f"      {d.meaning}")
                lines.append("      " + _("Restore: {action}").format(action=d.action))
        if self.initramfs_drivers:
            lines.append(_("Storage drivers needed at boot: {drivers}").format(
                drivers=", ".join(self.initramfs_drivers)))
        return lines


def _level(diffs: list[Difference]) -> str:
    effects = {d.effect for d in diffs}
    if EFFECT_BLOCK in effects:
        return LEVEL_BLOCKED
    if effects & {EFFECT_FIXUP, EFFECT_WARNING}:
        return LEVEL_FIXUPS
    return LEVEL_COMPATIBLE


def _names(devs: list[HwDevice]) -> list[str]:
    out: list[str] = []
    for d in devs:
        k = d.key
        if k and k not in out:
            out.append(k)
    return sorted(out)


def _cpu_vendor(v: str) -> str:
    return _CPU_VENDOR.get(v, v)


def _compare_cpu(img: HardwareProfile, mach: HardwareProfile) -> list[Difference]:
    diffs: list[Difference] = []
    a_src = normalize_arch(img.architecture or img.cpu.architecture)
    a_dst = normalize_arch(mach.architecture or mach.cpu.architecture)
    if a_src and a_dst and a_src != a_dst:
        if a_src in _RUNS.get(a_dst, set()):
            diffs.append(Difference(
                "cpu.architecture", BOOT_CRITICAL, a_src, a_dst,
                _("This {target} machine also runs {source} systems natively.").format(
                    target=a_dst, source=a_src),
                _("Nothing to do."), EFFECT_NONE))
        else:
            diffs.append(Difference(
                "cpu.architecture", BOOT_CRITICAL, a_src, a_dst,
                _("A system built for {source} cannot run on a {target} processor: its kernel "
                  "and every program are machine code for another instruction set.").format(
                    source=a_src, target=a_dst),
                _("Refused: restore this image on a machine with a {source} processor "
                  "(--force writes it anyway, but it will not start).").format(source=a_src),
                EFFECT_BLOCK))
        return diffs  # vendor and level are meaningless across architectures
    v_src, v_dst = _cpu_vendor(img.cpu.vendor), _cpu_vendor(mach.cpu.vendor)
    if v_src and v_dst and v_src != v_dst:
        diffs.append(Difference(
            "cpu.vendor", BOOT_CRITICAL, v_src, v_dst,
            _("A Linux kernel supports both vendors and starts; the CPU microcode package "
              "({package} on Debian) and vendor-specific tuning differ.").format(
                package=f"{v_dst.lower()}-microcode"),
            _("Nothing to do for booting; install the matching microcode package after "
              "restore."),
            EFFECT_NONE))
    l_src, l_dst = img.cpu.x86_64_level, mach.cpu.x86_64_level
    if a_dst == "x86_64" and l_src and l_dst and l_dst < l_src:
        diffs.append(Difference(
            "cpu.x86_64_level", BOOT_CRITICAL, f"x86-64-v{l_src}", f"x86-64-v{l_dst}",
            _("This processor lacks instructions the source had ({source}). Systems and "
              "programs built for {above} or above stop with 'illegal instruction' (RHEL 9 "
              "needs v2, RHEL 10 v3; Debian and Ubuntu need v1).").format(
                source=f"x86-64-v{l_src}", above=f"x86-64-v{l_dst + 1}"),
            _("The restore cannot change this: check that the restored system's minimum is "
              "{level} or lower.").format(level=f"x86-64-v{l_dst}"),
            EFFECT_WARNING))
    return diffs


def _compare_firmware(
    img: HardwareProfile, mach: HardwareProfile
) -> tuple[list[Difference], bool]:
    diffs: list[Difference] = []
    f_src, f_dst = img.firmware, mach.firmware
    uefi_entry = f_dst == "uefi" and f_src == "uefi"
    if f_src and f_dst and f_src != f_dst:
        src_u, dst_u = f_src.upper(), f_dst.upper()
        diffs.append(Difference(
            "firmware", BOOT_CRITICAL, src_u, dst_u,
            _("The image boots through {source}, but this machine started the rescue system "
              "in {target} mode: a {source} boot loader does not start from {target}.").format(
                source=src_u, target=dst_u),
            _("Refused: restart the rescue medium in {source} mode (firmware setup: {setting}) "
              "and restore from there; --force restores anyway and the system will not start "
              "until a matching boot loader is installed.").format(
                source=src_u,
                setting=_("enable UEFI boot") if f_src == "uefi"
                else _("enable CSM/legacy boot")),
            EFFECT_BLOCK))
        return diffs, False
    if uefi_entry:
        same_board = (
            img.system.product_name == mach.system.product_name
            and img.system.board_name == mach.system.board_name
            and img.system.sys_vendor == mach.system.sys_vendor
        )
        if not same_board or not (img.system.product_name or img.system.board_name):
            diffs.append(Difference(
                "firmware.boot_entry", BOOT_CRITICAL, "source NVRAM", "this machine's NVRAM",
                _("UEFI boot entries live in the motherboard's NVRAM, not on the disk; this "
                  "machine has no entry for the restored system."),
                _("The restore creates an NVRAM boot entry (efibootmgr) and the fallback "
                  "loader \\EFI\\BOOT\\BOOTX64.EFI."),
                EFFECT_FIXUP))
    if f_dst == "uefi" and mach.secure_boot and not img.secure_boot:
        diffs.append(Difference(
            "firmware.secure_boot", BOOT_CRITICAL,
            "off" if img.secure_boot is False else "unknown", "on",
            _("Secure Boot is on here but was not on the source: an unsigned boot loader or "
              "kernel (or unsigned DKMS modules) will be refused by the firmware."),
            _("Nothing automatic: if the restored system does not start, disable Secure Boot "
              "in the firmware setup."),
            EFFECT_WARNING))
    return diffs, uefi_entry


def _controller_modules(p: HardwareProfile) -> list[str]:
    out: list[str] = []
    for d in p.storage:
        m = driver_module(d.driver, d.module) if d.driver else None
        if m and m not in out:
            out.append(m)
    return out


def _real_disk(p: HardwareProfile) -> BootDisk | None:
    """The boot disk unless it is a stand-in (loop device in tests and demos) or unknown."""
    d = p.boot_disk
    return d if d is not None and d.bus not in ("", "loop", "virtual") else None


def _compare_storage(
    img: HardwareProfile, mach: HardwareProfile
) -> tuple[list[Difference], list[str]]:
    diffs: list[Difference] = []
    need = mach.storage_modules()
    have = img.storage_modules()
    src_disk, dst_disk = _real_disk(img), _real_disk(mach)
    if dst_disk is None:
        # Target disk unknown: only a controller the source did not have at all counts.
        have = have + [m for m in _controller_modules(img) if m not in have]
    if src_disk and dst_disk and src_disk.bus and dst_disk.bus and src_disk.bus != dst_disk.bus:
        diffs.append(Difference(
            "boot_disk.bus", BOOT_CRITICAL, src_disk.bus, dst_disk.bus,
            _("The system disk moves from {source} to {target}: its device name changes "
              "(e.g. {old} becomes {new}), so anything naming the disk by device path "
              "(fstab, boot loader, crypttab) would point nowhere.").format(
                source=src_disk.bus, target=dst_disk.bus,
                old=f"/dev/{src_disk.name or 'sda'}", new=f"/dev/{dst_disk.name or 'nvme0n1'}"),
            _("The restore keeps filesystem and partition UUIDs and checks that fstab and the "
              "boot loader refer to them, rewriting device paths where found."),
            EFFECT_FIXUP))
    missing = [m for m in need if m not in have]
    if missing:
        src_names = (src_disk.controller if src_disk else "") or ", ".join(have) or "unknown"
        dst_names = (dst_disk.controller if dst_disk else "") or ", ".join(need)
        diffs.append(Difference(
            "storage.driver", BOOT_CRITICAL, src_names, dst_names,
            _("Storage controller changed from {source} to {target}: the restored system's "
              "initramfs must contain {drivers} or the kernel cannot find its root "
              "filesystem.").format(source=src_names, target=dst_names,
                                    drivers=", ".join(missing)),
            _("The restore adds {drivers} to the initramfs (rebuilt in a chroot).").format(
                drivers=", ".join(missing)),
            EFFECT_FIXUP))
    # Controllers that are not on the boot path: only information.
    s_src, s_dst = set(_names(img.storage)), set(_names(mach.storage))
    boot_path = set(need) | set(have)
    gone = sorted(s_src - s_dst - boot_path)
    new = sorted(s_dst - s_src - boot_path)
    if gone or new:
        diffs.append(Difference(
            "storage.other", OTHER, ", ".join(gone) or "-", ", ".join(new) or "-",
            _("Storage controllers away from the system disk differ: disks behind a missing "
              "controller are absent after restore, and their fstab entries must be "
              "'nofail' or removed."),
            _("Nothing automatic; check /etc/fstab for data disks after restore."),
            EFFECT_NONE))
    return diffs, need


def _compare_board(img: HardwareProfile, mach: HardwareProfile) -> list[Difference]:
    a = " ".join(x for x in (img.system.sys_vendor, img.system.product_name) if x)
    b = " ".join(x for x in (mach.system.sys_vendor, mach.system.product_name) if x)
    if a and b and a != b:
        return [Difference(
            "motherboard", BOOT_CRITICAL, a, b,
            _("Another motherboard (chipset) is a boot-critical change: the Linux kernel "
              "detects the chipset at boot; what it needs to boot (storage driver, firmware "
              "mode, boot entry) is checked separately above."),
            _("Nothing more than the storage and firmware fix-ups listed here."),
            EFFECT_NONE)]
    return []


def _compare_other(kind: str, src: list[HwDevice], dst: list[HwDevice]) -> list[Difference]:
    a, b = _names(src), _names(dst)
    if a == b:
        return []
    if kind == "network":
        meaning = _("Other network adapters: not needed to boot; the restored system needs "
                    "their drivers. Interface names (e.g. enp3s0) and MAC addresses change, so "
                    "network settings bound to the old names need updating.")
    elif kind == "display":
        meaning = _("Other graphics adapters: not needed to boot; the restored system needs "
                    "their drivers.")
    else:
        meaning = _("Other audio devices: not needed to boot; the restored system needs "
                    "their drivers.")
    return [Difference(
        kind, OTHER, ", ".join(a) or "none", ", ".join(b) or "none", meaning,
        _("Install drivers after restore if the restored system lacks them."),
        EFFECT_NONE)]


def compare(image_profile: HardwareProfile, machine: HardwareProfile) -> Verdict:
    """Classify every difference between the image's source and this machine."""
    diffs = _compare_cpu(image_profile, machine)
    fw, uefi_entry = _compare_firmware(image_profile, machine)
    diffs += fw
    storage, drivers = _compare_storage(image_profile, machine)
    diffs += storage
    diffs += _compare_board(image_profile, machine)
    diffs += _compare_other("network", image_profile.network, machine.network)
    diffs += _compare_other("display", image_profile.display, machine.display)
    diffs += _compare_other("audio", image_profile.audio, machine.audio)
    return Verdict(
        level=_level(diffs),
        differences=diffs,
        initramfs_drivers=drivers,
        uefi_entry_needed=uefi_entry,
    )
