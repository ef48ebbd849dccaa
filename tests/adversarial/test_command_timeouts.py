"""A program that only looks or mounts can hang for ever on a dead server or a failing
disk (mount.cifs, blkid). Such programs get a time limit; when it passes, the program and
everything it started are stopped and the technician reads a sentence."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from rescue import runner as runner_module
from rescue.errors import ExternalCommandError
from rescue.runner import TIMEOUTS, CommandRunner


def test_probes_and_mounts_have_a_time_limit() -> None:
    for program in ("blkid", "mount", "umount", "mount.cifs", "mount.nfs", "sfdisk", "partx"):
        assert 0 < TIMEOUTS[program] <= 300


def test_a_hung_program_and_its_children_are_stopped(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner_module.TIMEOUTS, "sh", 1)
    pidfile = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    signal.alarm(30)  # hang guard: the old runner waited the full minute
    try:
        with pytest.raises(ExternalCommandError, match="did not finish within 1 s"):
            CommandRunner().run(["sh", "-c", script], what="Looking at the share")
    finally:
        signal.alarm(0)
    child = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(child, 0)  # gone once the group was killed (reaped by init)
            subprocess.run(["sleep", "0.1"], check=True)


def test_an_explicit_limit_and_unlisted_programs() -> None:
    with pytest.raises(ExternalCommandError, match="within 1 s"):
        CommandRunner().run(["sleep", "5"], timeout=1)
    assert CommandRunner().run(["sh", "-c", "echo hi"]).stdout == "hi\n"
    assert CommandRunner().run(["cat"], input="fed").stdout == "fed"
