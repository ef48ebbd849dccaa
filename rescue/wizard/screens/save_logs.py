"""Save logs: choose the USB stick (or any writable filesystem) to save the logs on.

The list comes from ``Services.log_media`` (``copy_media`` when files of an image are
copied) in a worker thread and is refreshed when a disk
is plugged in or pulled out; "Type a folder…" keeps the old way (a mounted folder).
Dismisses with the chosen :class:`LogMedium`, :data:`FOLDER` or ``None`` (cancelled).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Button, OptionList, Static
from textual.widgets.option_list import Option

from rescue.i18n import _
from rescue.wizard.model import LogMedium
from rescue.wizard.ports import Services, describe_error
from rescue.wizard.protocol import Wizard
from rescue.wizard.screens.base import Dialog

FOLDER = "folder"


class SaveLogsDialog(Dialog):
    """*copy*: the same choice for files copied out of an image (its own title and
    question; ``Services.copy_media`` lists the filesystems)."""

    def __init__(self, exclude: list[str], copy: bool = False) -> None:
        super().__init__()
        self.exclude = exclude  # disks never offered (the restore target)
        self.copy = copy
        self.media: list[LogMedium] = []
        self.loaded = False
        self.error = ""
        self._stop_watch: Callable[[], None] | None = None
        self._debounce: Timer | None = None
        self._closed = False

    @property
    def services(self) -> Services:
        return cast(Wizard, self.app).services

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            if self.copy:
                yield Static(_("Copy the marked files"), classes="dialog-title")
                yield Static(_("Copy them to which disk? Plug in a USB stick; it appears "
                               "in this list."), classes="dialog-text")
            else:
                yield Static(_("Save logs"), classes="dialog-title")
                yield Static(_("Save the logs on which disk? Plug in a USB stick; it "
                               "appears in this list."), classes="dialog-text")
            yield OptionList(Option(_("Type a folder…"), id=FOLDER), id="choices")
            yield Static(_("Looking for disks…"), id="media-status")
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("Cancel"), id="no")

    def on_mount(self) -> None:
        self.query_one("#choices", OptionList).focus()
        self.load_media()
        self.start_watch()

    def on_unmount(self) -> None:
        self._closed = True
        if self._stop_watch:
            self._stop_watch()
            self._stop_watch = None

    @work(thread=True, group="watch")
    def start_watch(self) -> None:
        stop = self.services.watch_media(self.media_changed)
        if self._closed:  # dismissed while the watch was starting
            stop()
        else:
            self._stop_watch = stop

    def media_changed(self) -> None:
        """Called from the hot-plug thread."""
        if not self._closed:
            self.app.call_from_thread(self._schedule_reload)

    def _schedule_reload(self) -> None:
        if self._closed:
            return
        if self._debounce:
            self._debounce.stop()
        self._debounce = self.set_timer(0.5, self.load_media)

    @work(thread=True, exclusive=True, group="log-media")
    def load_media(self) -> None:
        try:
            media = (self.services.copy_media(list(self.exclude)) if self.copy
                     else self.services.log_media(list(self.exclude)))
            error = ""
        except Exception as exc:  # noqa: BLE001
            media, error = [], describe_error(exc)
        if not self._closed:
            self.app.call_from_thread(self.loaded_media, media, error)

    def loaded_media(self, media: list[LogMedium], error: str) -> None:
        if self._closed:
            return
        self.media, self.error, self.loaded = media, error, True
        options = self.query_one("#choices", OptionList)
        options.clear_options()
        options.add_options([Option(m.title(), id=f"medium-{i}") for i, m in enumerate(media)])
        options.add_option(Option(_("Type a folder…"), id=FOLDER))
        options.highlighted = 0
        if error:
            status = error
        elif not media:
            status = _("No writable disk or USB stick found. Plug one in, or type a folder.")
        else:
            status = ""
        self.query_one("#media-status", Static).update(status)

    @on(OptionList.OptionSelected, "#choices")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        key = event.option.id or ""
        if key == FOLDER:
            self.dismiss(FOLDER)
        elif key.startswith("medium-"):
            self.dismiss(self.media[int(key.removeprefix("medium-"))])

    @on(Button.Pressed)
    def pressed(self) -> None:
        self.dismiss(None)
