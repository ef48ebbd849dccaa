"""rescue make-usb: a USB stick (or stick image) with the live system and a data partition.

The stick holds the hybrid live ISO (it boots on BIOS and UEFI exactly like the ISO)
and, after it, an ext4 data partition labelled ``RESCUE-DATA`` whose root directory is
an image repository: the wizard started from that stick finds the images on it without
anything else attached, and later backups can be written to it.

``xorriso`` writes the stick: it replays the ISO's boot equipment (isohybrid MBR, GPT,
El Torito for isolinux and the EFI image) and appends the data partition to the
partition tables. ``--append`` adds a default boot entry with extra kernel parameters
(``rescue.*`` for unattended mode, ``console=ttyS0,115200n8``); ``--iso-only`` writes
such a customised ISO without a data partition.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rescue import sysmount
from rescue.errors import TargetRefusedError, UsageError
from rescue.runner import CommandRunner

DATA_LABEL = "RESCUE-DATA"
DATA_PARTITION = 3  # 1 is the ISO, 2 the EFI image in the hybrid ISO's tables
MIB = 1024 * 1024
# Data partition size for an image file when --size is not given: the repository,
# a quarter more and 512 MiB for later backups.
DEFAULT_HEADROOM = 512 * MIB
DEVICE_SEED_SIZE = 64 * MIB  # the partition is grown to the end of a real stick
ISOLINUX_CFG = "/isolinux/isolinux.cfg"
ISOLINUX_CUSTOM = "/isolinux/custom.cfg"
GRUB_CFG = "/boot/grub/grub.cfg"
GRUB_CUSTOM = "/boot/grub/custom.cfg"
LIVE_MEDIUM = "/run/live/medium"
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'512M', '2G', '1.5GiB', '1048576' -> bytes (binary units)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise UsageError(f"'{text}' is not a size; write it like 512M or 4G.")
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * factor)


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (what the data partition must hold)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def data_size_for(repo_bytes: int) -> int:
    size = repo_bytes + repo_bytes // 4 + DEFAULT_HEADROOM
    return -(-size // MIB) * MIB


def base_append(grub_cfg: str) -> str:
    """Kernel parameters of the ISO's first "Rescue" entry (from its grub.cfg)."""
    for line in grub_cfg.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "linux" and words[1].endswith("/vmlinuz"):
            return " ".join(words[2:])
    raise UsageError("The ISO's /boot/grub/grub.cfg has no 'linux .../vmlinuz' line; "
                     "is it a rescue live ISO?")


def custom_menus(append: str, title: str) -> tuple[str, str]:
    """custom.cfg texts for isolinux and GRUB: one entry with ``append``, made the default."""
    if any(c in append for c in "\n\"'{};"):
        raise UsageError("Boot parameters cannot contain quotes, braces, ';' or new lines.")
    isolinux = (
        "# Added by rescue make-usb.\n"
        "label custom\n"
        f"\tmenu label {title}\n"
        "\tmenu default\n"
        "\tlinux /live/vmlinuz\n"
        "\tinitrd /live/initrd.img\n"
        f"\tappend {append}\n"
    )
    grub = (
        "# Added by rescue make-usb.\n"
        f'menuentry "{title}" --id custom {{\n'
        f"\tlinux /live/vmlinuz {append}\n"
        "\tinitrd /live/initrd.img\n"
        "}\n"
        "set default=custom\n"
    )
    return isolinux, grub


def without_menu_default(isolinux_cfg: str) -> str:
    """isolinux.cfg with its 'menu default' lines removed (the custom entry takes over)."""
    return "".join(
        line for line in isolinux_cfg.splitlines(keepends=True)
        if line.strip().lower() != "menu default"
    )


@dataclass
class UsbJob:
    iso: str
    target: Path
    repo: Path | None = None
    size: int | None = None  # data partition bytes (image files)
    append: str = ""
    title: str = "Rescue (custom)"
    iso_only: bool = False
    label: str = DATA_LABEL


