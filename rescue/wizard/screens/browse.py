"""Browse files in a system image: walk the folders of the chosen image's filesystems,
mark files and folders with Space, copy them to a USB stick (the Save logs choice).

The image is mounted read-only (``Services.open_image``) while this screen is open and
unmounted when it goes (Back, Esc at the top, the app ending): ``on_unmount`` closes it,
after cancelling a copy that is still running. Listing, copying and the mount itself run
in worker threads; the copy's progress is polled from what its thread last reported.
"""

from __future__ import annotations

import threading

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Button, DataTable, ProgressBar, Static

from rescue.i18n import _, format_datetime, format_size
from rescue.wizard.model import FileEntry, ImageEntry, OpenedImage
from rescue.wizard.ports import describe_error
from rescue.wizard.screens.base import WizardScreen
from rescue.wizard.screens.dialogs import TextDialog

MARK, NO_MARK = "[X]", "[ ]"


class BrowseScreen(WizardScreen):
    BINDINGS = [
        Binding("escape", "back", "Back", show=False),
        Binding("space", "mark", "Mark", show=False),
        Binding("backspace", "up", "Up", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.opened: OpenedImage | None = None
        self.part = ""  # "" : the image's partitions; else the partition shown
        self.path = ""  # the folder inside it ("" its top)
        self.entries: list[FileEntry] = []
        self.marked: dict[tuple[str, str], FileEntry] = {}
        self.loaded = False  # the image is open (or failed to open)
        self.listing = False
        self.error = ""
        self.copying = False
        self.cancel = threading.Event()
        self.copied = (0, 0)  # bytes copied, bytes in all (written by the copy's thread)
        self._lock = threading.Lock()  # self.opened and self._closed, across threads
        self._closed = False
        self._poll: Timer | None = None

    @property
    def image(self) -> ImageEntry | None:
        return self.state.image

    def heading(self) -> str:
        return _("Browse files in a system image")

    def body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static(self.where_text(), id="where")
            table: DataTable[str] = DataTable(id="files", cursor_type="row")
            table.add_column("", key="mark", width=3)
            table.add_column(_("Name"), key="name", width=36)
            table.add_column(_("Size"), key="size", width=10)
            table.add_column(_("Modified"), key="modified", width=19)
            yield table
            yield Static("", id="status")
            yield ProgressBar(id="bar", show_eta=False)
        yield self.buttons(
            Button(_("Back"), id="back"),
            Button(_("Copy marked…"), id="copy", variant="primary", disabled=True),
        )

    def key_hints(self) -> str:
        return "  ".join([_("Enter Open"), _("Space Mark"), _("Backspace Up"),
                          _("Esc Back"), _("F2 Language")])

    # -- open and close the image ------------------------------------------------------
    def on_mount(self) -> None:
        self.query_one("#bar", ProgressBar).display = False
        self.query_one("#files", DataTable).focus()
        self.fill()
        self.open_image()

    def refill(self) -> None:
        self.query_one("#bar", ProgressBar).display = self.copying
        self.fill()

    def on_unmount(self) -> None:
        """Leaving the tool (or the app ending): stop a copy, unmount the image."""
        self.cancel.set()
        with self._lock:
            self._closed = True
            opened, self.opened = self.opened, None
        if opened is not None:
            try:
                self.services.close_image(opened)
            except Exception as exc:  # noqa: BLE001 - the app may be ending
                self.app.notify(describe_error(exc), severity="error")

    def _open(self, image: ImageEntry) -> OpenedImage:
        """In a worker thread: mount *image*; unmount it again at once when the screen
        went away meanwhile."""
        opened = self.services.open_image(image)
        with self._lock:
            if not self._closed:
                self.opened = opened
                return opened
        self.services.close_image(opened)
        return opened

    @work(group="browse-open")
    async def open_image(self) -> None:
        image = self.image
        if image is None:
            self.error, self.loaded = _("No system image was chosen."), True
            self.fill()
            return
        try:
            opened = await self.wizard.in_thread(self._open, image)
        except Exception as exc:  # noqa: BLE001
            self.error = describe_error(exc)
        else:
            self.entries = list(opened.partitions)
        self.loaded = True
        self.fill()

    # -- what is shown -----------------------------------------------------------------
    def part_title(self) -> str:
        opened = self.opened
        found = next((p for p in opened.partitions if p.part == self.part), None) if opened \
            else None
        return found.name if found else self.part

    def where_text(self) -> str:
        image = self.image
        head = (f"{image.computer} · {format_datetime(image.created)} · {image.name}"
                if image else "")
        if not self.part:
            here = _("the image's partitions")
        else:
            here = f"{self.part_title()}  /{self.path}"
        return f"{head}\n{here}" if head else here

    def status_text(self) -> str:
        if self.error:
            return self.error
        if not self.loaded:
            return _("Opening the image (read-only)…")
        if self.copying:
            done, total = self.copied
            return _("Copying… {done} of {total}. Esc stops the copy.").format(
                done=format_size(done), total=format_size(total))
        if self.listing:
            return _("Reading the folder…")
        row = self.current()
        if row is not None and row.note:
            return _("{name} cannot be opened: {why}").format(name=row.part, why=row.note)
        if self.marked:
            size = sum(e.size for e in self.marked.values() if e.kind != "dir")
            return _("Marked: {count} ({size} in files; folders are counted when "
                     "copied).").format(count=len(self.marked), size=format_size(size))
        if not self.entries and self.part:
            return _("This folder is empty.")
        return _("Mark files and folders with Space, then choose Copy marked.")

    def row_cells(self, entry: FileEntry) -> tuple[str, str, str, str]:
        mark = MARK if entry.key in self.marked else NO_MARK
        if entry.kind == "part":
            name = entry.name if not entry.note else f"{entry.name} ({_('not opened')})"
        elif entry.kind == "dir":
            name = entry.name + "/"
        elif entry.kind == "link":
            name = entry.name + "@"
        else:
            name = entry.name
        size = format_size(entry.size) if entry.kind in ("file", "part") else ""
        when = format_datetime(entry.modified) if entry.modified else ""
        return (mark if entry.kind != "part" or not entry.note else "", name, size, when)

    def fill(self, cursor: int = 0) -> None:
        table = self.query_one("#files", DataTable)
        table.clear()
        for index, entry in enumerate(self.entries):
            table.add_row(*self.row_cells(entry), key=str(index))
        if self.entries:
            table.move_cursor(row=min(cursor, len(self.entries) - 1))
        self.show_status()

    def show_status(self) -> None:
        self.query_one("#where", Static).update(self.where_text())
        self.query_one("#status", Static).update(self.status_text())
        self.query_one("#copy", Button).disabled = not self.marked or self.copying

    def current(self) -> FileEntry | None:
        table = self.query_one("#files", DataTable)
        if not self.entries or table.cursor_row < 0:
            return None
        return self.entries[min(table.cursor_row, len(self.entries) - 1)]

    @on(DataTable.RowHighlighted, "#files")
    def highlighted(self) -> None:
        self.show_status()

    # -- walking -----------------------------------------------------------------------
    @on(DataTable.RowSelected, "#files")
    def selected(self) -> None:
        entry = self.current()
        if entry is None or self.copying:
            return
        if entry.opens:
            self.go(entry.part, entry.path)
        elif entry.kind != "part":
            self.action_mark()  # Enter on a file marks it, as Space does

    def go(self, part: str, path: str, cursor_on: str = "") -> None:
        if self.opened is None:
            return
        if not part:
            self.part, self.path = "", ""
            self.entries = list(self.opened.partitions)
            index = next((i for i, e in enumerate(self.entries) if e.part == cursor_on), 0)
            self.fill(index)
            return
        self.list_folder(part, path, cursor_on)

    @work(exclusive=True, group="browse-list")
    async def list_folder(self, part: str, path: str, cursor_on: str) -> None:
        opened = self.opened
        if opened is None:
            return
        self.listing = True
        self.show_status()
        try:
            entries = await self.wizard.in_thread(self.services.list_folder, opened, part,
                                                  path)
        except Exception as exc:  # noqa: BLE001
            self.listing = False
            self.show_status()
            self.app.notify(describe_error(exc), severity="error")
            return
        self.listing = False
        self.part, self.path, self.entries = part, path, entries
        index = next((i for i, e in enumerate(entries) if e.path == cursor_on), 0)
        self.fill(index)

    def action_up(self) -> None:
        if self.copying or not self.part:
            return
        if not self.path:
            self.go("", "", cursor_on=self.part)
            return
        parent = self.path.rsplit("/", 1)[0] if "/" in self.path else ""
        self.go(self.part, parent, cursor_on=self.path)

    def action_back(self) -> None:
        """Esc: stop a copy; else up one folder; at the top, leave the tool."""
        if self.copying:
            self.cancel.set()
            self.app.notify(_("Stopping the copy…"), timeout=5)
        elif self.part:
            self.action_up()
        else:
            super().action_back()

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        if self.copying:
            self.cancel.set()
            return
        super().action_back()

    def action_mark(self) -> None:
        entry = self.current()
        if entry is None or self.copying or (entry.kind == "part" and entry.note):
            return
        if entry.key in self.marked:
            del self.marked[entry.key]
        else:
            self.marked[entry.key] = entry
        table = self.query_one("#files", DataTable)
        row = table.cursor_row
        table.update_cell(str(row), "mark", MARK if entry.key in self.marked else NO_MARK)
        if row + 1 < len(self.entries):
            table.move_cursor(row=row + 1)
        self.show_status()

    # -- copying -----------------------------------------------------------------------
    @on(Button.Pressed, "#copy")
    def copy_pressed(self) -> None:
        self.copy_marked()

    def _progress(self, done: int, total: int) -> None:
        """From the copy's thread: only a note; the screen polls it."""
        self.copied = (done, total)

    def _show_progress(self) -> None:
        done, total = self.copied
        bar = self.query_one("#bar", ProgressBar)
        bar.update(total=max(total, 1), progress=done)
        self.show_status()

    @work(exclusive=True, group="browse-copy")
    async def copy_marked(self) -> None:
        opened = self.opened
        if opened is None or not self.marked or self.copying:
            return
        destination = await self.wizard.choose_medium(copy=True)
        if destination is None or self._closed:
            return
        self.cancel = threading.Event()
        self.copying, self.copied = True, (0, 0)
        bar = self.query_one("#bar", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.show_status()
        self._poll = self.set_interval(0.2, self._show_progress)
        marked = list(self.marked.values())
        try:
            result = await self.wizard.in_thread(self.services.copy_files, opened, marked,
                                                 destination, self._progress, self.cancel)
        except Exception as exc:  # noqa: BLE001
            title, lines = _("Nothing was copied"), [describe_error(exc)]
        else:
            title = _("Files copied") if result.ok else _("Copied, with problems")
            lines = list(result.lines)
            if result.ok:
                self.marked.clear()
        finally:
            self.copying = False
            if self._poll is not None:
                self._poll.stop()
                self._poll = None
        if self._closed:
            return
        bar.display = False
        table = self.query_one("#files", DataTable)
        self.fill(table.cursor_row)
        table.focus()  # not the button that was disabled while copying
        await self.app.push_screen_wait(TextDialog(title, lines))
        if not self._closed:
            table.focus()
