"""Hot-plug for a screen: disks that come or go while a screen that lists or names them
is shown (the image list, the target disks, the summary) are seen at once.

The backend's monitor calls from its own thread; the screen's *on_change* runs on the
UI thread, once per burst of events (0.5 s apart), and only while the screen is the one
shown: a change while a later step is on top is kept for when the screen comes back
(never a reload underneath a restore)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.screen import Screen
from textual.timer import Timer

#: starts the hot-plug monitor with a callback; returns what stops it (Services.watch_media)
Watch = Callable[[Callable[[], None]], Callable[[], None]]

DEBOUNCE_S = 0.5


class MediaWatch:
    def __init__(self, screen: Screen[Any], watch: Watch, on_change: Callable[[], object]
                 ) -> None:
        self.screen = screen
        self.watch = watch
        self.on_change = on_change
        self.stale = False
        self._stop: Callable[[], None] | None = None
        self._debounce: Timer | None = None
        self._stopped = False

    @property
    def watching(self) -> bool:
        return self._stop is not None

    def start(self) -> None:
        """Begin watching (the monitor starts in a worker thread: it may take a moment)."""
        self.screen.run_worker(self._start, thread=True, group="media-watch")

    def _start(self) -> None:
        stop = self.watch(self._changed)
        if self._stopped:  # the screen went away while the monitor started
            stop()
            return
        self._stop = stop

    def stop(self) -> None:
        self._stopped = True
        if self._stop is not None:
            self._stop()
            self._stop = None

    def resume(self) -> None:
        """The screen is shown again: catch up with what changed meanwhile."""
        if self.stale:
            self.stale = False
            self.on_change()

    def _changed(self) -> None:
        """From the monitor's thread."""
        self.screen.app.call_from_thread(self._schedule)

    def _schedule(self) -> None:
        if self.screen.app.screen is not self.screen:
            self.stale = True
            return
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.screen.set_timer(DEBOUNCE_S, self.on_change)