class UsbWriter:
    """Writes a UsbJob with xorriso, mkfs.ext4 and (for real sticks) sfdisk/sgdisk."""

    def __init__(self, runner: CommandRunner, say: Callable[[str], object] = print) -> None:
        self.runner = runner
        self.say = say

    # -- pieces -------------------------------------------------------------------------

    def extract(self, iso: str, path: str, dest: Path) -> str:
        self.runner.run(
            ["xorriso", "-osirrox", "on", "-indev", xorriso_drive(iso), "-extract", path,
             str(dest)],
            what=f"reading {path} from {iso}",
        )
        dest.chmod(0o644)
        return dest.read_text()

    def make_data_fs(self, image: Path, size: int, repo: Path | None, label: str) -> None:
        with image.open("wb") as f:
            f.truncate(size)
        argv = ["mkfs.ext4", "-F", "-q", "-L", label, "-m", "0", "-E", "root_owner=0:0"]
        if repo is not None:
            argv += ["-d", str(repo)]
        self.runner.run([*argv, str(image)], what="creating the data partition's filesystem")

    def xorriso_write(self, job: UsbJob, outdev: str, maps: list[tuple[Path, str]],
                      data_image: Path | None) -> None:
        argv = ["xorriso", "-indev", xorriso_drive(job.iso), "-outdev", outdev,
                "-boot_image", "any", "replay"]
        for local, iso_path in maps:
            argv += ["-map", str(local), iso_path]
        if data_image is not None:
            argv += ["-append_partition", str(DATA_PARTITION), "0x83", str(data_image)]
        argv += ["-commit"]
        self.runner.run(argv, what="writing the live system with xorriso")

    # -- the job ------------------------------------------------------------------------

    def menu_maps(self, job: UsbJob, work: Path) -> list[tuple[Path, str]]:
        if not job.append:
            return []
        grub = self.extract(job.iso, GRUB_CFG, work / "grub.cfg")
        isolinux = self.extract(job.iso, ISOLINUX_CFG, work / "isolinux.cfg")
        append = f"{base_append(grub)} {job.append}".strip()
        iso_custom, grub_custom = custom_menus(append, job.title)
        (work / "isolinux.cfg").write_text(without_menu_default(isolinux))
        (work / "isolinux-custom.cfg").write_text(iso_custom)
        (work / "grub-custom.cfg").write_text(grub_custom)
        self.say(f"Default boot entry '{job.title}': {append}")
        return [
            (work / "isolinux.cfg", ISOLINUX_CFG),
            (work / "isolinux-custom.cfg", ISOLINUX_CUSTOM),
            (work / "grub-custom.cfg", GRUB_CUSTOM),
        ]

    def write(self, job: UsbJob) -> None:
        if job.repo is not None and not job.repo.is_dir():
            raise UsageError(f"The repository {job.repo} is not a directory.")
        if is_block_device(job.target):
            self._write_device(job)
        else:
            self._write_file(job)

    def _write_file(self, job: UsbJob) -> None:
        target = job.target
        if target.exists():
            target.unlink()
        with tempfile.TemporaryDirectory(prefix=".rescue-usb-", dir=target.parent) as tmp:
            work = Path(tmp)
            maps = self.menu_maps(job, work)
            data = None
            if not job.iso_only:
                size = job.size or data_size_for(tree_bytes(job.repo) if job.repo else 0)
                data = work / "data.ext4"
                self.say(f"Data partition: {size // MIB} MiB ext4 '{job.label}'"
                         + (f" holding {job.repo}" if job.repo else ""))
                self.make_data_fs(data, size, job.repo, job.label)
            self.xorriso_write(job, f"stdio:{target}", maps, data)
        self.say(f"Wrote {target} ({target.stat().st_size // MIB} MiB). "
                 f"Copy it to a stick with: dd if={target} of=/dev/sdX bs=4M conv=fsync")

    def _write_device(self, job: UsbJob) -> None:
        dev = str(job.target)
        refuse_busy_device(dev, job, self.runner)
        with tempfile.TemporaryDirectory(prefix="rescue-usb-") as tmp:
            work = Path(tmp)
            maps = self.menu_maps(job, work)
            data = None
            if not job.iso_only:
                data = work / "data.ext4"
                self.make_data_fs(data, DEVICE_SEED_SIZE, None, job.label)
            self.runner.run(["wipefs", "-a", dev], what=f"wiping old signatures on {dev}")
            self.xorriso_write(job, f"stdio:{dev}", maps, data)
            if data is None:
                return
            self.grow_data_partition(dev)
            part = partition_path(dev, DATA_PARTITION)
            self.runner.run(["e2fsck", "-f", "-p", part], what="checking the data partition")
            self.runner.run(["resize2fs", part], what="growing the data partition")
            if job.repo is not None:
                mnt = work / "data"
                mnt.mkdir()
                with sysmount.mounted(part, "ext4", mode=sysmount.RW, runner=self.runner,
                                      where=mnt):
                    self.say(f"Copying {job.repo} to {part}...")
                    self.runner.run(["cp", "-a", "--", f"{job.repo}/.", str(mnt)],
                                    what="copying the repository")
        self.runner.run(["sync"])
        self.say(f"{dev} is ready: live system + data partition {part} ('{job.label}').")

    def grow_data_partition(self, dev: str) -> None:
        """Make the appended data partition reach the end of the stick.

        The live ISO's tables are an isohybrid MBR (what BIOS, UEFI and Linux read on
        a stick: it is not a protective MBR) plus xorriso's hybrid GPT, which already
        sits inside the ISO area and is left as xorriso wrote it. sfdisk edits the MBR.
        """
        self.runner.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-N", str(DATA_PARTITION),
                         dev], input=", +\n", what="growing the data partition (MBR)")
        # Some kernels have no partition parser for loop devices: partx adds the nodes.
        self.runner.run(["partprobe", dev], check=False)
        self.runner.run(["partx", "-u", dev], check=False)
        self.runner.run(["udevadm", "settle", "--timeout=10"], check=False)


