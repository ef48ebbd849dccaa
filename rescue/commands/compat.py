"""``rescue compat``: will an image boot on this machine? Exit code per verdict.

    rescue compat --repo R --image ID [--machine FILE] [--target DISK] [--json]
    rescue compat --source-machine FILE [--machine FILE] [--json]

Exit codes: 0 compatible, 24 compatible with fix-ups, 23 blocked.
"""

from __future__ import annotations

import argparse
import json

from rescue.errors import UsageError
from rescue.hardware.compat import compare
from rescue.hardware.profile import HardwareProfile, collect_profile
from rescue.repo import open_repository


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compat",
        help="compare an image's hardware with this machine and give a verdict",
        description="Compare the hardware profile recorded in an image with this machine "
        "(or a recorded one) and list each difference: boot-critical or other, what it "
        "means and what the restore does about it. Exit code: 0 compatible, "
        "24 compatible with fix-ups, 23 blocked.",
    )
    p.add_argument("--repo", metavar="PATH", help="the image repository")
    p.add_argument("--image", metavar="ID", default="latest",
                   help="image id, unique prefix or 'latest' (default)")
    p.add_argument("--source-machine", metavar="FILE",
                   help="use a recorded machine's profile as the image side instead of --repo")
    p.add_argument(
        "--machine", metavar="FILE",
        help="compare with a recorded machine (rescue devices --dump) instead of this one",
    )
    p.add_argument("--target", metavar="DISK",
                   help="the disk the image would be restored to (its bus and drivers count)")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(func=run)


def image_profile(repo: str, image: str) -> HardwareProfile:
    with open_repository(repo) as opened:
        manifest = opened.load_manifest(image)
    return HardwareProfile.from_dict(manifest.hardware or {})


def run(args: argparse.Namespace) -> int:
    if args.source_machine:
        source = HardwareProfile.load(args.source_machine)
    elif args.repo:
        source = image_profile(args.repo, args.image)
    else:
        raise UsageError("Say which image to check: --repo PATH [--image ID], "
                         "or --source-machine FILE.")
    machine = HardwareProfile.load(args.machine) if args.machine else collect_profile(
        boot_disk=args.target
    )
    verdict = compare(source, machine)
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2))
    else:
        print("\n".join(verdict.describe()))
    return verdict.exit_code
