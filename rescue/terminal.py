"""The engine's progress on a technician's terminal, for the CLI and unattended runs:
:class:`TerminalProgress`, a sink of :mod:`rescue.events`.

It draws its live line with rich.progress (rich comes with textual, so it is in the live
image already); rich takes care of redrawing, of printing log lines above the bar and of
the terminal's width and colours. Its columns for bytes, rate and ETA are ours: rich's
count in decimal units (MB/s) and estimate the rate themselves, whereas the events carry
the engine's rate and ETA and the rest of rescue (wizard, summaries, plain lines) speaks
KiB/MiB/GiB. Off a terminal rich is not used: plain lines, so logs and ``| tee`` get no
escape codes even under FORCE_COLOR."""

from __future__ import annotations

import atexit
import sys
import threading
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, Task, TaskID, TaskProgressColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from rescue.events import (
    Event,
    LogMessage,
    Progress,
    StageFinished,
    StageStarted,
    human_bytes,
    human_seconds,
)


class _BytesColumn(ProgressColumn):
    """'1.2 GiB/3.0 GiB' in the units of the rest of the program (rich's own columns
    count in decimal MB and estimate the rate themselves; the engine's events carry it)."""

    def render(self, task: Task) -> Text:
        if not task.total:
            return Text(human_bytes(task.completed))
        return Text(f"{human_bytes(task.completed)}/{human_bytes(task.total)}")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{human_bytes(task.fields.get('rate', 0.0))}/s")


class _TimeColumn(ProgressColumn):
    """ETA while the stage runs, its duration once it has finished."""

    def render(self, task: Task) -> Text:
        elapsed = task.fields.get("elapsed")
        if elapsed is not None:
            return Text(f"in {human_seconds(elapsed)}")
        return Text(f"ETA {human_seconds(task.fields.get('eta'))}")


class TerminalProgress:
    """The engine's progress for a technician at a terminal (stderr unless given a stream).

    On a terminal, each stage's title is a line of its own and, once bytes flow, a live
    line below it drawn with rich.progress: bar, percentage, bytes done/total, rate and
    ETA; when the stage ends the line stays with the stage's duration. Log messages (and
    anything printed to the same stream meanwhile, such as the CLI's error message) are
    printed above the live line instead of through it.

    Anywhere else (a pipe, a file, CI, ``| tee``): plain lines and no escape codes, even
    with FORCE_COLOR set: the title, a line at each tenth of the way, log messages.
    """

    def __init__(self, stream: IO[str] | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.width = width
        self._title = ""
        self._tenth = 0
        self._lock = threading.Lock()
        self._console = Console(file=self.stream, force_terminal=self.tty, highlight=False,
                                markup=False, emoji=False, soft_wrap=True)
        self._live: RichProgress | None = None
        self._task: TaskID | None = None

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, StageStarted):
                self._stop()
                self._title = event.title
                self._tenth = 0
                self._line(event.title)
            elif isinstance(event, Progress):
                if self.tty:
                    self._draw(event)
                else:
                    self._plain_progress(event)
            elif isinstance(event, StageFinished):
                if self._live is not None and self._task is not None:
                    self._live.update(self._task, elapsed=event.elapsed,
                                      completed=event.done_bytes or None)
                self._stop()
            elif isinstance(event, LogMessage):
                prefix = "" if event.level == "info" else f"{event.level}: "
                self._line(prefix + event.text)

    def close(self) -> None:
        """End a live line a stage left running (an error stopped it); idempotent."""
        if self._lock.acquire(timeout=2):  # at exit: never hang on a stuck worker thread
            try:
                self._stop()
            finally:
                self._lock.release()

    # -- terminal -----------------------------------------------------------------------

    def _line(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text)  # above the live line
        else:
            print(text, file=self.stream, flush=True)

    def _draw(self, event: Progress) -> None:
        if self._live is None:
            self._live = RichProgress(
                BarColumn(bar_width=self.width), TaskProgressColumn(), _BytesColumn(),
                _RateColumn(), _TimeColumn(),
                console=self._console, auto_refresh=False,  # events come 4 times a second
                redirect_stdout=self.stream is sys.stdout,
                redirect_stderr=self.stream is sys.stderr,
            )
            self._task = self._live.add_task(self._title, total=event.total_bytes or None,
                                             completed=event.done_bytes, rate=event.rate,
                                             eta=event.eta)
            self._live.start()  # draws the first line
            atexit.register(self.close)  # never leave the cursor hidden
            return
        assert self._task is not None
        self._live.update(self._task, completed=event.done_bytes,
                          total=event.total_bytes or None, rate=event.rate, eta=event.eta)
        self._live.refresh()

    def _stop(self) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            atexit.unregister(self.close)
        self._live = self._task = None

    # -- anywhere else ------------------------------------------------------------------

    def _plain_progress(self, event: Progress) -> None:
        if not event.total_bytes:
            return
        tenth = min(int(event.done_bytes * 10 / event.total_bytes + 1e-6), 10)
        if tenth <= self._tenth:
            return
        self._tenth = tenth
        print(f"  {event.done_bytes * 100 / event.total_bytes:5.1f}% "
              f"{human_bytes(event.done_bytes)}/{human_bytes(event.total_bytes)} "
              f"{human_bytes(event.rate)}/s ETA {human_seconds(event.eta)}",
              file=self.stream, flush=True)
