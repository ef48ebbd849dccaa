"""Modal questions: yes/no, typed confirmation, a line of input, a list, a text."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from rescue.i18n import _
from rescue.wizard.ports import WifiNetwork, WifiServices, describe_error
from rescue.wizard.screens.base import Dialog


class ConfirmDialog(Dialog):
    def __init__(self, message: str, yes: str, no: str) -> None:
        super().__init__()
        self.message, self.yes, self.no = message, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.message, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.no, id="no", variant="primary")
                yield Button(self.yes, id="yes", variant="error")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TypedConfirmDialog(Dialog):
    """Asks the technician to type *word* (the target disk's name) before erasing it."""

    def __init__(self, message: str, word: str) -> None:
        super().__init__()
        self.message, self.word = message, word

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.message, classes="dialog-text")
            yield Static(
                _("Type {word} and press Enter to erase it and restore.").format(word=self.word),
                id="typed-prompt",
            )
            yield Input(id="typed", placeholder=self.word)
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("Cancel"), id="no", variant="primary")
                yield Button(_("Erase and restore"), id="yes", variant="error", disabled=True)

    @on(Input.Changed, "#typed")
    def typed(self, event: Input.Changed) -> None:
        self.query_one("#yes", Button).disabled = event.value.strip() != self.word

    @on(Input.Submitted, "#typed")
    def submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.word:
            self.dismiss(True)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class InputDialog(Dialog):
    def __init__(self, message: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.message, self.value, self.placeholder = message, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.message, classes="dialog-text")
            yield Input(self.value, placeholder=self.placeholder, id="answer")
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("Cancel"), id="no")
                yield Button(_("OK"), id="yes", variant="primary")

    def _answer(self) -> str | None:
        value = self.query_one("#answer", Input).value.strip()
        return value or None

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.dismiss(self._answer())

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self._answer() if event.button.id == "yes" else None)


class ChoiceDialog(Dialog):
    def __init__(self, message: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.message, self.choices = message, choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.message, classes="dialog-text")
            yield OptionList(*[Option(label, id=key) for key, label in self.choices], id="choices")
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("Cancel"), id="no")

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    @on(Button.Pressed)
    def pressed(self) -> None:
        self.dismiss(None)


