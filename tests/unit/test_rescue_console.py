"""The live system's console launcher (image-build/.../rescue-console), with a fake
`rescue` and a fake shell: restarts, fall-back shell, unattended mode, shell entry."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "image-build/config/includes.chroot/usr/local/sbin/rescue-console"


class Console:
    def __init__(self, tmp: Path, wizard_rc: int, cmdline: str) -> None:
        self.tmp = tmp
        self.calls = tmp / "calls"
        self.shells = tmp / "shells"
        (tmp / "cmdline").write_text(cmdline + "\n")
        fake = tmp / "rescue"
        fake.write_text(f'#!/bin/sh\necho "$TERM $*" >> {self.calls}\nexit {wizard_rc}\n')
        fake.chmod(0o755)
        # The fake shell records its start and ends the launcher's endless loop.
        shell = tmp / "shell"
        shell.write_text(f'#!/bin/sh\necho shell >> {self.shells}\nkill -TERM $PPID\n')
        shell.chmod(0o755)

    def run(self, tty: str) -> str:
        env = {
            **os.environ,
            "RESCUE_BIN": str(self.tmp / "rescue"),
            "RESCUE_SHELL": str(self.tmp / "shell"),
            "RESCUE_LOG_DIR": str(self.tmp / "log"),
            "RESCUE_RUN_DIR": str(self.tmp / "run"),
            "RESCUE_CMDLINE_FILE": str(self.tmp / "cmdline"),
        }
        proc = subprocess.run(["bash", str(SCRIPT), tty], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, env=env, timeout=60,
                              cwd=self.tmp)
        return proc.stdout + proc.stderr

    def wizard_calls(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def shell_count(self) -> int:
        return len(self.shells.read_text().splitlines()) if self.shells.exists() else 0


@pytest.fixture(autouse=True)
def _bash_present() -> None:
    assert SCRIPT.is_file()


def test_crashing_wizard_is_restarted_then_falls_back_to_a_shell(tmp_path: Path) -> None:
    console = Console(tmp_path, wizard_rc=1, cmdline="boot=live quiet")
    out = console.run("tty1")
    calls = console.wizard_calls()
    assert len(calls) == 3, out
    assert calls[0] == f"linux wizard --log {tmp_path}/log/wizard-tty1.log"
    assert "stopped unexpectedly (exit code 1)" in out
    assert "failed 3 times" in out and f"Logs: {tmp_path}/log/" in out
    assert console.shell_count() == 1
    assert "wizard exit code 1" in (tmp_path / "log/console-tty1.log").read_text()


def test_wizard_closed_normally_gives_a_shell(tmp_path: Path) -> None:
    console = Console(tmp_path, wizard_rc=0, cmdline="boot=live")
    out = console.run("ttyS0")
    assert console.wizard_calls() == [f"xterm-256color wizard --log {tmp_path}/log/"
                                      "wizard-ttyS0.log"]
    assert "The wizard has closed" in out and console.shell_count() == 1


def test_shell_entry_starts_no_wizard(tmp_path: Path) -> None:
    console = Console(tmp_path, wizard_rc=0, cmdline="boot=live rescue_console=shell")
    out = console.run("tty1")
    assert console.wizard_calls() == [] and console.shell_count() == 1
    assert "Rescue to a shell" in out


def test_unattended_runs_once_on_the_primary_console_only(tmp_path: Path) -> None:
    cmdline = ("boot=live console=tty0 console=ttyS0,115200n8 rescue.action=restore "
               "rescue.target=/dev/vdb")
    console = Console(tmp_path, wizard_rc=11, cmdline=cmdline)
    out = console.run("tty1")  # not the primary console (the last console= is ttyS0)
    assert console.wizard_calls() == [] and "in progress on ttyS0" in out
    out = console.run("ttyS0")
    assert len(console.wizard_calls()) == 1 and "it is not retried" in out
    out = console.run("ttyS0")  # systemd restarts the launcher: no second attempt
    assert len(console.wizard_calls()) == 1 and "already ended" in out
