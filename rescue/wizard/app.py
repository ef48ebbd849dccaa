"""The Textual application: holds the answers (WizardState), the services and the flow."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import WorkerFailed

from rescue import i18n
from rescue.i18n import _
from rescue.wizard import flow
from rescue.wizard.model import LogMedium, WizardState
from rescue.wizard.ports import Services, describe_error
from rescue.wizard.protocol import Wizard
from rescue.wizard.screens.base import WizardScreen
from rescue.wizard.screens.dialogs import ConfirmDialog, InputDialog, TextDialog
from rescue.wizard.screens.language import LanguageScreen
from rescue.wizard.screens.save_logs import FOLDER, SaveLogsDialog

T = TypeVar("T")


class RescueApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "rescue"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("f2", "language", "Language", show=False, priority=True),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        services: Services,
        state: WizardState | None = None,
        *,
        restart_countdown: int = 30,
        clock: Callable[[], float] = time.monotonic,
        default_backup_name: str | None = None,
        countdown_interval: float = 1.0,
    ) -> None:
        super().__init__()
        self.services = services
        self.state = state or WizardState()
        self.restart_countdown = restart_countdown
        self.countdown_interval = countdown_interval
        self.clock = clock
        self.keymap_status = ""
        self.default_backup_name = default_backup_name or (
            f"{socket.gethostname().split('.')[0]}-{datetime.now():%Y%m%d}"
        )
        i18n.set_language(self.state.language)
        i18n.set_format(self.state.region)

    def on_mount(self) -> None:
        self.push_screen(flow.FIRST.for_flow(self.state.action))
        self.call_after_refresh(self._warm_up)

    def _warm_up(self) -> None:
        """Services that are built on first use (rescue.wizard.deferred) are built now, in
        a thread, while the first screen is read: not before it is drawn."""
        warm_up = getattr(self.services, "warm_up", None)
        if not callable(warm_up):
            return

        def build() -> None:
            try:
                warm_up()
            except Exception as exc:  # noqa: BLE001 - shown; each later use says it again
                self.call_from_thread(self.notify, describe_error(exc), severity="error",
                                      timeout=30)

        threading.Thread(target=build, name="services-warm-up", daemon=True).start()

    # -- language --------------------------------------------------------------------
    async def change_language(self, lang: str, region: str) -> None:
        i18n.set_language(lang)
        i18n.set_format(region)
        self.state.language, self.state.region = lang, region
        for screen in list(self.screen_stack):
            if isinstance(screen, WizardScreen):
                await screen.recompose()
                screen.refill()

    def action_language(self) -> None:
        if isinstance(self.screen, LanguageScreen):
            return
        self.push_screen(LanguageScreen(initial=False))

    # -- flow (the order of the screens is rescue/wizard/flow.py's) ----------------------
    def advance(self, screen: Screen[Any]) -> None:
        """*screen* is done: open the screen that repeats its step, else the next step of
        the job's flow, on top of it (or instead of it, for a screen that does not stay)."""
        if not isinstance(screen, WizardScreen):
            raise TypeError(f"{type(screen).__name__} is not a step of the wizard")
        following = screen.repeat()
        if following is None:
            step = flow.next_step(self.state.action, type(screen))
            if step is None:
                raise LookupError(f"no step follows {type(screen).__name__} "
                                  f"in the {self.state.action or flow.DEFAULT} flow")
            following = step.for_flow(self.state.action or flow.DEFAULT)
        if screen.STAYS:
            self.push_screen(following)
        else:
            self.switch_screen(following)

    def begin(self, action: str) -> None:
        self.state.action = action
        self.push_screen(flow.entry_step(action).for_flow(action))

    def start_over(self) -> None:
        self.state.prepared = self.state.outcome = None
        while len(self.screen_stack) > 2 and not isinstance(self.screen, flow.HOME):
            self.pop_screen()

    def step_of(self, screen: Screen[Any]) -> tuple[int, int] | None:
        return flow.step_number(self.state.action, type(screen))

    # -- actions on the machine (through services, in threads) -----------------------
    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread; its exception is raised here (the caller
        shows the sentence) instead of ending the app."""
        worker = self.run_worker(lambda: fn(*args), thread=True, group="service",
                                 exit_on_error=False)
        try:
            return await worker.wait()
        except WorkerFailed as failed:
            raise failed.error from None

    @work(group="power")
    async def power(self, action: str, confirm: bool = True) -> None:
        question = (_("Restart the computer now?") if action == "reboot"
                    else _("Shut down the computer now?"))
        label = _("Restart") if action == "reboot" else _("Shut down")
        if confirm and not await self.push_screen_wait(
            ConfirmDialog(question, label, _("Cancel"))
        ):
            return
        try:
            await self.in_thread(self.services.power, action)
        except Exception as exc:  # noqa: BLE001
            self.notify(describe_error(exc), severity="error")
            return
        self.notify(_("Restarting…") if action == "reboot" else _("Shutting down…"),
                    timeout=30)

    def open_shell(self) -> None:
        if self.is_headless:  # tests: nothing to suspend
            self.services.shell()
            return
        try:
            with self.suspend():
                print(_("Type 'exit' to return to the wizard."), flush=True)
                self.services.shell()
        except Exception as exc:  # noqa: BLE001 - e.g. SuspendNotSupported in tests
            self.notify(describe_error(exc), severity="warning")

    async def choose_medium(self, copy: bool = False) -> LogMedium | str | None:
        """A writable filesystem on an attached disk (a USB stick) or a typed folder, for
        the logs or (*copy*) for files copied out of an image; None: cancelled."""
        # Never offer a restore target: its partitions are being (or were) rewritten.
        exclude = [disk.path for disk in self.state.targets()]
        destination = await self.push_screen_wait(SaveLogsDialog(exclude, copy))
        if destination == FOLDER:
            question = (_("Copy the files to which folder? Type the folder of a mounted "
                          "disk.") if copy else
                        _("Save the logs in which folder? Type the folder of a mounted "
                          "disk."))
            destination = await self.push_screen_wait(
                InputDialog(question, placeholder="/media/usb"))
        return destination if isinstance(destination, str | LogMedium) else None

    @work(group="logs")
    async def save_logs(self) -> None:
        """Save logs: choose a USB stick (or type a folder), then the service mounts it,
        writes the file and unmounts it again, in a worker thread."""
        destination = await self.choose_medium()
        if destination is None:
            return
        self.notify(_("Saving the logs…"), timeout=5)
        try:
            sentence = await self.in_thread(self.services.save_logs, destination)
        except Exception as exc:  # noqa: BLE001
            await self.push_screen_wait(
                TextDialog(_("The logs were not saved"), [describe_error(exc)]))
            return
        await self.push_screen_wait(TextDialog(_("Logs saved"), [sentence]))


if TYPE_CHECKING:  # mypy: RescueApp is the Wizard the screens are written against
    _IMPLEMENTS: type[Wizard] = RescueApp
