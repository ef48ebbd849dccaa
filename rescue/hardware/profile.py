"""Hardware profile of a machine: what an image needs to know about the box it came from.

Public API::

    collect_profile(boot_disk: str | None = None, root: str = "/") -> HardwareProfile
    firmware_type(root: str = "/") -> str                  # "uefi" | "bios"
    HardwareProfile.to_dict() / HardwareProfile.from_dict(data)
    HardwareProfile.load(path)                             # a profile or a recorded machine file
    x86_64_level(flags: Iterable[str]) -> int              # 1..4, 0 when not x86-64

Everything is read from sysfs, procfs and DMI (``/sys/class/dmi/id``); no daemon, no
external command, nothing written. Nothing is read at import time.

``boot_disk`` names the disk whose bus and driver chain matter for booting: when backing
up, the disk being captured; when restoring, the target disk. Without it, the disk
holding ``/`` is used when ``/`` is a real block device (not the live system's overlay).

Every field has a default so older manifests (and the placeholder profile of the core
issue, ``{"architecture", "firmware", "extra"}``) still load.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rescue.devices.blockdev import disk_bus
from rescue.devices.mounts import current_mounts, parent_disk_devnum
from rescue.plan.fixups import module_name
from rescue.recorded import read_member

PROFILE_SCHEMA = 1

# Drivers in a disk's chain that say nothing about its controller.
_GENERIC_DRIVERS = {"sd", "sr", "virtio-pci", "virtio_pci", "pcieport", "usb", "hub", "scsi_host"}

# PCI base classes / subclasses we care about (class code is 0xBBSSPP).
PCI_STORAGE = 0x01
PCI_NETWORK = 0x02
PCI_DISPLAY = 0x03
PCI_MULTIMEDIA = 0x04
PCI_AUDIO_SUBCLASSES = {0x01, 0x03}  # multimedia audio, HD audio

# Virtio PCI device ids (modern 0x104x and transitional 0x100x) -> function.
VIRTIO_KIND = {
    0x1000: "network", 0x1041: "network",
    0x1001: "storage", 0x1042: "storage",
    0x1004: "storage", 0x1048: "storage",
    0x1050: "display",
    0x1059: "audio",
}

_X86_LEVELS = [
    (2, {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"}),
    (3, {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}),
    (4, {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
]
_X86_BASE = {"lm", "cmov", "cx8", "fpu", "fxsr", "mmx", "syscall", "sse", "sse2"}


def normalize_arch(arch: str) -> str:
    """Map the many spellings of an architecture onto the kernel's (``uname -m``) names."""
    a = arch.strip().lower()
    return {
        "amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64",
        "arm64": "aarch64", "i386": "i686", "i486": "i686", "i586": "i686", "x86": "i686",
        "armhf": "armv7l", "ppc64el": "ppc64le",
    }.get(a, a)


def x86_64_level(flags: Iterable[str]) -> int:
    """The x86-64 micro-architecture level (psABI v1..v4) a CPU with *flags* reaches."""
    have = set(flags)
    if not have >= _X86_BASE:
        return 0
    level = 1
    for lvl, need in _X86_LEVELS:
        if need <= have:
            level = lvl
        else:
            break
    return level


@dataclass
class CpuInfo:
    vendor: str = ""  # "GenuineIntel", "AuthenticAMD", "ARM", ...
    model: str = ""  # "AMD EPYC 7763 64-Core Processor"
    architecture: str = ""  # uname -m: x86_64, aarch64, ...
    x86_64_level: int = 0  # 1..4; 0 when not x86-64 or unknown
    cores: int = 0  # logical CPUs

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CpuInfo:
        return cls(
            vendor=str(d.get("vendor", "")),
            model=str(d.get("model", "")),
            architecture=str(d.get("architecture", "")),
            x86_64_level=int(d.get("x86_64_level", 0) or 0),
            cores=int(d.get("cores", 0) or 0),
        )


