"""The start screen, with a clearly visible "Repair your computer"."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Center, Vertical
from textual.widgets import Button, Static

from rescue.i18n import _
from rescue.wizard.screens.base import WizardScreen


class StartScreen(WizardScreen):
    def heading(self) -> str:
        return _("Start")

    def body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static(_("Welcome to rescue."), classes="heading")
            yield Static(
                _(
                    "Restore this computer from a system image made earlier, "
                    "or make a new system image of it."
                )
            )
            with Center():
                yield Button(_("Repair your computer"), id="repair", variant="primary",
                             classes="big")
            with Center():
                yield Button(_("Back up this computer"), id="backup", classes="big")

    def on_mount(self) -> None:
        self.query_one("#repair", Button).focus()

    @on(Button.Pressed, "#repair")
    def repair(self) -> None:
        self.wizard.advance(self)

    @on(Button.Pressed, "#backup")
    def backup(self) -> None:
        self.wizard.begin("backup")
