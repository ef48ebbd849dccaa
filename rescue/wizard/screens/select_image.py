"""Select a system image: the latest image (recommended) or any image on any attached medium."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Button, DataTable, RadioSet, Static

from rescue.i18n import _, format_datetime, format_size
from rescue.wizard.mediawatch import MediaWatch
from rescue.wizard.model import ImageEntry
from rescue.wizard.ports import describe_error, wifi_services
from rescue.wizard.screens.base import WizardScreen
from rescue.wizard.screens.dialogs import AddLocationDialog, InputDialog
from rescue.wizard.texts import describe_location
from rescue.wizard.widgets import Radio


class SelectImageScreen(WizardScreen):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[ImageEntry] = []
        self.error = ""
        self.loaded = False
        self.wifi_interfaces: list[str] = []  # "Join a Wi-Fi network" when any
        self.media = MediaWatch(self, lambda changed: self.services.watch_media(changed),
                                self.load_images)

    def heading(self) -> str:
        return _("Select a system image")

    def body(self) -> ComposeResult:
        st = self.state
        with Vertical(id="body"):
            with RadioSet(id="mode"):
                yield Radio(
                    _("Use the latest available system image (recommended)"),
                    value=st.use_latest,
                    id="latest",
                )
                yield Radio(_("Select a system image"), value=not st.use_latest, id="pick")
            yield Static(self.latest_text(), id="latest-info")
            table: DataTable[str] = DataTable(id="images", cursor_type="row")
            table.add_columns(_("Computer"), _("Date and time"), _("Name"), _("Size"),
                              _("Location"))
            yield table
        yield self.buttons(
            Button(_("Back"), id="back"),
            Button(_("Add a location"), id="add"),
            Button(_("Next"), id="next", variant="primary", disabled=not self.images),
        )

    def latest(self) -> ImageEntry | None:
        return max(self.images, key=lambda i: i.created) if self.images else None

    def latest_text(self) -> str:
        if self.error:
            return self.error
        if not self.loaded:
            return _("Searching for system images on every attached disk…")
        image = self.latest()
        if image is None:
            return _(
                "No system image was found. Plug in the USB stick or disk that holds "
                "your images, or add a location."
            )
        return "\n".join(
            (
                _("Location: {where}").format(where=describe_location(image)),
                _("Date and time: {when}").format(when=format_datetime(image.created)),
                _("Computer: {name}").format(name=image.computer),
            ) + ((_("Signature: {verdict}").format(verdict=image.signature),)
                 if image.signature else ())
        )

    def on_mount(self) -> None:
        self.fill()
        self.query_one("#mode", RadioSet).focus()
        self.load_images()
        self.media.start()

    def refill(self) -> None:
        self.fill()

    def on_screen_resume(self) -> None:
        # not on screen when media changed (a later step, maybe a restore reading from
        # the catalog's mount): reloaded now, never underneath a restore
        self.media.resume()

    def on_unmount(self) -> None:
        self.media.stop()

    @work(thread=True, exclusive=True, group="images")
    def load_images(self) -> None:
        try:
            images = self.services.find_images(list(self.state.locations))
            error = ""
            problems = self.services.search_problems()
        except Exception as exc:  # noqa: BLE001
            images, error, problems = [], describe_error(exc), []
        self.wifi_interfaces = self.probe_wifi()
        self.app.call_from_thread(self.loaded_images, images, error)
        for problem in problems:
            self.app.call_from_thread(self.app.notify, problem, severity="warning",
                                      timeout=15)

    def probe_wifi(self) -> list[str]:
        """The machine's wireless interfaces, when the services can reach a radio."""
        try:
            wifi = wifi_services(self.services)
            return wifi.wifi_interfaces() if wifi is not None else []
        except Exception:  # noqa: BLE001 - no Wi-Fi offered, the rest works on
            return []

    def loaded_images(self, images: list[ImageEntry], error: str) -> None:
        self.images, self.error, self.loaded = images, error, True
        self.fill()

    def fill(self) -> None:
        table = self.query_one("#images", DataTable)
        table.clear()
        last = None
        for image in self.images:
            computer = image.computer if image.computer != last else ""
            last = image.computer
            table.add_row(
                computer,
                format_datetime(image.created),
                image.name,
                format_size(image.data_bytes),
                describe_location(image),
                key=f"{image.location}\0{image.id}",
            )
        selected = self.state.image
        if selected is not None and not self.state.use_latest:
            for index, image in enumerate(self.images):
                if (image.location, image.id) == (selected.location, selected.id):
                    table.move_cursor(row=index)
        self.query_one("#latest-info", Static).update(self.latest_text())
        self.query_one("#next", Button).disabled = not self.images

    @on(RadioSet.Changed, "#mode")
    def mode_changed(self, event: RadioSet.Changed) -> None:
        self.state.use_latest = event.pressed.id == "latest"

    @on(DataTable.RowSelected, "#images")
    def row_selected(self) -> None:
        self.query_one("#pick", Radio).value = True
        self.state.use_latest = False
        self.next()

    def chosen(self) -> ImageEntry | None:
        if self.state.use_latest:
            return self.latest()
        table = self.query_one("#images", DataTable)
        if not self.images:
            return None
        return self.images[min(table.cursor_row, len(self.images) - 1)]

    @on(Button.Pressed, "#next")
    def next(self) -> None:
        image = self.chosen()
        if image is None:
            return
        self.state.image = image
        self.wizard.advance(self)

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.action_back()

    @on(Button.Pressed, "#add")
    def add(self) -> None:
        def added(location: object) -> None:
            if isinstance(location, str) and location not in self.state.locations:
                self.state.locations.append(location)
                self.loaded = False
                self.fill()
                self.load_images()

        message = _("Add a location: a folder (for example /mnt/backups) or a web address "
                    "(for example http://server/backups/).")
        placeholder = "/mnt/backups  http://server/backups/"
        wifi = wifi_services(self.services) if self.wifi_interfaces else None
        if wifi is not None:
            # a machine with a Wi-Fi adapter: the location may need a Wi-Fi network first
            self.app.push_screen(AddLocationDialog(message, placeholder, wifi,
                                                   self.wifi_interfaces[0]), added)
            return
        self.app.push_screen(InputDialog(message, placeholder=placeholder), added)
