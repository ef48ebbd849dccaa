"""Where a boot of the live ISO spends its time under QEMU/TCG: a sampling profiler for
the guest (docs/PERFORMANCE.md "Boot time" was found with it).

Boots the ISO (default entry plus ``console=ttyS0,115200n8 nokaslr`` and --append) with
the QEMU monitor on a socket, reads both vCPUs' instruction pointers every --interval
seconds (``info registers -a``) until the wizard's first screen, then closes the wizard,
copies the guest's /proc/kallsyms out through a small virtio disk and prints, per second
and per vCPU, the two functions seen most, and the most seen over the whole boot.
``[user]`` is user space. Samples and symbols are kept in --workdir.

    make iso-profile                      # or:
    .venv/bin/python tests/iso/bootprofile.py --iso iso/out/rescue.iso --firmware bios
    .venv/bin/python tests/iso/bootprofile.py --append init_on_alloc=0 --cpu max,-erms

The sampling itself slows the boot by a few seconds; compare runs with each other, and
take boot times from test_boot.py.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import re
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isoqemu import Disk, Machine, custom_iso  # noqa: E402

WIZARD = r"Choose your language"
KERNEL_TEXT = 0xFFFF_FFFF_8000_0000


class Monitor:
    """The human monitor on a Unix socket: one command, its whole answer."""

    def __init__(self, path: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(30)
        self._until_prompt()

    def _until_prompt(self) -> str:
        buf = b""
        while not buf.rstrip().endswith(b"(qemu)"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the QEMU monitor closed")
            buf += chunk
        return buf.decode(errors="replace")

    def ask(self, command: str) -> str:
        self.sock.sendall(command.encode() + b"\n")
        return self._until_prompt()


class Symbols:
    def __init__(self, kallsyms: str) -> None:
        rows = []
        for line in kallsyms.splitlines():
            parts = line.split()
            if len(parts) >= 3 and int(parts[0], 16):
                rows.append((int(parts[0], 16), parts[2] + (parts[3] if len(parts) > 3 else "")))
        rows.sort()
        self.addrs = [a for a, _ in rows]
        self.names = [n for _, n in rows]

    def name(self, rip: int, cpl: int) -> str:
        if rip < KERNEL_TEXT:
            return "[user]" if cpl == 3 else "[firmware/early]"
        i = bisect.bisect_right(self.addrs, rip) - 1
        return self.names[i] if i >= 0 else "?"


def sample(monitor: Monitor, vm: Machine, interval: float, stop: threading.Event,
           out: list[tuple[float, int, int, int]]) -> None:
    while not stop.is_set():
        try:
            answer = monitor.ask("info registers -a")
        except (OSError, EOFError):
            return
        now = vm.elapsed()
        levels = re.findall(r"CPL=(\d)", answer)
        for cpu, rip in enumerate(re.findall(r"RIP=([0-9a-f]{16})", answer)):
            out.append((now, cpu, int(rip, 16), int(levels[cpu]) if cpu < len(levels) else 0))
        time.sleep(interval)


def report(samples: list[tuple[float, int, int, int]], symbols: Symbols, top: int) -> str:
    lines = []
    seconds: dict[int, list[collections.Counter[str]]] = collections.defaultdict(
        lambda: [collections.Counter(), collections.Counter()])
    for t, cpu, rip, cpl in samples:
        seconds[int(t)][min(cpu, 1)][symbols.name(rip, cpl)] += 1
    lines.append("second | vCPU 0 (share of its samples)            | vCPU 1")
    for second in sorted(seconds):
        cells = []
        for counter in seconds[second]:
            total = sum(counter.values()) or 1
            cells.append(", ".join(f"{name[:26]} {100 * n // total}%"
                                   for name, n in counter.most_common(2)))
        lines.append(f"{second:6d} | {cells[0]:42s} | {cells[1]}")
    whole = collections.Counter(symbols.name(rip, cpl) for _, _, rip, cpl in samples)
    total = sum(whole.values()) or 1
    lines.append(f"\nwhole boot, {total} samples:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in whole.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iso", type=Path, default=Path("iso/out/rescue.iso"))
    parser.add_argument("--workdir", type=Path, default=Path("iso/out/profile"))
    parser.add_argument("--firmware", default="uefi", choices=["uefi", "bios"])
    parser.add_argument("--cpu", default=None, help="QEMU CPU model (default: max, or "
                        "RESCUE_QEMU_CPU)")
    parser.add_argument("--append", default="", help="more kernel parameters")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between samples")
    parser.add_argument("--top", type=int, default=30, help="functions in the summary")
    args = parser.parse_args()

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    iso = custom_iso(args.iso, work / "profile.iso",
                     f"console=ttyS0,115200n8 nokaslr {args.append}".strip(), "Rescue (profile)")
    syms_disk = work / "kallsyms.img"
    syms_disk.write_bytes(b"\0" * (16 << 20))
    sock = work / "monitor.sock"
    sock.unlink(missing_ok=True)
    vm = Machine(iso, work, firmware=args.firmware, disks=[Disk(syms_disk, "KALLSYMS")],
                 monitor=sock, **({"cpu": args.cpu} if args.cpu else {}))
    samples: list[tuple[float, int, int, int]] = []
    stop = threading.Event()
    vm.start()
    try:
        sampler = threading.Thread(target=sample, args=(Monitor(sock), vm, args.interval,
                                                         stop, samples), daemon=True)
        sampler.start()
        wizard = vm.wait_for(WIZARD, 900)
        stop.set()
        sampler.join(10)
        vm.quit_wizard_to_shell()
        vm.shell("grep ' [tTwW] ' /proc/kallsyms > /dev/disk/by-id/virtio-KALLSYMS; sync", 300)
    finally:
        stop.set()
        vm.stop()
    kallsyms = syms_disk.read_bytes().rstrip(b"\0").decode(errors="replace")
    (work / "kallsyms.txt").write_text(kallsyms)
    (work / "samples.json").write_text(json.dumps({"wizard": wizard, "samples": samples}))
    print(f"wizard's first screen at {wizard:.0f} s (with sampling), {len(samples)} samples, "
          f"serial log {vm.serial_log}")
    print(report(samples, Symbols(kallsyms), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
