"""rescue mount | umount | extract: look into an image without restoring it
(docs/BROWSE.md)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from types import FrameType

from rescue import services
from rescue.commands.image_commands import REPO_HELP, TRUST_HELP
from rescue.errors import Cancelled, UsageError
from rescue.events import human_bytes
from rescue.repo.location import FOLDER, Location
from rescue.runner import CommandRunner

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mount", help="show an image's partitions and files in a folder (read-only)",
        description="Mount an image read-only on an empty folder, without restoring it: "
        "DIR/parts/p1.img ... are its partitions as files (read from the repository as "
        "they are needed), and each partition whose filesystem can be read is mounted on "
        "DIR/p1, DIR/p2 ... (ext2/3/4, xfs, btrfs, ntfs, vfat, exfat). Runs until Ctrl-C "
        "or 'rescue umount DIR'.")
    p.add_argument("--repo", required=True, help=REPO_HELP)
    p.add_argument("--image", default="latest", help="id, unique id prefix or 'latest'")
    p.add_argument("--cache", type=int, default=128, metavar="MIB",
                   help="memory for decoded chunks, in MiB (default 128)")
    p.add_argument("--trust", action="append", default=[], metavar="FILE_OR_DIR",
                   help=TRUST_HELP)
    p.add_argument("--background", action="store_true",
                   help="return once the image is mounted; it stays mounted until "
                   "'rescue umount DIR' (what it says later goes to a log file, named)")
    p.add_argument("dir", metavar="DIR", help="an empty folder to show the image in")
    p.set_defaults(func=cmd_mount)

    p = sub.add_parser("umount", help="take down an image 'rescue mount' shows",
                       description="Unmount the filesystems, detach the loop devices and "
                       "the image's FUSE filesystem that 'rescue mount' put on DIR (also "
                       "what a killed 'rescue mount' left behind).")
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(func=cmd_umount)

    p = sub.add_parser("extract", help="copy a file or folder out of an image",
                       description="Copy one file or folder out of an image, without "
                       "restoring it: owners, modes, times, extended attributes and ACLs "
                       "(where the target filesystem keeps them), symbolic links, hard "
                       "links within what is copied and holes of sparse files are kept.")
    p.add_argument("--repo", required=True, help=REPO_HELP)
    p.add_argument("--image", default="latest", help="id, unique id prefix or 'latest'")
    p.add_argument("--path", required=True,
                   help="the file or folder as the imaged system names it, e.g. "
                   "/home/anna/thesis.odt")
    p.add_argument("--to", required=True, metavar="DIR",
                   help="the folder the copy goes into (created when missing)")
    p.add_argument("--partition", type=int, metavar="N",
                   help="the partition number to copy from (default: the root filesystem)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files that already exist in DIR")
    p.add_argument("--trust", action="append", default=[], metavar="FILE_OR_DIR",
                   help=TRUST_HELP)
    p.set_defaults(func=cmd_extract)


class _Stop(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


@contextlib.contextmanager
def _stoppable() -> Iterator[None]:
    """SIGINT/SIGTERM/SIGHUP raise :class:`_Stop` in the block. Installed before FUSE
    starts, so libfuse leaves these signals to us and the teardown runs in order."""
    old = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, _stop)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _quiet() -> None:
    """The teardown is not interrupted by a second Ctrl-C or SIGTERM."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def _report(sentence: str) -> None:
    print(f"rescue: {sentence}", file=sys.stderr, flush=True)


#: the environment variable a background mount gets its repository from (a location may
#: hold a password: a process's environment is readable by root only, its command line by
#: everyone)
REPO_ENV = "RESCUE_MOUNT_REPO"
BACKGROUND_TIMEOUT = 600.0  # seconds to wait for a background mount to be ready


