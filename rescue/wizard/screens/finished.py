"""Finished: the result, then restart (with a visible countdown), shut down or a shell."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.timer import Timer
from textual.widgets import Button, Static

from rescue.i18n import _
from rescue.wizard.model import Outcome
from rescue.wizard.screens.base import WizardScreen


class FinishedScreen(WizardScreen):
    BACK = False
    BINDINGS = [Binding("escape", "stop_countdown", "Stop", show=False)]

    @classmethod
    def for_flow(cls, kind: str) -> FinishedScreen:
        return cls(kind)

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.remaining = 0
        self.timer: Timer | None = None

    @property
    def outcome(self) -> Outcome:
        return self.state.outcome or Outcome(ok=False, message="")

    def heading(self) -> str:
        return _("Finished")

    def key_hints(self) -> str:
        hints = [_("F2 Language"), _("Tab Move"), _("Enter Choose")]
        if self.timer is not None or self.counting():
            hints.append(_("Esc Stop the countdown"))
        return "  ".join(hints)

    def counting(self) -> bool:
        return self.kind == "restore" and self.outcome.ok and self.wizard.restart_countdown > 0

    def result_text(self) -> str:
        o = self.outcome
        if o.ok and self.kind == "restore":
            lines = ["[b green]" + _("The system image was restored.") + "[/]"]
            if o.verified is True:
                lines.append(_("Verification: every restored byte matches the image."))
            elif o.verified is False:
                lines.append("[b red]" + _("Verification failed.") + "[/]")
            else:
                lines.append(_("Verification: not performed."))
            lines += ["[b yellow]" + _("Warning:") + "[/] " + escape(w) for w in o.warnings]
            lines.append(_("Remove the rescue USB stick, then restart into the restored "
                           "system."))
        elif o.ok:
            lines = ["[b green]" + _("The backup is complete.") + "[/]"]
            if o.image_id:
                lines.append(_("Image {id} was saved in {where}.").format(
                    id=o.image_id, where=self.state.destination))
        elif o.cancelled:
            lines = ["[b yellow]" + (_("The restore was cancelled.") if self.kind == "restore"
                                     else _("The backup was cancelled.")) + "[/]"]
            if self.kind == "restore":
                lines.append(_("The target disk is incomplete: it will not start until a "
                               "restore finishes. Run the restore again."))
            else:
                lines.append(_("No new image was saved; earlier images are unchanged."))
        else:
            lines = ["[b red]" + (_("The restore failed.") if self.kind == "restore"
                                  else _("The backup failed.")) + "[/]"]
            lines.append(_("Cause: {cause}").format(cause=o.message))
            lines.append(_("Save the logs to a USB stick and send them to support."))
        lines += o.details
        return "\n".join(lines)

    def countdown_text(self) -> str:
        if self.timer is None:
            return ""
        return _("Restarting in {n} seconds…").format(n=self.remaining)

    def body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static(self.result_text(), id="result")
            yield Static(self.countdown_text(), id="countdown", classes="heading")
        # Two rows when there are more than three buttons: 80 columns hold three
        # long (German, French) labels, not five.
        extra = []
        if not self.outcome.ok:
            extra.append(Button(_("Save logs"), id="logs", variant="warning"))
        if self.kind == "backup" or not self.outcome.ok:
            extra.append(Button(_("Start over"), id="again"))
        main = Horizontal(Button(_("Restart now"), id="reboot", variant="primary"),
                          Button(_("Shut down"), id="poweroff"),
                          Button(_("Open a shell"), id="shell"), classes="button-row")
        rows = [Horizontal(*extra, classes="button-row"), main] if extra else [main]
        yield Vertical(*rows, id="buttons", classes=f"rows-{len(rows)}")

    def on_mount(self) -> None:
        if self.counting():
            self.remaining = self.wizard.restart_countdown
            self.timer = self.set_interval(self.wizard.countdown_interval, self.tick)
        self.refill()
        first = "#logs" if not self.outcome.ok else "#reboot"
        for button in self.query(first):  # (none when the app is closing meanwhile)
            button.focus()

    def refill(self) -> None:
        for countdown in self.query("#countdown").results(Static):
            countdown.update(self.countdown_text())

    def tick(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            self.action_stop_countdown()
            self.wizard.power("reboot", confirm=False)  # the countdown was the warning
            return
        self.refill()

    def action_stop_countdown(self) -> None:
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
            self.refill()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.action_stop_countdown()
        choice = event.button.id
        if choice in ("reboot", "poweroff"):
            self.wizard.power(choice)
        elif choice == "shell":
            self.wizard.open_shell()
        elif choice == "logs":
            self.wizard.save_logs()
        elif choice == "again":
            self.wizard.start_over()