def xorriso_drive(path: str) -> str:
    """xorriso reads optical drives natively; any other disk or file goes through stdio:."""
    if re.match(r"^/dev/sr\d+$", os.path.realpath(path)):
        return path
    return f"stdio:{path}"


def is_block_device(path: Path) -> bool:
    try:
        return stat.S_ISBLK(path.stat().st_mode)
    except FileNotFoundError:
        return False


def partition_path(dev: str, number: int) -> str:
    return f"{dev}p{number}" if dev[-1].isdigit() else f"{dev}{number}"


def refuse_busy_device(dev: str, job: UsbJob, runner: CommandRunner) -> None:
    """Never write over a mounted disk, the boot medium or the disk holding the images."""
    out = runner.run(["lsblk", "-nrpo", "NAME,MOUNTPOINT", dev], what=f"listing {dev}").stdout
    for line in out.splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2 and parts[1].strip():
            raise TargetRefusedError(
                f"{parts[0]} is mounted on {parts[1].strip()}; unmount it or pick another "
                "stick. Nothing was written."
            )
    for what, path in (("the live system's boot medium", job.iso),
                       ("the disk holding the repository", str(job.repo or ""))):
        if path and disk_of(path, runner) == os.path.realpath(dev):
            raise TargetRefusedError(f"{dev} is {what}; pick another stick. Nothing was "
                                     "written.")


def disk_of(path: str, runner: CommandRunner) -> str | None:
    """The whole disk behind a file, directory or block device."""
    p = Path(path)
    if is_block_device(p):
        source = str(p)
    else:
        res = runner.run(["findmnt", "-nvo", "SOURCE", "-T", path], check=False)
        source = res.stdout.strip()
        if not source.startswith("/dev/"):
            return None
    res = runner.run(["lsblk", "-ndpo", "PKNAME", source], check=False)
    parent = res.stdout.strip()
    return os.path.realpath(parent or source)


def boot_medium(runner: CommandRunner) -> str:
    """The disk this live system booted from (xorriso reads the ISO from it)."""
    res = runner.run(["findmnt", "-nvo", "SOURCE", LIVE_MEDIUM], check=False)
    source = res.stdout.strip()
    if res.returncode != 0 or not source.startswith("/dev/"):
        raise UsageError(f"No live boot medium is mounted on {LIVE_MEDIUM}; give the ISO "
                         "with --iso.")
    return disk_of(source, runner) or source


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-usb",
        help="write the live system and a data partition with a repository to a USB stick",
        description="Write the rescue live system (boots on BIOS and UEFI) and an ext4 data "
        f"partition labelled {DATA_LABEL} holding an image repository to a USB stick or to "
        "an image file. On a stick the data partition fills the rest of it. Everything on "
        "the stick is erased.",
    )
    p.add_argument("target", help="a whole USB disk (e.g. /dev/sdc: ERASED) or an image "
                   "file to create")
    p.add_argument("--iso", help="the live ISO (default: the medium this live system "
                   "booted from)")
    p.add_argument("--repo", help="repository directory to copy onto the data partition")
    p.add_argument("--size", help="data partition size for an image file, e.g. 4G "
                   "(default: the repository + 25%% + 512M)")
    p.add_argument("--label", default=DATA_LABEL, help=f"data filesystem label "
                   f"(default {DATA_LABEL})")
    p.add_argument("--append", default="", help="add a default boot entry with these "
                   "extra kernel parameters, e.g. 'rescue.image=latest console=ttyS0'")
    p.add_argument("--title", default="Rescue (custom)", help="menu title of that entry")
    p.add_argument("--iso-only", action="store_true",
                   help="write only the (customised) ISO, without a data partition")
    p.add_argument("--yes", action="store_true",
                   help="do not ask before erasing a block device")
    p.set_defaults(func=cmd_make_usb)


def cmd_make_usb(args: argparse.Namespace) -> int:
    runner = CommandRunner()
    if shutil.which("xorriso") is None:
        raise UsageError("make-usb needs xorriso; install it (apt-get install xorriso).")
    iso = args.iso or boot_medium(runner)
    if args.iso and not Path(args.iso).exists():
        raise UsageError(f"The ISO {args.iso} does not exist; build it with `make iso`.")
    job = UsbJob(
        iso=iso,
        target=Path(args.target),
        repo=Path(args.repo) if args.repo else None,
        size=parse_size(args.size) if args.size else None,
        append=args.append.strip(),
        title=args.title,
        iso_only=args.iso_only,
        label=args.label,
    )
    if job.iso_only and job.repo is not None:
        raise UsageError("--iso-only writes no data partition; drop --repo or --iso-only.")
    if is_block_device(job.target) and not args.yes:
        answer = input(f"Everything on {job.target} will be erased. Type 'yes' to go on: ")
        if answer.strip().lower() != "yes":
            print("Nothing was written.")
            return 1
    UsbWriter(runner).write(job)
    return 0
