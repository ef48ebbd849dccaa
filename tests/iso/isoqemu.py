"""A QEMU machine for the live ISO checks and `make qemu`.

TCG only (this machine kind has no KVM): ``-machine q35,accel=tcg -cpu max``. The first
serial port is captured (ANSI sequences stripped for matching) into a log file; input
can be sent to it. The process is always stopped by its own PID.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Secure Boot: the SMM build of OVMF and variables with Microsoft's keys enrolled (PK/KEK
# from Microsoft, db with the Windows and the third-party "UEFI CA 2011"), Secure Boot on.
OVMF_CODE_SECBOOT = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
OVMF_VARS_MS = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")

# CSI / OSC / two-byte escape sequences and other control characters.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain(text: str) -> str:
    """Terminal output as text: escape sequences removed, cursor moves become spaces."""
    return _CTRL.sub("", _ANSI.sub(" ", text))


@dataclass
class Disk:
    path: Path
    serial: str
    readonly: bool = False
    bus: str = "virtio"  # virtio | nvme | usb (USB mass storage on xHCI) | sd (SD card)
    sector: int = 512  # logical = physical sector size (4096: a 4Kn disk; virtio, nvme)


@dataclass
class Machine:
    iso: Path | None
    workdir: Path
    firmware: str = "bios"  # "uefi", or "uefi-secboot" (Secure Boot, Microsoft keys)
    disks: list[Disk] = field(default_factory=list)
    memory_mb: int = 2048
    cpus: int = 2
    boot_disk: Path | None = None  # boot from this raw image (USB stick) instead of the ISO
    # QEMU's CPU model: "max" (all TCG can emulate), or RESCUE_QEMU_CPU (e.g. "max,-erms",
    # see docs/PERFORMANCE.md "Boot time" for why that one matters under TCG)
    cpu: str = field(default_factory=lambda: os.environ.get("RESCUE_QEMU_CPU", "max"))
    monitor: Path | None = None  # the QEMU monitor on this Unix socket (bootprofile.py)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.serial_log = self.workdir / f"serial-{self.firmware}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self.started_at = 0.0

    def command(self, *, interactive: bool = False) -> list[str]:
        secboot = self.firmware == "uefi-secboot"
        cmd = [
            "qemu-system-x86_64",
            "-machine", "q35,accel=tcg,smm=on" if secboot else "q35,accel=tcg",
            "-cpu", self.cpu,
            "-smp", str(self.cpus),
            "-m", str(self.memory_mb),
            "-no-reboot",
            "-nic", "user,model=virtio-net-pci",
        ]
        if self.firmware in ("uefi", "uefi-secboot"):
            code, variables = (OVMF_CODE_SECBOOT, OVMF_VARS_MS) if secboot else (
                OVMF_CODE, OVMF_VARS)
            vars_copy = self.workdir / f"OVMF_VARS-{self.firmware}.fd"
            shutil.copyfile(variables, vars_copy)
            if secboot:  # the variable store is writable only from SMM
                cmd += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
            cmd += [
                "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
            ]
        if self.boot_disk is not None:
            cmd += [
                "-drive", f"if=none,id=stick,format=raw,file={self.boot_disk}",
                "-device", "qemu-xhci", "-device", "usb-storage,drive=stick,bootindex=0",
            ]
        elif self.iso is not None:
            cmd += [
                "-drive", f"if=none,id=cd,media=cdrom,readonly=on,file={self.iso}",
                "-device", "ide-cd,drive=cd,bootindex=0",
            ]
        xhci = self.boot_disk is not None
        for i, disk in enumerate(self.disks):
            ro = ",readonly=on" if disk.readonly else ""
            cmd += ["-drive", f"if=none,id=d{i},format=raw,file={disk.path}{ro}"]
            sectors = (f",logical_block_size={disk.sector},physical_block_size={disk.sector}"
                       if disk.sector != 512 else "")
            if disk.bus == "virtio":
                cmd += ["-device", f"virtio-blk-pci,drive=d{i},serial={disk.serial}{sectors}"]
            elif disk.bus == "nvme":
                cmd += ["-device", f"nvme,drive=d{i},serial={disk.serial}{sectors}"]
            elif disk.bus == "usb":
                if not xhci:
                    cmd += ["-device", "qemu-xhci"]
                    xhci = True
                cmd += ["-device", f"usb-storage,drive=d{i},serial={disk.serial}"]
            elif disk.bus == "sd":  # the mmc block driver, as for eMMC (mmcblkN)
                cmd += ["-device", f"sdhci-pci,id=sdhci{i}",
                        "-device", f"sd-card,drive=d{i}"]
            else:
                raise ValueError(f"unknown disk bus {disk.bus!r}")
        if interactive:
            cmd += ["-serial", "mon:stdio"]
        else:
            monitor = f"unix:{self.monitor},server,nowait" if self.monitor else "none"
            cmd += ["-display", "none", "-monitor", monitor, "-serial", "stdio"]
        return cmd

    def start(self) -> None:
        self.serial_log.write_bytes(b"")
        self.started_at = time.monotonic()
        self._proc = subprocess.Popen(
            self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with self.serial_log.open("ab") as log:
            while True:
                data = os.read(self._proc.stdout.fileno(), 65536)
                if not data:
                    return
                log.write(data)
                log.flush()
                with self._lock:
                    self._buf += data

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def text(self) -> str:
        with self._lock:
            return plain(self._buf.decode("utf-8", "replace"))

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def wait_for(self, pattern: str, timeout: float) -> float:
        """Wait until the serial text matches ``pattern``; return seconds since start."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if rx.search(self.text()):
                return self.elapsed()
            if self._proc is not None and self._proc.poll() is not None:
                break
            time.sleep(1)
        tail = self.text()[-3000:]
        state = "exited" if self._proc and self._proc.poll() is not None else "running"
        raise TimeoutError(
            f"{pattern!r} not seen on the serial console after {self.elapsed():.0f}s "
            f"(QEMU {state}; full log {self.serial_log}); last output:\n{tail}"
        )

    def send(self, data: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(data.encode())
        self._proc.stdin.flush()

    def shell(self, command: str, timeout: float = 120) -> str:
        """Run *command* in the root shell that has the serial console and return what it
        printed (the text between the typed line and an end marker that the typed line
        itself cannot match: the shell computes it)."""
        self._marks = getattr(self, "_marks", 0) + 1
        mark = f"@@{self._marks}-42@@"
        start = len(self.text())
        self.send(f"{command}; echo @@{self._marks}-$((40+2))@@\r")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.text()[start:]
            if mark in out:
                body = out[:out.index(mark)]
                typed = body.find("$((40+2))@@")
                return body[typed + len("$((40+2))@@"):] if typed >= 0 else body
            if self._proc is not None and self._proc.poll() is not None:
                break
            time.sleep(0.5)
        raise TimeoutError(f"{command!r} did not finish on the serial shell within "
                           f"{timeout:.0f}s; last output:\n{self.text()[-3000:]}")

    def quit_wizard_to_shell(self, timeout: float = 60) -> None:
        """Close the wizard on the serial console (Ctrl+Q): rescue-console gives a root
        shell there."""
        self.send("\x11")
        self.wait_for(r"This is a root shell", self.elapsed() + timeout)
        time.sleep(2)
        self.send("\r")

    def wait_exit(self, timeout: float) -> int:
        assert self._proc is not None
        return self._proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Stop this QEMU (by its PID only) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if self._reader is not None:
            self._reader.join(timeout=5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        self._proc = None

    def __enter__(self) -> Machine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Scripts run in the live system (tests/iso/test_storage.py, test_wifi_join.py) report on the
# serial console with markers: "@@BEGIN name" ... "@@END" around a listing, and
# "@@RC name code" for a step's exit code.
def sections(log: str) -> dict[str, str]:
    """The listings between ``@@BEGIN name`` and ``@@END`` (the last of each name)."""
    return {m.group(1): m.group(2)
            for m in re.finditer(r"@@BEGIN (\S+)\n(.*?)@@END", log, re.S)}


def codes(log: str) -> dict[str, int]:
    """The exit code of each ``@@RC name code`` step."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"@@RC (\S+) (\d+)", log)}


def custom_iso(iso: Path, out: Path, append: str, title: str) -> Path:
    """A copy of *iso* whose default boot entry *title* adds the kernel parameters
    *append* (what `rescue make-usb --iso-only --append` makes for users)."""
    from rescue.engine.usbstick import UsbJob, UsbWriter
    from rescue.runner import CommandRunner

    UsbWriter(CommandRunner(), say=lambda _m: None).write(
        UsbJob(iso=str(iso), target=out, append=append, title=title, iso_only=True))
    return out


def script_disk(path: Path, script: str, serial: str = "SCRIPT") -> Disk:
    """A 1 MiB disk holding *script* (NUL-padded), for the live system to run with
    ``tr -d '\\0' < /dev/disk/by-id/virtio-SCRIPT | bash``: nothing long is typed on the
    serial line."""
    data = script.encode()
    path.write_bytes(data + b"\0" * (1024 * 1024 - len(data)))
    return Disk(path, serial)
