"""What every wizard screen shares: title line, key hints, Back on Escape.

Screens know the application only through the ``Wizard`` protocol (``self.wizard``): they
never import ``rescue.wizard.app``, ``rescue.wizard.flow`` or another screen. Which screen
follows which is ``rescue/wizard/flow.py``'s table; a screen that is done puts its answers
in ``self.state`` and calls ``self.wizard.advance(self)``."""

from __future__ import annotations

from typing import cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static

from rescue.i18n import _
from rescue.wizard.model import WizardState
from rescue.wizard.ports import Services
from rescue.wizard.protocol import Wizard


class WizardScreen(Screen[None]):
    """A step of the wizard. Subclasses implement ``body()``; the step number in the
    title line is the screen's place in the flow table (rescue/wizard/flow.py)."""

    BACK = True  # Escape / Back returns to the previous step
    STAYS = True  # stays under the next step; False: the next step replaces it
    BINDINGS = [Binding("escape", "back", "Back", show=False)]

    @classmethod
    def for_flow(cls, kind: str) -> WizardScreen:
        """The screen as a step of the *kind* flow ("restore" / "backup"); screens that
        differ between the two take *kind*."""
        return cls()

    def repeat(self) -> WizardScreen | None:
        """Another screen of this same step to show before the next step (the target
        screen: one per disk of the image), or None."""
        return None

    @property
    def wizard(self) -> Wizard:
        return cast(Wizard, self.app)

    @property
    def state(self) -> WizardState:
        return self.wizard.state

    @property
    def services(self) -> Services:
        return self.wizard.services

    def heading(self) -> str:
        return ""

    def compose(self) -> ComposeResult:
        title = self.heading()
        number = self.wizard.step_of(self)
        if number is not None:
            step = _("Step {n} of {total}").format(n=number[0], total=number[1])
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
