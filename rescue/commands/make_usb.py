"""rescue make-usb: a USB stick (or stick image) with the live system and a data partition.

This module parses the arguments, asks before erasing a disk and prints; what is
written, the refusals (checked before anything is erased) and the writing itself are
in rescue.engine.usbstick (reached through the rescue.services facade).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from rescue.errors import UsageError
from rescue.runner import CommandRunner
from rescue.services import (
    DATA_LABEL,
    MIB,
    UsbJob,
    UsbPlan,
    UsbWriter,
    boot_medium,
)

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'512M', '2G', '1.5GiB', '1048576' -> bytes (binary units)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise UsageError(f"'{text}' is not a size; write it like 512M or 4G.")
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * factor)


def print_plan(plan: UsbPlan) -> None:
    job = plan.job
    if plan.append:
        print(f"Default boot entry '{job.title}': {plan.append}")
    if not plan.device and plan.data_size is not None:
        print(f"Data partition: {plan.data_size // MIB} MiB ext4 '{job.label}'"
              + (f" holding {job.repo}" if job.repo else ""))


def print_result(plan: UsbPlan) -> None:
    target = plan.job.target
    if not plan.device:
        print(f"Wrote {target} ({target.stat().st_size // MIB} MiB). "
              f"Copy it to a stick with: dd if={target} of=/dev/sdX bs=4M conv=fsync")
    elif plan.data_partition is not None:
        print(f"{target} is ready: live system + data partition {plan.data_partition} "
              f"('{plan.job.label}').")


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
    writer = UsbWriter(runner, say=print)
    plan = writer.plan(job)  # refusals first: nothing is asked or erased before them
    if plan.device and not args.yes:
        answer = input(f"Everything on {job.target} will be erased. Type 'yes' to go on: ")
        if answer.strip().lower() != "yes":
            print("Nothing was written.")
            return 1
    print_plan(plan)
    writer.execute(plan)
    print_result(plan)
    return 0