def cmd_mount(args: argparse.Namespace) -> int:
    runner = CommandRunner()
    if args.cache < 8:
        raise UsageError("--cache needs at least 8 MiB.")
    if args.repo == "-":
        args.repo = os.environ.get(REPO_ENV, "")
        if not args.repo:
            raise UsageError(f"--repo - reads the repository from {REPO_ENV}, which is empty.")
    if args.background:
        return _background(args)
    trust = services.trust_store(args.trust)
    with _stoppable():
        try:
            with services.opened_image(args.repo, args.image, runner, trust) as (
                    repo, manifest), services.ImageMount(
                        repo, manifest, args.dir, runner, cache_bytes=args.cache << 20,
                        record=True, report=_report) as image:
                print(f"Image {manifest.id} ({manifest.computer or '?'}, "
                      f"{manifest.created_local}) from {repo.location} on {image.where}:")
                for v in image.views:
                    shown = v.mounted or f"not mounted: {v.note}"
                    print(f"  {v.file}  {v.fstype or '-':<8} {human_bytes(v.size):>10}"
                          f"  {shown}")
                print(f"Read-only. Ctrl-C here, or 'rescue umount {image.where}', takes "
                      "it down.", flush=True)
                try:
                    while image.alive:
                        time.sleep(0.25)
                except _Stop:
                    pass
                _quiet()
        except _Stop:
            raise Cancelled("Interrupted; nothing of the image is left mounted.") from None
    print(f"Unmounted {args.dir}.")
    return 0


def _background(args: argparse.Namespace) -> int:
    """Run this mount as a process of its own (a new session, output to a log file) and
    return once it is ready, or with its error when it stopped."""
    log = services.mount_log_path(args.dir)
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # the process runs in / (it must keep no folder busy, the technician's current one
    # may be on a stick to unplug), so every local path it gets is absolute
    repo = args.repo
    if Location.parse(repo).kind == FOLDER:
        repo = os.path.abspath(repo)
    argv = [sys.executable, "-m", "rescue", "mount", "--repo", "-", "--image", args.image,
            "--cache", str(args.cache),
            *[f"--trust={os.path.abspath(t)}" for t in args.trust], os.path.abspath(args.dir)]
    with open(log, "w") as out:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 env={**os.environ, REPO_ENV: repo}, cwd="/",
                                 start_new_session=True)
    deadline = time.monotonic() + BACKGROUND_TIMEOUT
    try:
        while True:
            said = log.read_text(errors="replace")
            if any(line.startswith("Read-only.") for line in said.splitlines()):
                break
            if child.poll() is not None or time.monotonic() > deadline:
                if child.poll() is None:
                    child.terminate()
                    child.wait(60)
                sys.stderr.write(log.read_text(errors="replace"))
                log.unlink(missing_ok=True)
                return child.returncode or 1
            time.sleep(0.1)
    except KeyboardInterrupt:
        child.terminate()  # it takes down what it set up
        child.wait(60)
        raise
    print(said.split("Read-only.")[0], end="")
    print(f"Read-only. Mounted in the background (process {child.pid}); 'rescue umount "
          f"{args.dir}' takes it down. Read errors are written to {log}.")
    return 0


def cmd_umount(args: argparse.Namespace) -> int:
    done = services.unmount_image(args.dir, CommandRunner())
    log = services.mount_log_path(args.dir)
    with contextlib.suppress(OSError):  # a background mount's log: its read errors, once
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("rescue: "):
                print(line, file=sys.stderr)
        log.unlink()
    if not done:
        raise UsageError(f"No image is mounted on {args.dir}.")
    print(f"Unmounted {args.dir}.")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    runner = CommandRunner()
    trust = services.trust_store(args.trust)
    with _stoppable():
        try:
            with services.opened_image(args.repo, args.image, runner, trust) as (
                    repo, manifest):
                result = services.extract_files(repo, manifest, args.path, args.to,
                                                args.partition, args.overwrite, runner,
                                                _report)
        except _Stop:
            raise Cancelled("Interrupted; the copy is incomplete, the image is unmounted."
                            ) from None
    rate = result.bytes / max(result.elapsed, 1e-6)
    print(f"Copied {args.path} from {result.partition} of image {manifest.id} to "
          f"{result.target}: {result.files} file(s), {human_bytes(result.bytes)} in "
          f"{result.elapsed:.1f} s ({human_bytes(rate)}/s).")
    return 0
