"""Command line entry point: ``rescue <command>``. Builds services and passes them in."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback

from rescue import __version__, i18n
from rescue.errors import RescueError, from_oserror

# Each module registers one or more subcommands (see rescue/commands/__init__.py).
COMMAND_MODULES = [
    "rescue.commands.image_commands",
    "rescue.commands.browse",
    "rescue.commands.keys",
    "rescue.commands.make_usb",
    "rescue.commands.devices",
    "rescue.commands.compat",
    "rescue.commands.wizard",
    "rescue.commands.wifi",
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
    # Messages in the language the environment asks for (LANG=de_DE.UTF-8 ...); English
    # by default and for languages without a catalog. The wizard sets its own.
    i18n.set_language(i18n.language_from_environment())
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
    except OSError as exc:
        err = from_oserror(exc, f"rescue {args.command}")
        print(f"rescue: {err}", file=sys.stderr)
        return err.exit_code
    except Exception:  # a bug: keep the traceback out of the technician's way
        path = _save_crash_log()
        print(f"rescue: internal error in 'rescue {args.command}'. This is a bug; the "
              f"details are in {path}. Nothing more was written after the error.",
              file=sys.stderr)
        return 70


#: where crash logs go; a private folder in the temporary directory when it cannot be made
CRASH_LOG_DIR = "/var/log/rescue"


def _save_crash_log() -> str:
    """Write the command line and the traceback, without passwords (they may be in a
    repository's address), to a new file only root can read: in :data:`CRASH_LOG_DIR`,
    or in a private folder (0700) made for it in the temporary directory. Never follows
    a link or reuses a file another user could have put there."""
    # imported here: the repo package is large and every command would load it at start
    from rescue.repo.location import redact

    text = redact(" ".join(sys.argv) + "\n\n" + traceback.format_exc())
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    try:
        os.makedirs(CRASH_LOG_DIR, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(CRASH_LOG_DIR, name),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        directory = CRASH_LOG_DIR
    except OSError:
        directory = tempfile.mkdtemp(prefix="rescue-crash-")
        fd = os.open(os.path.join(directory, name),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return os.path.join(directory, name)