class TextDialog(Dialog):
    def __init__(self, title: str, lines: list[str]) -> None:
        super().__init__()
        self.title_text, self.lines = title, lines

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield Static("\n".join(self.lines), classes="dialog-text", id="text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("OK"), id="yes", variant="primary")

    @on(Button.Pressed)
    def pressed(self) -> None:
        self.dismiss(None)


class AddLocationDialog(Dialog):
    """"Add a location" on a machine with a Wi-Fi adapter: the location typed as in
    :class:`InputDialog`, and a button that joins a Wi-Fi network first
    (:class:`WifiDialog`). The adapter's state is read (and said) when it opens."""

    def __init__(self, message: str, placeholder: str, wifi: WifiServices,
                 interface: str) -> None:
        super().__init__()
        self.message, self.placeholder = message, placeholder
        self.wifi, self.interface = wifi, interface

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.message, classes="dialog-text")
            yield Input(placeholder=self.placeholder, id="answer")
            yield Static("", id="wifi-state")
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("Cancel"), id="no")
                yield Button(_("Join a Wi-Fi network"), id="wifi")
                yield Button(_("OK"), id="yes", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#answer", Input).focus()

        def status() -> None:
            try:
                text = self.wifi.wifi_status(self.interface).sentence()
            except Exception as exc:  # noqa: BLE001
                text = describe_error(exc)
            self.app.call_from_thread(self.said, text)

        self.run_worker(status, thread=True, group="wifi", description="Wi-Fi status")

    def said(self, text: str) -> None:
        if self.is_attached:
            self.query_one("#wifi-state", Static).update(text)

    def _answer(self) -> str | None:
        value = self.query_one("#answer", Input).value.strip()
        return value or None

    @on(Input.Submitted, "#answer")
    def submitted(self) -> None:
        self.dismiss(self._answer())

    @on(Button.Pressed, "#yes")
    def ok_pressed(self) -> None:
        self.dismiss(self._answer())

    @on(Button.Pressed, "#no")
    def cancel_pressed(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#wifi")
    def join_wifi(self) -> None:
        def joined(sentence: object) -> None:
            if isinstance(sentence, str):
                self.query_one("#wifi-state", Static).update(sentence)
            self.query_one("#answer", Input).focus()

        self.app.push_screen(WifiDialog(self.wifi, self.interface), joined)


class WifiDialog(Dialog):
    """Join a Wi-Fi network: the networks in reach, strongest first (Refresh scans again),
    the passphrase typed in a password field, the wait said, the result in a sentence.
    Talks to the machine only through *wifi*, in worker threads; the passphrase is read
    out of the field (and the field emptied) as the join starts, and passed on in a
    closure, never as a worker argument (those are shown in Textual's debug text).
    Dismissed with the sentence of a successful join, or None."""

    DEFAULT_CSS = """
    WifiDialog .dialog { max-height: 24; }
    WifiDialog #networks { height: auto; max-height: 7; }
    WifiDialog #wifi-said { height: auto; }
    """

    def __init__(self, wifi: WifiServices, interface: str) -> None:
        super().__init__()
        self.wifi, self.interface = wifi, interface
        self.networks: list[WifiNetwork] = []
        self.joined: str | None = None
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(_("Join a Wi-Fi network ({interface}): choose the network, type its "
                           "passphrase and press Join.").format(interface=self.interface),
                         classes="dialog-text")
            yield OptionList(id="networks")
            yield Input(placeholder=_("Passphrase"), password=True, id="passphrase")
            yield Static("", id="wifi-said")
            with Horizontal(classes="dialog-buttons"):
                yield Button(_("Close"), id="no")
                yield Button(_("Refresh"), id="refresh")
                yield Button(_("Join"), id="join", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#networks", OptionList).focus()
        self.scan()

    def say(self, text: str) -> None:
        self.query_one("#wifi-said", Static).update(text)

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        for selector in ("#refresh", "#passphrase"):
            self.query_one(selector).disabled = busy
        self.query_one("#join", Button).disabled = busy or self.chosen() is None

    def scan(self) -> None:
        if self.busy:
            return
        self.set_busy(True)
        self.say(_("Searching for Wi-Fi networks…"))

        def work() -> None:
            try:
                networks, error = self.wifi.wifi_scan(self.interface), ""
            except Exception as exc:  # noqa: BLE001
                networks, error = [], describe_error(exc)
            self.app.call_from_thread(self.scanned, networks, error)

        self.run_worker(work, thread=True, group="wifi", description="Wi-Fi scan")

    def scanned(self, networks: list[WifiNetwork], error: str) -> None:
        if not self.is_attached:  # closed while the scan ran
            return
        self.networks = networks
        options = self.query_one("#networks", OptionList)
        options.clear_options()
        for index, net in enumerate(networks):
            label = f"{net.name}  ·  {net.security}  ·  {net.signal} dBm"
            if not net.supported:
                label += "  ·  " + _("not supported")
            options.add_option(Option(label, id=str(index), disabled=not net.supported))
        if networks:
            options.highlighted = next(
                (i for i, n in enumerate(networks) if n.supported), None)
        self.set_busy(False)
        self.say(error or (_("{count} network(s) found.").format(count=len(networks))
                           if networks else _("No Wi-Fi network is in reach. Refresh to "
                                              "search again.")))

    def chosen(self) -> WifiNetwork | None:
        index = self.query_one("#networks", OptionList).highlighted
        if index is None or not 0 <= index < len(self.networks):
            return None
        net = self.networks[index]
        return net if net.supported else None

    @on(OptionList.OptionHighlighted, "#networks")
    def highlighted(self) -> None:
        net = self.chosen()
        self.query_one("#join", Button).disabled = self.busy or net is None
        self.query_one("#passphrase", Input).disabled = self.busy or (
            net is not None and not net.needs_passphrase)

    @on(OptionList.OptionSelected, "#networks")
    def selected(self) -> None:
        net = self.chosen()
        if net is not None and net.needs_passphrase:
            self.query_one("#passphrase", Input).focus()
        elif net is not None:
            self.join()

    @on(Input.Submitted, "#passphrase")
    @on(Button.Pressed, "#join")
    def join(self) -> None:
        net = self.chosen()
        if net is None or self.busy:
            return
        field = self.query_one("#passphrase", Input)
        passphrase = field.value if net.needs_passphrase else None
        if net.needs_passphrase and not passphrase:
            self.say(_("Type the passphrase of {ssid} first.").format(ssid=net.name))
            field.focus()
            return
        field.value = ""
        self.set_busy(True)
        self.say(_("Joining {ssid}… this can take up to a minute.").format(ssid=net.name))

        def work() -> None:
            try:
                text, ok = self.wifi.wifi_join(self.interface, net.ssid, passphrase).message, True
            except Exception as exc:  # noqa: BLE001
                text, ok = describe_error(exc), False
            self.app.call_from_thread(self.join_done, text, ok)

        self.run_worker(work, thread=True, group="wifi", description="Wi-Fi join")

    def join_done(self, text: str, ok: bool) -> None:
        if not self.is_attached:  # closed while joining: the join goes on, unseen
            return
        self.set_busy(False)
        self.say(text)
        if ok:
            self.joined = text
            self.query_one("#no", Button).focus()
        else:
            self.query_one("#passphrase", Input).focus()

    @on(Button.Pressed, "#refresh")
    def refresh_pressed(self) -> None:
        self.scan()

    @on(Button.Pressed, "#no")
    def close_pressed(self) -> None:
        self.dismiss(self.joined)

    def action_cancel(self) -> None:
        self.dismiss(self.joined)
