"""Writing a rescue USB stick (or a stick image file): the live ISO and a data partition.

The stick holds the hybrid live ISO (it boots on BIOS and UEFI exactly like the ISO)
and, after it, an ext4 data partition labelled ``RESCUE-DATA`` whose root directory is
an image repository: the wizard started from that stick finds the images on it without
anything else attached, and later backups can be written to it.

``xorriso`` writes the stick: it replays the ISO's boot equipment (isohybrid MBR, GPT,
El Torito for isolinux and the EFI image) and appends the data partition to the
partition tables. A job's ``append`` adds a default boot entry with extra kernel
parameters (``rescue.*`` for unattended mode, ``console=ttyS0,115200n8``); ``iso_only``
writes such a customised ISO without a data partition.

Two steps, as elsewhere in the engine:

- ``plan_usb(job, runner)`` looks and writes nothing to any disk: the target (an image
  file or a whole disk), the refusals (a mounted disk, the boot medium, the disk holding
  the repository), the ISO's boot menus and the custom entry, the data partition's size.
  Every refusal is raised here, before anything is erased.
- ``write_usb(plan, runner, say)`` does the writes: xorriso, mkfs.ext4, and on a real
  stick wipefs, sfdisk, e2fsck/resize2fs and copying the repository onto the mounted
  data partition (rescue.sysmount).

``UsbWriter(runner, say).write(job)`` does both. ``boot_medium(runner)`` finds the disk
the running live system booted from (the default ISO).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rescue import sysmount
from rescue.devices.blockdev import partition_node
from rescue.errors import TargetRefusedError, UsageError
from rescue.i18n import _
from rescue.runner import CommandRunner

DATA_LABEL = "RESCUE-DATA"
DATA_PARTITION = 3  # 1 is the ISO, 2 the EFI image in the hybrid ISO's tables
MIB = 1024 * 1024
# Data partition size for an image file when no size is given: the repository,
# a quarter more and 512 MiB for later backups.
DEFAULT_HEADROOM = 512 * MIB
DEVICE_SEED_SIZE = 64 * MIB  # the partition is grown to the end of a real stick
ISOLINUX_CFG = "/isolinux/isolinux.cfg"
ISOLINUX_CUSTOM = "/isolinux/custom.cfg"
GRUB_CFG = "/boot/grub/grub.cfg"
GRUB_CUSTOM = "/boot/grub/custom.cfg"
LIVE_MEDIUM = "/run/live/medium"


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


@dataclass(frozen=True)
class UsbPlan:
    """What ``write_usb`` will write; made by ``plan_usb`` without writing anything."""

    job: UsbJob
    device: bool  # the target is a whole disk (else an image file to create)
    append: str = ""  # kernel parameters of the custom default entry ("" when none)
    # ISO path -> new content (isolinux.cfg without 'menu default', the custom.cfg files)
    menus: dict[str, str] = field(default_factory=dict)
    data_size: int | None = None  # bytes of the data filesystem made (None: ISO only)
    data_partition: str | None = None  # its node on a device (grown to the stick's end)


# -- pure pieces ----------------------------------------------------------------------------


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
    raise UsageError(_("The ISO's /boot/grub/grub.cfg has no 'linux .../vmlinuz' line; "
                       "is it a rescue live ISO?"))


def custom_menus(append: str, title: str) -> tuple[str, str]:
    """custom.cfg texts for isolinux and GRUB: one entry with ``append``, made the default."""
    if any(c in append for c in "\n\"'{};"):
        raise UsageError(_("Boot parameters cannot contain quotes, braces, ';' or new lines."))
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


def xorriso_drive(path: str) -> str:
    """xorriso reads optical drives natively; any other disk or file goes through stdio:."""
    if re.match(r"^/dev/sr\d+$", os.path.realpath(path)):
        return path
    return f"stdio:{path}"


# -- probe and plan (read-only) -------------------------------------------------------------


def is_block_device(path: Path) -> bool:
    try:
        return stat.S_ISBLK(path.stat().st_mode)
    except FileNotFoundError:
        return False


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
        raise UsageError(_("No live boot medium is mounted on {path}; give the ISO with "
                           "--iso.").format(path=LIVE_MEDIUM))
    return disk_of(source, runner) or source


def refuse_busy_device(dev: str, job: UsbJob, runner: CommandRunner) -> None:
    """Never write over a mounted disk, the boot medium or the disk holding the images."""
    out = runner.run(["lsblk", "-nrpo", "NAME,MOUNTPOINT", dev],
                     what=_("listing {dev}").format(dev=dev)).stdout
    for line in out.splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2 and parts[1].strip():
            raise TargetRefusedError(_(
                "{node} is mounted on {mountpoint}; unmount it or pick another stick. "
                "Nothing was written."
            ).format(node=parts[0], mountpoint=parts[1].strip()))
    target = os.path.realpath(dev)
    if job.iso and disk_of(job.iso, runner) == target:
        raise TargetRefusedError(_(
            "{dev} is the live system's boot medium; pick another stick. Nothing was written."
        ).format(dev=dev))
    if job.repo is not None and disk_of(str(job.repo), runner) == target:
        raise TargetRefusedError(_(
            "{dev} is the disk holding the repository; pick another stick. Nothing was "
            "written."
        ).format(dev=dev))


def read_iso_file(iso: str, path: str, dest: Path, runner: CommandRunner) -> str:
    """The text of ``path`` inside the ISO (extracted to ``dest``, a scratch file)."""
    runner.run(
        ["xorriso", "-osirrox", "on", "-indev", xorriso_drive(iso), "-extract", path,
         str(dest)],
        what=_("reading {path} from {iso}").format(path=path, iso=iso),
    )
    dest.chmod(0o644)
    return dest.read_text()


def plan_menus(job: UsbJob, runner: CommandRunner) -> tuple[str, dict[str, str]]:
    """The custom entry's kernel parameters and the menu files that make it the default."""
    if not job.append:
        return "", {}
    with tempfile.TemporaryDirectory(prefix="rescue-usb-menus-") as tmp:
        grub = read_iso_file(job.iso, GRUB_CFG, Path(tmp) / "grub.cfg", runner)
        isolinux = read_iso_file(job.iso, ISOLINUX_CFG, Path(tmp) / "isolinux.cfg", runner)
    append = f"{base_append(grub)} {job.append}".strip()
    iso_custom, grub_custom = custom_menus(append, job.title)
    return append, {
        ISOLINUX_CFG: without_menu_default(isolinux),
        ISOLINUX_CUSTOM: iso_custom,
        GRUB_CUSTOM: grub_custom,
    }


