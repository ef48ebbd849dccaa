"""Every external command goes through a :class:`CommandRunner`.

``CommandRunner`` runs for real; ``RecordingRunner`` runs for real and keeps a log of
argv lists (tests, restore reports); ``DryRunRunner`` records and runs nothing.
"""

from __future__ import annotations

import shlex
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
    ) -> Result:
        args = [str(a) for a in argv]
        try:
            proc = subprocess.run(
                args,
                input=input,
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ExternalCommandError(_(
                "The program '{program}' is not installed; install it (make setup) and retry."
            ).format(program=args[0])) from exc
        result = Result(args, proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
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
