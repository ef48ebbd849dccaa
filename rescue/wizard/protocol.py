"""What a screen may ask of the wizard application: the screens' only view of it.

The screens (``rescue/wizard/screens/``) import this module, never ``rescue.wizard.app``
nor ``rescue.wizard.flow``, and never each other (except the shared ``base`` and
``dialogs``): the order of the screens is data in ``rescue/wizard/flow.py``, and a screen
that is done puts its answers in ``WizardState`` and calls ``self.wizard.advance(self)``.
``RescueApp`` implements this protocol (checked by mypy in ``rescue/wizard/app.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from textual.screen import Screen

from rescue.wizard.model import LogMedium, WizardState
from rescue.wizard.ports import Services

T = TypeVar("T")


class Wizard(Protocol):
    state: WizardState  # every answer given so far
    services: Services  # the only door to the machine
    clock: Callable[[], float]
    restart_countdown: int  # seconds; 0: no automatic restart
    countdown_interval: float
    default_backup_name: str
    keymap_status: str

    # -- the flow (the order is rescue/wizard/flow.py's) ---------------------------------
    def advance(self, screen: Screen[Any]) -> None:
        """*screen* is done (its answers are in the state): open the next step."""

    def begin(self, action: str) -> None:
        """The job is chosen ("restore" / "backup"): open the first step of its own."""

    def start_over(self) -> None:
        """Back to the start screen, forgetting the finished job."""

    def step_of(self, screen: Screen[Any]) -> tuple[int, int] | None:
        """(number, total) of *screen*'s step ("Step 4 of 8"), None for a screen outside
        the flow."""

    # -- everything else a screen asks for -----------------------------------------------
    async def change_language(self, lang: str, region: str) -> None:
        """Switch language and formats, re-composing every screen on the stack."""

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread; its exception is raised in the caller."""

    def power(self, action: str, confirm: bool = True) -> object:
        """Restart ("reboot") or shut down ("poweroff"), asking first when *confirm*."""

    def open_shell(self) -> None:
        """A shell on the console; the wizard comes back when it exits."""

    def save_logs(self) -> object:
        """Save logs: choose a USB stick (or a folder), write, say the result."""

    async def choose_medium(self, copy: bool = False) -> LogMedium | str | None:
        """The Save logs choice: a writable filesystem (a USB stick) or a typed folder;
        *copy*: for files copied out of an image. None when cancelled."""
