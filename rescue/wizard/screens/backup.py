"""Back up this computer: source disk(s), destination repository and name.

Enter backs up the highlighted disk; Space marks several disks for one image (a machine
with a system disk and data disks): the first one marked is the system disk."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Button, DataTable, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from rescue.i18n import _, format_size
from rescue.wizard.model import DiskEntry
from rescue.wizard.ports import describe_error
from rescue.wizard.screens.base import WizardScreen


class BackupSourceScreen(WizardScreen):
    BINDINGS = [Binding("space", "mark", "Mark", show=False)]

    def __init__(self) -> None:
        super().__init__()
        self.disks: list[DiskEntry] = []
        self.marked: list[str] = []  # paths, in the order marked (the first: system disk)
        self.message = _("Looking for disks…")

    def heading(self) -> str:
        return _("Disk to back up")

    def body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static(_("Choose the disk to back up (Space marks several disks for one "
                           "image; the first marked is the system disk)"), classes="heading")
            table: DataTable[str] = DataTable(id="sources", cursor_type="row")
            table.add_columns(_("Disk"), _("Model"), _("Serial"), _("Size"), _("Partitions"))
            yield table
            yield Static(self.message, id="message")
        yield self.buttons(Button(_("Back"), id="back"),
                           Button(_("Next"), id="next", variant="primary", disabled=True))

    def on_mount(self) -> None:
        self.load()
        self.query_one("#sources", DataTable).focus()

    def refill(self) -> None:
        self.fill()

    @work(thread=True, exclusive=True, group="sources")
    def load(self) -> None:
        try:
            disks = [d for d in self.services.list_disks(None, "source")]
            message = "" if disks else _("No disk to back up was found.")
        except Exception as exc:  # noqa: BLE001
            disks, message = [], describe_error(exc)
        self.app.call_from_thread(self.loaded, disks, message)

    def loaded(self, disks: list[DiskEntry], message: str) -> None:
        self.disks, self.message = disks, message
        self.fill()

    def fill(self) -> None:
        table = self.query_one("#sources", DataTable)
        table.clear()
        self.marked = [p for p in self.marked if any(d.path == p for d in self.disks)]
        for d in self.disks:
            mark = f"{self.marked.index(d.path) + 1}✓" if d.path in self.marked else "  "
            table.add_row(f"{mark} {d.name}", d.model or "-", d.serial or "-",
                          format_size(d.size_bytes), ", ".join(d.partitions) or "-", key=d.path)
        message = self.message
        if self.marked:
            message = _("One image of {count} disk(s): {disks}").format(
                count=len(self.marked), disks=", ".join(self.marked))
        self.query_one("#message", Static).update(message)
        self.query_one("#next", Button).disabled = not self.disks

    def action_mark(self) -> None:
        if not self.disks:
            return
        table = self.query_one("#sources", DataTable)
        row = min(table.cursor_row, len(self.disks) - 1)
        path = self.disks[row].path
        if path in self.marked:
            self.marked.remove(path)
        else:
            self.marked.append(path)
        self.fill()
        table.move_cursor(row=row)

    @on(DataTable.RowSelected, "#sources")
    @on(Button.Pressed, "#next")
    def next(self) -> None:
        if not self.disks:
            return
        if self.marked:
            by_path = {d.path: d for d in self.disks}
            self.state.sources = [by_path[p] for p in self.marked]
        else:
            row = self.query_one("#sources", DataTable).cursor_row
            self.state.sources = [self.disks[min(row, len(self.disks) - 1)]]
        self.wizard.advance(self)

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.action_back()


class BackupDestinationScreen(WizardScreen):
    def __init__(self) -> None:
        super().__init__()
        self.media: list[tuple[str, str]] = []

    def heading(self) -> str:
        return _("Where to save the image")

    def body(self) -> ComposeResult:
        st = self.state
        with Vertical(id="body"):
            yield Static(_("Repositories on attached disks"), classes="heading")
            yield OptionList(id="media")
            yield Label(_("Repository folder or network share"))
            yield Input(st.destination, placeholder="/mnt/usb/rescue  smb://nas/backups",
                        id="destination")
            yield Label(_("Name of the new image"))
            yield Input(st.backup_name or self.default_name(), id="name")
        yield self.buttons(Button(_("Back"), id="back"),
                           Button(_("Next"), id="next", variant="primary"))

    def default_name(self) -> str:
        return self.wizard.default_backup_name

    def on_mount(self) -> None:
        if not self.state.destination and self.state.locations:
            self.query_one("#destination", Input).value = self.state.locations[0]
        self.load()
        self.query_one("#destination", Input).focus()

    @work(thread=True, exclusive=True, group="media")
    def load(self) -> None:
        try:
            media = self.services.backup_destinations()
        except Exception:  # noqa: BLE001 - typing a path still works
            media = []
        self.app.call_from_thread(self.loaded, media)

    def loaded(self, media: list[tuple[str, str]]) -> None:
        self.media = media
        self.refill()

    def refill(self) -> None:
        options = self.query_one("#media", OptionList)
        options.clear_options()
        if self.media:
            options.add_options(
                [Option(f"{path}  {desc}", id=path) for path, desc in self.media])
            options.highlighted = 0
        else:
            options.add_option(Option(_("None found: type a folder below."), disabled=True))

    @on(OptionList.OptionSelected, "#media")
    def medium(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.query_one("#destination", Input).value = event.option.id

    @on(Input.Submitted)
    @on(Button.Pressed, "#next")
    def next(self) -> None:
        destination = self.query_one("#destination", Input).value.strip()
        name = self.query_one("#name", Input).value.strip()
        if not destination:
            self.app.notify(_("Type the folder or share to save the image in."), severity="error")
            self.query_one("#destination", Input).focus()
            return
        self.state.destination, self.state.backup_name = destination, name
        self.wizard.advance(self)

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.action_back()
