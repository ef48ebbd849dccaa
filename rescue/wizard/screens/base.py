"""What every wizard screen shares: title line, key hints, Back on Escape."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static

from rescue.i18n import _

if TYPE_CHECKING:
    from rescue.wizard.app import RescueApp
    from rescue.wizard.model import WizardState
    from rescue.wizard.services import Services

RESTORE_STEPS = 8


class WizardScreen(Screen[None]):
    """A step of the wizard. Subclasses set STEP and implement ``body()``."""

    STEP = 0
    BACK = True  # Escape / Back returns to the previous step
    BINDINGS = [Binding("escape", "back", "Back", show=False)]

    @property
    def rapp(self) -> RescueApp:
        return cast("RescueApp", self.app)

    @property
    def state(self) -> WizardState:
        return self.rapp.state

    @property
    def services(self) -> Services:
        return self.rapp.services

    def heading(self) -> str:
        return ""

    def compose(self) -> ComposeResult:
        title = self.heading()
        if self.STEP:
            step = _("Step {n} of {total}").format(n=self.STEP, total=RESTORE_STEPS)
            title = f"{title}  ·  {step}"
        yield Static(f"rescue  ·  {title}", id="title")
        yield from self.body()
        yield Static(self.key_hints(), id="keys")

    def body(self) -> ComposeResult:
        yield from ()

    def key_hints(self) -> str:
        hints = [_("F2 Language"), _("Tab Move"), _("Enter Choose")]
        if self.BACK:
            hints.insert(1, _("Esc Back"))
        return "  ".join(hints)

    def buttons(self, *buttons: Button) -> Horizontal:
        return Horizontal(*buttons, id="buttons")

    def refill(self) -> None:
        """Put loaded data back into freshly composed widgets (after a language change)."""

    def action_back(self) -> None:
        if self.BACK and len(self.app.screen_stack) > 2:
            self.app.pop_screen()


class Dialog(ModalScreen[object]):
    """Base for the small modal questions."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def action_cancel(self) -> None:
        self.dismiss(None)
