"""Command line entry point: ``rescue <command>``. Builds services and passes them in."""

from __future__ import annotations

import argparse
import importlib
import sys

from rescue import __version__
from rescue.errors import RescueError

# Each module registers one or more subcommands (see rescue/commands/__init__.py).
COMMAND_MODULES = [
    "rescue.commands.image_commands",
    "rescue.commands.devices",
    "rescue.commands.compat",
    "rescue.commands.wizard",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rescue",
        description="Bare metal backup and recovery: back up whole disks to an image "
        "repository and restore them onto bare machines.",
    )
    parser.add_argument("--version", action="version", version=f"rescue {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RescueError as exc:
        print(f"rescue: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rescue: interrupted.", file=sys.stderr)
        return 130
