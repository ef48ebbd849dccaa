"""Typed progress events. The engine emits them; the TUI, the CLI progress bar
(:mod:`rescue.terminal`) and the JSON log are sinks of the same events. Plain data and
the standard library only: the engine below needs nothing to draw."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any


@dataclass(frozen=True)
class StageStarted:
    stage: str  # machine name, e.g. "restore-data"
    title: str  # sentence for people, e.g. "Writing partition 2 (ext4, 1.9 GiB)"
    total_bytes: int = 0


@dataclass(frozen=True)
class Progress:
    stage: str
    done_bytes: int
    total_bytes: int
    elapsed: float
    rate: float  # bytes per second, averaged over the stage
    eta: float | None  # seconds left, None when unknown


@dataclass(frozen=True)
class StageFinished:
    stage: str
    elapsed: float
    done_bytes: int = 0


@dataclass(frozen=True)
class LogMessage:
    level: str  # "info" | "warning" | "error"
    text: str


Event = StageStarted | Progress | StageFinished | LogMessage
Sink = Callable[[Event], None]


def null_sink(event: Event) -> None:
    """A sink that drops every event."""


@dataclass
class Broadcast:
    """Send each event to several sinks."""

    sinks: list[Sink] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        for sink in self.sinks:
            sink(event)


class ProgressMeter:
    """Turns byte counts of one stage into throttled Progress events."""

    def __init__(self, sink: Sink, stage: str, total: int, interval: float = 0.25) -> None:
        self.sink, self.stage, self.total, self.interval = sink, stage, total, interval
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0

    def add(self, nbytes: int, force: bool = False) -> None:
        self.done += nbytes
        now = time.monotonic()
        if force or now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            elapsed = max(now - self.start, 1e-9)
            rate = self.done / elapsed
            eta = (self.total - self.done) / rate if rate > 0 and self.total else None
            self.sink(Progress(self.stage, self.done, self.total, elapsed, rate, eta))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_seconds(s: float | None) -> str:
    if s is None:
        return "--:--"
    s = int(s)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60:02d}:{s % 60:02d}"


class JsonLog:
    """One JSON object per event, one per line."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        record: dict[str, Any] = {"event": type(event).__name__, "time": time.time()}
        record.update(asdict(event))
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()