@dataclass
class SystemInfo:
    """DMI identity of the machine (empty strings where the firmware gives nothing)."""

    sys_vendor: str = ""
    product_name: str = ""
    board_vendor: str = ""
    board_name: str = ""
    bios_vendor: str = ""
    bios_version: str = ""
    chassis_type: str = ""
    virtual: bool = False  # a hypervisor flag is set in /proc/cpuinfo

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SystemInfo:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class HwDevice:
    """A controller or peripheral with the kernel driver bound to it."""

    kind: str  # "storage" | "network" | "display" | "audio"
    bus: str = "pci"  # "pci" | "virtio" | "usb" | "platform"
    address: str = ""  # PCI slot ("0000:00:17.0") or interface name for NICs
    vendor_id: str = ""  # "0x8086"
    device_id: str = ""  # "0xa352"
    class_id: str = ""  # PCI class "0x010601"
    driver: str = ""  # bound kernel driver ("ahci", "nvme", "virtio_blk", "e1000e")
    module: str = ""  # kernel module providing the driver ("" when built in)
    description: str = ""  # e.g. "SATA controller (AHCI)"

    @property
    def key(self) -> str:
        """What identifies this kind of device across machines (driver, else ids)."""
        return self.driver or f"{self.vendor_id}:{self.device_id}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HwDevice:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class BootDisk:
    """The disk the system boots from, as seen from the storage stack."""

    name: str = ""  # kernel name at profiling time: "nvme0n1", "sda", "vda"
    bus: str = ""  # "nvme" | "sata" | "scsi" | "usb" | "virtio" | "mmc" | "loop"
    model: str = ""
    drivers: list[str] = field(default_factory=list)  # disk -> root, e.g. ["sd", "ahci"]
    modules: list[str] = field(default_factory=list)  # loadable modules among them

    @property
    def controller(self) -> str:
        """The driver of the controller the disk hangs off ("ahci", "nvme", "virtio_blk",
        "uas", "megaraid_sas"): the first driver in the chain that is not a generic
        disk, bus or bridge driver."""
        for d in self.drivers:
            if d not in _GENERIC_DRIVERS:
                return d
        return self.drivers[0] if self.drivers else ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BootDisk:
        return cls(
            name=str(d.get("name", "")),
            bus=str(d.get("bus", "")),
            model=str(d.get("model", "")),
            drivers=list(d.get("drivers") or []),
            modules=list(d.get("modules") or []),
        )


