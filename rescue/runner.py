"""Every external command goes through a :class:`CommandRunner`.

``CommandRunner`` runs for real; ``RecordingRunner`` runs for real and keeps a log of
argv lists (tests, restore reports); ``DryRunRunner`` records and runs nothing.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from rescue.errors import ExternalCommandError
from rescue.i18n import _


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


#: Seconds a program that only looks, mounts or lists may take before it counts as hung
#: (a dead NFS/SMB server, a failing disk). Programs not named here (mkfs, resize,
#: fsck, partclone, grub-install, update-initramfs) run as long as they need.
TIMEOUTS: dict[str, float] = {
    "blkid": 60, "lsblk": 60, "sfdisk": 120, "partx": 60, "losetup": 60, "wipefs": 120,
    "mount": 120, "umount": 120, "mount.cifs": 120, "mount.nfs": 120, "efibootmgr": 60,
    "pvs": 120, "lvs": 120, "vgs": 120, "pvdisplay": 120, "blockdev": 60, "findmnt": 60,
    "udevadm": 120, "modprobe": 120,
}


class CommandRunner:
    """Runs external commands; raises ExternalCommandError on failure when asked."""

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        input: str | None = None,
        env: dict[str, str] | None = None,
        what: str | None = None,
        timeout: float | None = None,
    ) -> Result:
        """*timeout*: seconds before the program is killed and the run fails; by default
        the program's entry in :data:`TIMEOUTS`, else none."""
        args = [str(a) for a in argv]
        limit = timeout if timeout is not None else TIMEOUTS.get(os.path.basename(args[0]))
        try:
            proc = subprocess.Popen(
                args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                start_new_session=True)
        except FileNotFoundError as exc:
            raise ExternalCommandError(_(
                "The program '{program}' is not installed; install it (make setup) and retry."
            ).format(program=args[0])) from exc
        try:
            stdout, stderr = proc.communicate(input, timeout=limit)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=5)  # a process stuck in the kernel is left behind
            raise ExternalCommandError(_(
                "{what} did not finish within {seconds} s and was stopped; a server or a "
                "disk does not answer. Check the network or the disk and retry."
            ).format(what=what or shlex.join(args), seconds=int(limit or 0))) from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        result = Result(args, proc.returncode, stdout, stderr)
        if check and proc.returncode != 0:
            detail = (stderr or stdout).strip().splitlines()
            last = detail[-1] if detail else _("exit code {code}").format(code=proc.returncode)
            label = what or shlex.join(args)
            raise ExternalCommandError(_("{what} failed: {detail}").format(what=label, detail=last))
        return result


@dataclass
class RecordingRunner(CommandRunner):
    """Runs commands for real and remembers every argv."""

    log: list[list[str]] = field(default_factory=list)

    def run(self, argv: Sequence[str], **kwargs) -> Result:
        self.log.append([str(a) for a in argv])
        return super().run(argv, **kwargs)


@dataclass
class DryRunRunner(CommandRunner):
    """Records commands and runs none of them."""

    log: list[list[str]] = field(default_factory=list)

    def run(self, argv: Sequence[str], **kwargs) -> Result:
        args = [str(a) for a in argv]
        self.log.append(args)
        return Result(args, 0, "", "")
