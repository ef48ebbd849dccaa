"""The first step: language, time and currency format, keyboard layout."""

from __future__ import annotations

from datetime import datetime

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Button, Label, Select, Static

from rescue import i18n
from rescue.i18n import _
from rescue.wizard.ports import describe_error
from rescue.wizard.screens.base import WizardScreen


class LanguageScreen(WizardScreen):
    """The first step (initial), or over any screen with F2 (OK closes it again)."""

    def __init__(self, initial: bool = True) -> None:
        super().__init__()
        self.initial = initial
        self.BACK = not initial

    def heading(self) -> str:
        return _("Language and keyboard")

    def body(self) -> ComposeResult:
        st = self.state
        with Vertical(id="body"):
            # Always in English first: a technician who reads none of the others finds it.
            yield Static("Choose your language", classes="heading", id="choose-language")
            if st.language != "en":
                yield Static(_("Choose your language"), classes="subtle")
            yield Label(_("Language to use"))
            yield Select(
                [(name, code) for code, name in i18n.LANGUAGES.items()],
                value=st.language,
                allow_blank=False,
                id="language",
            )
            yield Label(_("Time and currency format"))
            yield Select(
                [(f.name, code) for code, f in i18n.FORMATS.items()],
                value=st.region,
                allow_blank=False,
                id="region",
            )
            yield Label(_("Keyboard or input method"))
            yield Select(
                [(f"{name} ({code})", code) for code, name in i18n.KEYMAPS.items()],
                value=st.keymap,
                allow_blank=False,
                id="keymap",
            )
            yield Static(self.example(), id="example", classes="subtle")
        yield self.buttons(
            Button(_("Next"), id="next", variant="primary")
            if self.initial
            else Button(_("OK"), id="next", variant="primary"),
        )

    def example(self) -> str:
        sample = datetime(2026, 10, 31, 14, 5)
        return _("Example: {date}, {size}").format(
            date=i18n.format_datetime(sample), size=i18n.format_size(1234567890)
        )

    def on_mount(self) -> None:
        self.query_one("#language", Select).focus()

    @on(Select.Changed, "#language")
    async def language_changed(self, event: Select.Changed) -> None:
        lang = str(event.value)
        if lang == self.state.language:
            return
        self.state.region = i18n.DEFAULT_FORMAT.get(lang, self.state.region)
        self.state.keymap = i18n.DEFAULT_KEYMAP.get(lang, self.state.keymap)
        await self.wizard.change_language(lang, self.state.region)
        self.call_after_refresh(self.refocus, "#language")

    @on(Select.Changed, "#region")
    async def region_changed(self, event: Select.Changed) -> None:
        if str(event.value) != self.state.region:
            await self.wizard.change_language(self.state.language, str(event.value))
            self.call_after_refresh(self.refocus, "#region")

    def refocus(self, selector: str) -> None:
        # After a recompose the new widgets may still be mounting; focus the one that
        # replaced the changed Select once it is there, never fail if the screen went away.
        for widget in self.query(selector):
            widget.focus()

    @on(Select.Changed, "#keymap")
    def keymap_changed(self, event: Select.Changed) -> None:
        self.state.keymap = str(event.value)

    @on(Button.Pressed, "#next")
    def next(self) -> None:
        self.apply_keymap(self.state.keymap)
        if self.initial:
            self.wizard.advance(self)
        else:
            self.app.pop_screen()

    def apply_keymap(self, keymap: str) -> None:
        # The app's worker, not this screen's: the screen closes right away, and a
        # closing screen's workers are cancelled (the keymap would not be loaded).
        app, wizard, services = self.app, self.wizard, self.services

        def load() -> None:
            try:
                wizard.keymap_status = services.apply_keymap(keymap)
            except Exception as exc:  # noqa: BLE001 - shown, never fatal
                app.call_from_thread(app.notify, describe_error(exc), severity="warning")

        app.run_worker(load, thread=True, group="keymap", exit_on_error=False)
