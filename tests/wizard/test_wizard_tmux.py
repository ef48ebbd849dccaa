# ruff: noqa: F811  (pytest fixtures imported from wizard_fixtures shadow as parameters)
"""A real terminal: tmux runs `rescue wizard` at 80x24 on loop devices, send-keys walks
it with the keyboard only, capture-pane checks each screen, and the restored disk is
checked afterwards."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loopdev import MiB
from wizard_disks import check_restored
from wizard_fixtures import english, loops, real_backup  # noqa: F401 (fixtures)

pytestmark = pytest.mark.root


class Tmux:
    def __init__(self, name: str) -> None:
        self.name = name

    def start(self, command: str) -> None:
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "80", "-y", "24",
                        command], check=True)

    def keys(self, *keys: str, pause: float = 0.3) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True)
            time.sleep(pause)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True).stdout

    def wait(self, *texts: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{texts} not on the screen after {timeout} s:\n{screen}")

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_wizard_in_a_real_terminal(real_backup, loops, tmp_path: Path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (make setup installs it)")
    target = loops(256 * MiB, "target")
    argv = [sys.executable, "-m", "rescue", "wizard", "--include-loop", "--disk", target,
            "--repo", str(real_backup.repo), "--no-media-search", "--simulate-power",
            "--restart-countdown", "0", "--log", str(tmp_path / "wizard.log")]
    # Textual draws on stderr: leave it on the terminal.
    command = (f"cd {shlex.quote(os.getcwd())} && {shlex.join(argv)}; "
               "echo WIZARD-EXIT=$?; sleep 120")
    tmux = Tmux(f"rescue-wizard-test-{os.getpid()}")
    try:
        tmux.start(command)
        # the title line is drawn before the language list fills in: wait for both
        tmux.wait("Choose your language", "Step 1 of 8", "English")
        tmux.keys("Tab", "Tab", "Tab", "Enter")  # Next
        tmux.wait("Repair your computer", "Back up this computer")
        tmux.keys("Enter")
        tmux.wait("Restore a system image", "Check a disk's filesystems", "Shut down")
        tmux.keys("Enter")
        screen = tmux.wait("Use the latest available system image (recommended)",
                           "Computer: demo-pc")
        assert str(real_backup.repo) in screen
        tmux.keys("Tab", "Tab", "Tab", "Tab", "Enter")  # table, Back, Add, Next
        screen = tmux.wait("Choose the disk to restore to", f"Selected: {target}")
        assert "Format and repartition disks" in screen and "Verify after restore" in screen
        tmux.keys("Tab", "Tab", "Tab", "Tab", "Tab", "Enter")  # 3 options, Back, Next
        screen = tmux.wait("Volumes to restore", "Plan", timeout=60)  # plan: checks passed
        assert "demo-pc" in screen and "'root'" in screen
        tmux.keys("Enter")  # Finish has the focus once the plan is ready
        screen = tmux.wait("The system image was restored.", timeout=180)
        assert "Verification: every restored byte matches the image." in screen
        assert "Restart now" in screen
        tmux.keys("C-q")
        screen = tmux.wait("WIZARD-EXIT=0")
        assert "Traceback" not in screen
    finally:
        tmux.kill()
    check_restored(target, tmp_path)
    assert '"result": "ok"' in (tmp_path / "wizard.log").read_text()