def plan_usb(job: UsbJob, runner: CommandRunner) -> UsbPlan:
    """Check the job and work out what to write; raises every refusal, writes nothing."""
    if job.repo is not None and not job.repo.is_dir():
        raise UsageError(_("The repository {repo} is not a directory.").format(repo=job.repo))
    device = is_block_device(job.target)
    if device:
        refuse_busy_device(str(job.target), job, runner)
    append, menus = plan_menus(job, runner)
    data_size: int | None = None
    data_partition: str | None = None
    if not job.iso_only:
        if device:
            data_size = DEVICE_SEED_SIZE
            data_partition = partition_node(str(job.target), DATA_PARTITION)
        else:
            data_size = job.size or data_size_for(tree_bytes(job.repo) if job.repo else 0)
    return UsbPlan(job=job, device=device, append=append, menus=menus,
                   data_size=data_size, data_partition=data_partition)


# -- execute (the writes) -------------------------------------------------------------------


def write_usb(plan: UsbPlan, runner: CommandRunner,
              say: Callable[[str], object] = lambda _text: None) -> None:
    """Write what ``plan_usb`` planned to the image file or the stick."""
    if plan.device:
        _write_device(plan, runner, say)
    else:
        _write_file(plan, runner)


def _menu_maps(plan: UsbPlan, work: Path) -> list[tuple[Path, str]]:
    maps = []
    for n, (iso_path, text) in enumerate(plan.menus.items()):
        local = work / f"menu-{n}.cfg"
        local.write_text(text)
        maps.append((local, iso_path))
    return maps


