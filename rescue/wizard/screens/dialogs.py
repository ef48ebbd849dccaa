"""Modal questions: yes/no, typed confirmation, a line of input, a list, a text."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from rescue.i18n import _
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