@dataclass
class HardwareProfile:
    architecture: str = ""
    firmware: str = ""  # "uefi" | "bios"
    secure_boot: bool | None = None  # None: unknown or BIOS
    cpu: CpuInfo = field(default_factory=CpuInfo)
    system: SystemInfo = field(default_factory=SystemInfo)
    storage: list[HwDevice] = field(default_factory=list)
    boot_disk: BootDisk | None = None
    network: list[HwDevice] = field(default_factory=list)
    display: list[HwDevice] = field(default_factory=list)
    audio: list[HwDevice] = field(default_factory=list)
    memory_bytes: int = 0
    schema: int = PROFILE_SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardwareProfile:
        cpu = CpuInfo.from_dict(data.get("cpu") or {})
        arch = str(data.get("architecture", "") or cpu.architecture)
        if not cpu.architecture:
            cpu.architecture = arch
        boot = data.get("boot_disk") if isinstance(data.get("boot_disk"), dict) else None
        sb = data.get("secure_boot")
        return cls(
            architecture=arch,
            firmware=str(data.get("firmware", "")),
            secure_boot=None if sb is None else bool(sb),
            cpu=cpu,
            system=SystemInfo.from_dict(data.get("system") or {}),
            storage=_devices(data.get("storage")),
            boot_disk=BootDisk.from_dict(boot) if boot else None,
            network=_devices(data.get("network")),
            display=_devices(data.get("display")),
            audio=_devices(data.get("audio")),
            memory_bytes=int(data.get("memory_bytes", 0) or 0),
            schema=int(data.get("schema", PROFILE_SCHEMA) or PROFILE_SCHEMA),
            extra=dict(data.get("extra") or {}),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HardwareProfile:
        """Read a profile from a JSON file: a bare profile or a recorded machine file
        (``rescue devices --dump``), whose ``hardware`` member is used."""
        return cls.from_dict(read_member(path, "hardware", "hardware profile",
                                         "hardware profile"))

    def storage_modules(self) -> list[str]:
        """Kernel modules the storage stack of this machine needs to reach its boot disk
        (the boot disk's chain when known, else every storage controller's driver)."""
        names: list[str | None]
        if self.boot_disk and self.boot_disk.bus in ("loop", "virtual"):
            names = [driver_module(d.driver, d.module) for d in self.storage if d.driver]
        elif self.boot_disk and self.boot_disk.modules:
            names = list(self.boot_disk.modules)
        elif self.boot_disk and self.boot_disk.drivers:
            names = [driver_module(d) for d in self.boot_disk.drivers]
        else:
            names = [driver_module(d.driver, d.module) for d in self.storage if d.driver]
        out: list[str] = []
        for n in names:
            if n and n not in out:
                out.append(n)
        return out


def _devices(items: Any) -> list[HwDevice]:
    return [HwDevice.from_dict(d) for d in items or [] if isinstance(d, dict)]


# --------------------------------------------------------------------------- probing


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return default


def firmware_type(root: str = "/") -> str:
    """How the running system was booted: ``"uefi"`` or ``"bios"``."""
    return "uefi" if (Path(root) / "sys/firmware/efi").is_dir() else "bios"


def secure_boot_state(root: str = "/") -> bool | None:
    """Secure Boot on/off from the SecureBoot EFI variable; None when unknown/BIOS."""
    efivars = Path(root) / "sys/firmware/efi/efivars"
    try:
        candidates = list(efivars.glob("SecureBoot-*"))
    except OSError:
        return None
    for var in candidates:
        try:
            data = var.read_bytes()
        except OSError:
            continue
        if len(data) >= 5:  # 4 bytes of attributes, then the value
            return data[4] == 1
    return None


def parse_cpuinfo(text: str, machine: str) -> CpuInfo:
    """Pure: a CpuInfo from the text of /proc/cpuinfo and ``uname -m``."""
    first: dict[str, str] = {}
    count = 0
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            count += 1
        first.setdefault(key, value)
    vendor = first.get("vendor_id") or first.get("cpu implementer", "")
    if vendor.startswith("0x"):
        vendor = {"0x41": "ARM", "0x51": "Qualcomm", "0x61": "Apple", "0x48": "HiSilicon"}.get(
            vendor, vendor
        )
    model = first.get("model name") or first.get("cpu model") or first.get("cpu part", "")
    flags = (first.get("flags") or first.get("features") or "").split()
    arch = normalize_arch(machine)
    return CpuInfo(
        vendor=vendor,
        model=re.sub(r"\s+", " ", model),
        architecture=arch,
        x86_64_level=x86_64_level(flags) if arch == "x86_64" else 0,
        cores=count,
    )


def _pci_description(klass: int) -> str:
    base, sub, prog = klass >> 16, (klass >> 8) & 0xFF, klass & 0xFF
    names = {
        (0x01, 0x00): "SCSI controller",
        (0x01, 0x01): "IDE controller",
        (0x01, 0x04): "RAID controller",
        (0x01, 0x05): "ATA controller",
        (0x01, 0x06): "SATA controller (AHCI)" if prog == 0x01 else "SATA controller",
        (0x01, 0x07): "SAS controller",
        (0x01, 0x08): "NVMe controller" if prog == 0x02 else "Non-volatile memory controller",
        (0x01, 0x80): "Mass storage controller",
        (0x02, 0x00): "Ethernet controller",
        (0x02, 0x80): "Network controller",
        (0x03, 0x00): "VGA compatible controller",
        (0x03, 0x02): "3D controller",
        (0x03, 0x80): "Display controller",
        (0x04, 0x01): "Multimedia audio controller",
        (0x04, 0x03): "Audio device",
    }
    return names.get((base, sub), f"PCI class {klass:#08x}")


def _driver_and_module(dev_dir: Path) -> tuple[str, str]:
    drv = dev_dir / "driver"
    if not drv.exists():
        return "", ""
    driver = os.path.basename(os.readlink(drv))
    module = ""
    mod = drv / "module"
    if mod.exists():
        module = os.path.basename(os.path.realpath(mod))
    return driver, module


def _virtio_child(dev_dir: Path) -> Path | None:
    for child in sorted(dev_dir.glob("virtio*")):
        if child.is_dir():
            return child
    return None


def collect_pci(root: str = "/") -> list[tuple[str, HwDevice]]:
    """Every PCI function that is storage, network, display or audio, with its driver."""
    found: list[tuple[str, HwDevice]] = []
    base_dir = Path(root) / "sys/bus/pci/devices"
    if not base_dir.is_dir():
        return found
    for dev_dir in sorted(base_dir.iterdir()):
        try:
            klass = int(_read(dev_dir / "class", "0"), 16)
        except ValueError:
            continue
        vendor, device = _read(dev_dir / "vendor"), _read(dev_dir / "device")
        driver, module = _driver_and_module(dev_dir)
        bus = "pci"
        kind = ""
        base, sub = klass >> 16, (klass >> 8) & 0xFF
        description = _pci_description(klass)
        if vendor == "0x1af4":  # virtio: the function's driver sits on the virtio child
            try:
                kind = VIRTIO_KIND.get(int(device, 16), "")
            except ValueError:
                kind = ""
            child = _virtio_child(dev_dir)
            if child is not None:
                cdriver, cmodule = _driver_and_module(child)
                if cdriver:
                    driver, module = cdriver, cmodule
            bus = "virtio"
            description = f"virtio {kind or 'device'}"
        elif base == PCI_STORAGE:
            kind = "storage"
        elif base == PCI_NETWORK:
            kind = "network"
        elif base == PCI_DISPLAY:
            kind = "display"
        elif base == PCI_MULTIMEDIA and sub in PCI_AUDIO_SUBCLASSES:
            kind = "audio"
        if not kind:
            continue
        found.append(
            (
                str(dev_dir.resolve()),
                HwDevice(
                    kind=kind,
                    bus=bus,
                    address=dev_dir.name,
                    vendor_id=vendor,
                    device_id=device,
                    class_id=f"{klass:#08x}",
                    driver=driver,
                    module=module,
                    description=description,
                ),
            )
        )
    return found


def collect_nics(root: str = "/") -> list[HwDevice]:
    """Physical network interfaces (those backed by a device) with their drivers."""
    out: list[HwDevice] = []
    net = Path(root) / "sys/class/net"
    if not net.is_dir():
        return out
    for iface in sorted(net.iterdir()):
        dev = iface / "device"
        if not dev.exists():
            continue  # lo, bridges, tunnels, ifb...
        driver, module = _driver_and_module(dev)
        real = dev.resolve()
        if "/usb" in str(real):
            bus = "usb"
        else:
            bus = "virtio" if real.name.startswith("virtio") else "pci"
        pci_dir = real.parent if bus == "virtio" else real
        out.append(
            HwDevice(
                kind="network",
                bus=bus,
                address=iface.name,
                vendor_id=_read(pci_dir / "vendor"),
                device_id=_read(pci_dir / "device"),
                driver=driver,
                module=module,
                description="wireless" if (iface / "wireless").exists() else "ethernet",
            )
        )
    return out


def _dmi(root: str) -> SystemInfo:
    dmi = Path(root) / "sys/class/dmi/id"
    return SystemInfo(
        sys_vendor=_read(dmi / "sys_vendor"),
        product_name=_read(dmi / "product_name"),
        board_vendor=_read(dmi / "board_vendor"),
        board_name=_read(dmi / "board_name"),
        bios_vendor=_read(dmi / "bios_vendor"),
        bios_version=_read(dmi / "bios_version"),
        chassis_type=_read(dmi / "chassis_type"),
    )


# Driver names (as sysfs shows them) whose module has another name, and drivers that are
# part of every kernel (None) and never need to go into an initramfs.
_DRIVER_MODULE: dict[str, str | None] = {
    "sd": "sd_mod",
    "sr": "sr_mod",
    "xhci_hcd": "xhci_pci",
    "ehci-pci": "ehci_pci",
    "mmcblk": "mmc_block",
    "pcieport": None,
    "usb": None,
    "hub": None,
    "scsi_host": None,
}


def driver_module(driver: str, module: str = "") -> str | None:
    """The module name an initramfs needs for *driver* (None: always built in)."""
    if module:
        return module
    if driver in _DRIVER_MODULE:
        return _DRIVER_MODULE[driver]
    return module_name(driver)


def driver_chain(sys_block_dir: str) -> tuple[list[str], list[str]]:
    """Drivers from a block device up to the root of the device tree, and the kernel
    modules that provide them (by their usual name also when built into the running
    kernel: the restored system's kernel may build them as modules).
    E.g. an AHCI disk: (["sd", "ahci"], ["sd_mod", "ahci"])."""
    drivers: list[str] = []
    modules: list[str] = []
    p = Path(sys_block_dir).resolve()
    while str(p) not in ("/", "/sys", "/sys/devices") and p.name:
        driver, module = _driver_and_module(p) if (p / "driver").exists() else ("", "")
        if driver and driver not in drivers:
            drivers.append(driver)
            mod = driver_module(driver, module)
            if mod and mod not in modules:
                modules.append(mod)
        p = p.parent
    return drivers, modules


def _root_disk(root: str) -> str | None:
    """Kernel name of the disk holding ``/`` when that is a real block device."""
    try:
        mounts = current_mounts(str(Path(root) / "proc/self/mountinfo"))
    except OSError:
        return None
    for m in mounts:
        if m.mountpoint == "/" and os.major(m.devnum) != 0:
            disk = parent_disk_devnum(m.devnum)
            sysdir = Path(f"/sys/dev/block/{os.major(disk)}:{os.minor(disk)}").resolve()
            return sysdir.name
    return None


def boot_disk_info(name: str, root: str = "/") -> BootDisk | None:
    """The bus, model and driver chain of the disk with kernel name *name* (or /dev path)."""
    name = os.path.basename(name)
    sysdir = Path(root) / "sys/class/block" / name
    if not sysdir.exists():
        return None
    if (sysdir / "partition").exists():  # a partition was named: its disk is meant
        sysdir = sysdir.resolve().parent
        name = sysdir.name
    real = str(sysdir.resolve())
    drivers, modules = driver_chain(real)
    model = _read(sysdir / "device/model")
    return BootDisk(name=name, bus=disk_bus(real, name), model=model, drivers=drivers,
                    modules=modules)


def _memory_bytes(root: str) -> int:
    for line in _read(Path(root) / "proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return 0
    return 0


def collect_profile(boot_disk: str | None = None, root: str = "/") -> HardwareProfile:
    """Read-only: the profile of the machine this runs on (see the module docstring)."""
    machine = platform.machine()
    cpuinfo = _read(Path(root) / "proc/cpuinfo")
    cpu = parse_cpuinfo(cpuinfo, machine)
    system = _dmi(root)
    system.virtual = bool(re.search(r"^flags\s*:.*\bhypervisor\b", cpuinfo, re.M))
    pci = collect_pci(root)
    storage = [d for _, d in pci if d.kind == "storage"]
    display = [d for _, d in pci if d.kind == "display"]
    audio = [d for _, d in pci if d.kind == "audio"]
    network = collect_nics(root)
    # PCI NICs without a bound driver do not show up under /sys/class/net: keep them.
    bound = {(n.vendor_id, n.device_id) for n in network}
    network += [
        d for _, d in pci
        if d.kind == "network" and not d.driver and (d.vendor_id, d.device_id) not in bound
    ]
    disk_name = boot_disk or _root_disk(root)
    fw = firmware_type(root)
    return HardwareProfile(
        architecture=cpu.architecture,
        firmware=fw,
        secure_boot=secure_boot_state(root) if fw == "uefi" else None,
        cpu=cpu,
        system=system,
        storage=storage,
        boot_disk=boot_disk_info(disk_name, root) if disk_name else None,
        network=network,
        display=display,
        audio=audio,
        memory_bytes=_memory_bytes(root),
    )
