"""`make qemu`: boot the live ISO interactively, with a sample repository disk and a
blank target disk, for people to try the wizard.

    make qemu [FIRMWARE=uefi]      (as root: the sample system is made on a loop device)

The wizard runs on this terminal through the serial console (the ISO is copied with
``console=ttyS0`` added to its default entry); Ctrl-A X quits QEMU, Ctrl-A C switches
to the QEMU monitor. With DISPLAY set, a QEMU window shows tty1 as well.
Disks (kept in the work directory between runs; delete them to start over):
    repo-disk.img   ext4 'IMAGES' holding a repository with one image of a sample PC
    target.img      a blank 1 GiB disk to restore onto (serial RESCUE-TARGET)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(HERE.parent), str(ROOT)]

from isoqemu import Disk, Machine  # noqa: E402

from rescue.engine.usbstick import UsbJob, UsbWriter  # noqa: E402
from rescue.runner import CommandRunner  # noqa: E402

MiB = 1024 * 1024


def make_repo_disk(path: Path) -> None:
    from loopdev import loop_device

    from rescue.demo.sample_system import build_gpt_system

    with tempfile.TemporaryDirectory(prefix="rescue-qemu-") as tmp:
        repo = Path(tmp) / "repo"
        with loop_device(Path(tmp) / "source.img", 256 * MiB) as dev:
            build_gpt_system(dev, hostname="sample-pc", files=300, data_bytes=8 * MiB,
                             root_size="128M")
            subprocess.run([sys.executable, "-m", "rescue", "backup", "--disk", dev,
                            "--repo", str(repo), "--name", "sample"], check=True, cwd=ROOT)
        with path.open("wb") as f:
            f.truncate(256 * MiB)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "IMAGES", "-d", str(repo), str(path)],
                       check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iso", required=True)
    ap.add_argument("--firmware", choices=("bios", "uefi"), default="bios")
    ap.add_argument("--workdir", default=str(ROOT / "iso/out/qemu"))
    ap.add_argument("--append", default="", help="more kernel parameters (e.g. rescue.*)")
    args = ap.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    repo_disk, target = work / "repo-disk.img", work / "target.img"
    if not repo_disk.exists():
        print("Making the sample repository disk (sample PC on a loop device, rescue backup)")
        make_repo_disk(repo_disk)
    if not target.exists():
        with target.open("wb") as f:
            f.truncate(1024 * MiB)
    iso = work / "rescue-serial.iso"
    UsbWriter(CommandRunner(), say=lambda _m: None).write(UsbJob(
        iso=args.iso, target=iso, append=f"console=tty0 console=ttyS0,115200n8 {args.append}",
        title="Rescue (serial console)", iso_only=True))
    vm = Machine(iso=iso, workdir=work, firmware=args.firmware,
                 disks=[Disk(repo_disk, "RESCUE-REPO"), Disk(target, "RESCUE-TARGET")])
    cmd = vm.command(interactive=True)
    if not os.environ.get("DISPLAY"):
        cmd += ["-display", "none"]
    print("Booting (TCG: about 2 minutes to the wizard). Ctrl-A X quits QEMU.")
    print(" ".join(cmd))
    qemu = shutil.which(cmd[0]) or cmd[0]
    proc = subprocess.Popen([qemu, *cmd[1:]])
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)


if __name__ == "__main__":
    raise SystemExit(main())
