"""The CLI's progress sink (TerminalProgress): plain lines off a terminal (pipes, CI,
``| tee``: no escape codes, even under FORCE_COLOR), a rich.progress live line on one."""

from __future__ import annotations

import io
import re

import pytest

from rescue.events import LogMessage, Progress, StageFinished, StageStarted
from rescue.terminal import TerminalProgress

GiB = 1 << 30
MiB = 1 << 20
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_stage(sink: TerminalProgress) -> None:
    total, rate = 3 * GiB, 150 * MiB
    sink(StageStarted("write-data", "Writing partition 2 (ext4, 3.0 GiB)", total))
    for i in range(11):
        done = i * total // 10
        sink(Progress("write-data", done, total, done / rate, rate, (total - done) / rate))
        if i == 5:
            sink(LogMessage("warning", "partition 2: [bold]5 bad sectors[/] skipped"))
    sink(StageFinished("write-data", 21.0, total))
    sink(StageStarted("fixup-grub", "Fix-up: GRUB", 0))
    sink(LogMessage("info", "grub-install: done"))
    sink(StageFinished("fixup-grub", 1.0))


def test_plain_lines_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    out = io.StringIO()
    run_stage(TerminalProgress(out))
    lines = out.getvalue().splitlines()
    assert lines[0] == "Writing partition 2 (ext4, 3.0 GiB)"
    assert lines[1] == "   10.0% 307.2 MiB/3.0 GiB 150.0 MiB/s ETA 00:18"
    assert lines[6] == "warning: partition 2: [bold]5 bad sectors[/] skipped"
    assert lines[11] == "  100.0% 3.0 GiB/3.0 GiB 150.0 MiB/s ETA 00:00"
    assert lines[12:] == ["Fix-up: GRUB", "grub-install: done"]
    assert len(lines) == 14 and "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_live_line_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    out = FakeTerminal()
    run_stage(TerminalProgress(out))
    text = out.getvalue()
    assert text.startswith("Writing partition 2 (ext4, 3.0 GiB)\n")
    assert "\x1b[?25l" in text and text.count("\x1b[?25h") == 1  # cursor hidden, then back
    screen = [ANSI.sub("", line).split("\r")[-1] for line in text.split("\n")]
    # Each stage's last state stays on the screen; log lines come above the live line.
    assert screen[1] == "warning: partition 2: [bold]5 bad sectors[/] skipped"
    assert re.fullmatch(r"━+ 100% 3\.0 GiB/3\.0 GiB 150\.0 MiB/s in 00:21", screen[2]), screen
    assert screen[3:] == ["Fix-up: GRUB", "grub-install: done", ""]
    assert "ETA 00:10" in text and "1.5 GiB/3.0 GiB" in text  # drawn on the way


def test_a_stage_cut_short_gives_the_cursor_back() -> None:
    out = FakeTerminal()
    sink = TerminalProgress(out)
    sink(StageStarted("backup", "Reading /dev/sda", GiB))
    sink(Progress("backup", GiB // 2, GiB, 1.0, GiB / 2, 1.0))
    assert "\x1b[?25h" not in out.getvalue()
    sink.close()  # what atexit does after an error
    sink.close()
    assert out.getvalue().count("\x1b[?25h") == 1
    assert "50%" in ANSI.sub("", out.getvalue())