def _make_data_fs(image: Path, size: int, repo: Path | None, label: str,
                  runner: CommandRunner) -> None:
    with image.open("wb") as f:
        f.truncate(size)
    argv = ["mkfs.ext4", "-F", "-q", "-L", label, "-m", "0", "-E", "root_owner=0:0"]
    if repo is not None:
        argv += ["-d", str(repo)]
    runner.run([*argv, str(image)], what=_("creating the data partition's filesystem"))


def _xorriso_write(job: UsbJob, outdev: str, maps: list[tuple[Path, str]],
                   data_image: Path | None, runner: CommandRunner) -> None:
    argv = ["xorriso", "-indev", xorriso_drive(job.iso), "-outdev", outdev,
            "-boot_image", "any", "replay"]
    for local, iso_path in maps:
        argv += ["-map", str(local), iso_path]
    if data_image is not None:
        argv += ["-append_partition", str(DATA_PARTITION), "0x83", str(data_image)]
    argv += ["-commit"]
    runner.run(argv, what=_("writing the live system with xorriso"))


def _write_file(plan: UsbPlan, runner: CommandRunner) -> None:
    job, target = plan.job, plan.job.target
    if target.exists():
        target.unlink()
    with tempfile.TemporaryDirectory(prefix=".rescue-usb-", dir=target.parent) as tmp:
        work = Path(tmp)
        maps = _menu_maps(plan, work)
        data = None
        if plan.data_size is not None:
            data = work / "data.ext4"
            _make_data_fs(data, plan.data_size, job.repo, job.label, runner)
        _xorriso_write(job, f"stdio:{target}", maps, data, runner)


def _write_device(plan: UsbPlan, runner: CommandRunner, say: Callable[[str], object]) -> None:
    job, dev = plan.job, str(plan.job.target)
    with tempfile.TemporaryDirectory(prefix="rescue-usb-") as tmp:
        work = Path(tmp)
        maps = _menu_maps(plan, work)
        data = None
        if plan.data_size is not None:
            data = work / "data.ext4"
            _make_data_fs(data, plan.data_size, None, job.label, runner)
        runner.run(["wipefs", "-a", dev],
                   what=_("wiping old signatures on {dev}").format(dev=dev))
        _xorriso_write(job, f"stdio:{dev}", maps, data, runner)
        part = plan.data_partition
        if data is None or part is None:
            return
        grow_data_partition(dev, runner)
        runner.run(["e2fsck", "-f", "-p", part], what=_("checking the data partition"))
        runner.run(["resize2fs", part], what=_("growing the data partition"))
        if job.repo is not None:
            mnt = work / "data"
            mnt.mkdir()
            with sysmount.mounted(part, "ext4", mode=sysmount.RW, runner=runner, where=mnt):
                say(_("Copying {repo} to {part}...").format(repo=job.repo, part=part))
                runner.run(["cp", "-a", "--", f"{job.repo}/.", str(mnt)],
                           what=_("copying the repository"))
    runner.run(["sync"])


def grow_data_partition(dev: str, runner: CommandRunner) -> None:
    """Make the appended data partition reach the end of the stick.

    The live ISO's tables are an isohybrid MBR (what BIOS, UEFI and Linux read on
    a stick: it is not a protective MBR) plus xorriso's hybrid GPT, which already
    sits inside the ISO area and is left as xorriso wrote it. sfdisk edits the MBR.
    """
    runner.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-N", str(DATA_PARTITION), dev],
               input=", +\n", what=_("growing the data partition (MBR)"))
    # Some kernels have no partition parser for loop devices: partx adds the nodes.
    runner.run(["partprobe", dev], check=False)
    runner.run(["partx", "-u", dev], check=False)
    runner.run(["udevadm", "settle", "--timeout=10"], check=False)


class UsbWriter:
    """Plans and writes a UsbJob (xorriso, mkfs.ext4 and, for real sticks, sfdisk)."""

    def __init__(self, runner: CommandRunner,
                 say: Callable[[str], object] = lambda _text: None) -> None:
        self.runner = runner
        self.say = say

    def plan(self, job: UsbJob) -> UsbPlan:
        return plan_usb(job, self.runner)

    def execute(self, plan: UsbPlan) -> None:
        write_usb(plan, self.runner, self.say)

    def write(self, job: UsbJob) -> None:
        self.execute(self.plan(job))
