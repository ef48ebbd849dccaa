"""Boot a disk image in QEMU (TCG, q35) and wait for the test system's marker line.

No KVM on these machines: always ``-machine q35,accel=tcg -cpu max``. Firmware is SeaBIOS
(``bios``) or OVMF with a private writable copy of the variable store (``uefi``). The disk
is attached as virtio-blk, SATA/AHCI (q35's built-in ICH9 controller) or NVMe. The serial
console goes to a file; the harness polls it for the marker or a known failure line and
kills only the QEMU process it started, by PID, when time runs out.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
BUSES = ("virtio", "ahci", "nvme")
FIRMWARES = ("bios", "uefi")

# Lines that mean the boot has failed for good; waiting longer cannot help.
FAILURE_PATTERNS = {
    "root-not-found": re.compile(r"Gave up waiting for root|ALERT! .* does not exist"),
    "initramfs-shell": re.compile(r"\(initramfs\)|Dropping to a shell"),
    "kernel-panic": re.compile(r"Kernel panic - not syncing"),
    "grub-rescue": re.compile(r"grub rescue>|error: no such device|error: unknown filesystem"),
    "no-bootable-device": re.compile(r"No bootable device|Boot failed: not a bootable disk"),
    "uefi-shell": re.compile(r"UEFI Interactive Shell|Shell> "),
}


@dataclass
class BootResult:
    booted: bool  # the marker line was seen
    reason: str  # "marker", a FAILURE_PATTERNS key, "timeout" or "exited"
    seconds: float  # from QEMU start to the marker / failure / timeout
    marker_line: str
    console: str  # the whole serial log
    argv: list[str] = field(default_factory=list)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.console.splitlines()[-n:])


def qemu_argv(
    disk: str | os.PathLike[str],
    *,
    firmware: str,
    bus: str,
    serial_log: Path,
    vars_file: Path | None = None,
    snapshot: bool = False,
    memory_mib: int = 768,
    extra_disks: list[str] | None = None,
) -> list[str]:
    if firmware not in FIRMWARES:
        raise ValueError(f"firmware must be one of {FIRMWARES}")
    if bus not in BUSES:
        raise ValueError(f"bus must be one of {BUSES}")
    argv = [
        "qemu-system-x86_64",
        "-machine",
        "q35,accel=tcg",
        "-cpu",
        "max",
        "-smp",
        "1",
        "-m",
        str(memory_mib),
        "-display",
        "none",
        "-vga",
        "none",
        "-monitor",
        "none",
        "-nic",
        "none",
        "-no-reboot",
        "-serial",
        f"file:{serial_log}",
    ]
    if firmware == "uefi":
        if vars_file is None:
            raise ValueError("UEFI boots need a writable copy of the OVMF variable store")
        argv += [
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={vars_file}",
        ]
    drive = f"file={disk},format=raw,if=none,id=disk0,cache=unsafe"
    if snapshot:
        drive += ",snapshot=on"
    argv += ["-drive", drive]
    if bus == "virtio":
        argv += ["-device", "virtio-blk-pci,drive=disk0,bootindex=1"]
    elif bus == "ahci":
        argv += ["-device", "ide-hd,drive=disk0,bus=ide.0,bootindex=1"]
    else:
        argv += ["-device", "nvme,drive=disk0,serial=rescue0001,bootindex=1"]
    for i, extra in enumerate(extra_disks or [], 1):
        argv += [
            "-drive",
            f"file={extra},format=raw,if=none,id=disk{i},cache=unsafe",
            "-device",
            f"virtio-blk-pci,drive=disk{i}",
        ]
    return argv


def boot(
    disk: str | os.PathLike[str],
    *,
    firmware: str,
    bus: str,
    marker: str,
    timeout: float = 240.0,
    snapshot: bool = False,
    keep_log: Path | None = None,
    vars_file: Path | None = None,
    extra_disks: list[str] | None = None,
) -> BootResult:
    """Boot *disk* and wait until *marker* appears on the serial console.

    Stops early on a known failure line. The QEMU process is always gone on return.
    UEFI boots get an empty NVRAM unless *vars_file* (a copy of OVMF_VARS) is given;
    *extra_disks* are attached as further virtio disks, not bootable.
    """
    with tempfile.TemporaryDirectory(prefix="rescue-qemu-") as td:
        serial_log = Path(td) / "serial.log"
        serial_log.touch()
        if firmware == "uefi" and vars_file is None:
            # A fresh, empty NVRAM for this boot (pass vars_file to keep one across boots).
            vars_file = Path(td) / "OVMF_VARS.fd"
            shutil.copyfile(OVMF_VARS, vars_file)
        argv = qemu_argv(
            disk,
            firmware=firmware,
            bus=bus,
            serial_log=serial_log,
            vars_file=vars_file,
            snapshot=snapshot,
            extra_disks=extra_disks,
        )
        started = time.monotonic()
        # coreutils timeout as a backstop: should this test process die without its
        # finally block, QEMU still ends (timeout relays our SIGTERM to QEMU otherwise).
        guard = ["timeout", "--kill-after=10", f"{int(timeout) + 60}"]
        proc = subprocess.Popen(
            guard + argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        reason = "timeout"
        marker_line = ""
        try:
            while True:
                elapsed = time.monotonic() - started
                text = serial_log.read_text(errors="replace")
                hit = next((ln for ln in text.splitlines() if marker in ln), None)
                if hit is not None:
                    reason, marker_line = "marker", hit.strip()
                    break
                failed = next((k for k, rx in FAILURE_PATTERNS.items() if rx.search(text)), None)
                if failed:
                    reason = failed
                    break
                if proc.poll() is not None:
                    # Exited (powered off or crashed): read the log one last time.
                    text = serial_log.read_text(errors="replace")
                    hit = next((ln for ln in text.splitlines() if marker in ln), None)
                    if hit is not None:
                        reason, marker_line = "marker", hit.strip()
                    else:
                        reason = "exited"
                    break
                if elapsed > timeout:
                    break
                time.sleep(0.5)
            seconds = time.monotonic() - started
        finally:
            _stop(proc)
        console = serial_log.read_text(errors="replace")
        if proc.stderr is not None:
            err = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
            if err.strip():
                console += "\n[qemu stderr]\n" + err
        if keep_log is not None:
            keep_log.parent.mkdir(parents=True, exist_ok=True)
            keep_log.write_text(console)
        return BootResult(
            booted=reason == "marker",
            reason=reason,
            seconds=round(seconds, 1),
            marker_line=marker_line,
            console=console,
            argv=argv,
        )


def _stop(proc: subprocess.Popen) -> None:
    """Stop the QEMU we started (by its PID only); wait for it."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
