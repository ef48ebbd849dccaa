"""The order of the wizard's screens, as data. Adding a step is one line here.

Each flow is the list of its screens, in order; a screen's step number ("Step 4 of 8" in
its title line) is its place in the list. Screens never name the screen that follows:
they put their answers in ``WizardState`` and call ``self.wizard.advance(self)``, and the
app (``rescue.wizard.app``) opens the next screen of the job being done
(``WizardState.action``). Only this module and the app import the screen modules.

- ``advance`` from a screen opens the next one of its flow; a screen may first repeat
  itself (``WizardScreen.repeat``: the target screen once per disk of the image), and a
  screen with ``STAYS = False`` (progress) is replaced instead of covered, so Back never
  returns to it.
- Choosing the job ("Restore a system image", "Back up this computer": on the start screen
  or in the repair options; "Browse files in a system image" in the repair options)
  opens its flow's first step after ``COMMON``; the start screen's "Back up this
  computer" thus skips the repair options, whose number the backup flow keeps.
- Back (Escape) returns to the screen underneath; "Start over" to ``HOME``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rescue.wizard.screens.backup import BackupDestinationScreen, BackupSourceScreen
from rescue.wizard.screens.base import WizardScreen
from rescue.wizard.screens.browse import BrowseScreen
from rescue.wizard.screens.finished import FinishedScreen
from rescue.wizard.screens.language import LanguageScreen
from rescue.wizard.screens.progress import ProgressScreen
from rescue.wizard.screens.repair import RepairScreen
from rescue.wizard.screens.select_image import SelectImageScreen
from rescue.wizard.screens.start import StartScreen
from rescue.wizard.screens.summary import SummaryScreen
from rescue.wizard.screens.target import TargetScreen

Steps = tuple[type[WizardScreen], ...]


@dataclass(frozen=True)
class Flow:
    action: str  # the job, WizardState.action: "restore" | "backup" | "browse"
    steps: Steps
    entry: int  # index of the first step of its own: where choosing the job leads

    def number(self, screen: type) -> int | None:
        """1-based step number of *screen* in this flow, None when it is not a step of it."""
        return self.steps.index(screen) + 1 if screen in self.steps else None

    def after(self, screen: type) -> type[WizardScreen] | None:
        number = self.number(screen)
        return self.steps[number] if number is not None and number < len(self.steps) else None


# Every job starts with these; the job is chosen on the last two.
COMMON: Steps = (
    LanguageScreen,  # language, formats and keyboard (also over any screen with F2)
    StartScreen,  # "Repair your computer" / "Back up this computer"
    RepairScreen,  # repair options: restore, back up, tools, restart, shut down
)


def _flow(action: str, *own: type[WizardScreen]) -> Flow:
    return Flow(action, (*COMMON, *own), entry=len(COMMON))


FLOWS: dict[str, Flow] = {
    "restore": _flow(
        "restore",
        SelectImageScreen,  # the latest image (recommended) or any image
        TargetScreen,  # target disk(s), options, hardware verdict (repeats per disk)
        SummaryScreen,  # every check; Finish (typed confirmation for a disk with data)
        ProgressScreen,
        FinishedScreen,  # result; restart countdown, shut down, shell, save logs
    ),
    "backup": _flow(
        "backup",
        BackupSourceScreen,  # the disk(s) to back up
        BackupDestinationScreen,  # where to save the image, and its name
        SummaryScreen,
        ProgressScreen,
        FinishedScreen,
    ),
    # a repair tool: the image mounted read-only while BrowseScreen is open
    "browse": _flow(
        "browse",
        SelectImageScreen,
        BrowseScreen,  # walk folders, mark with Space, copy to a USB stick
    ),
}

DEFAULT = "restore"  # the flow before a job is chosen (COMMON is the same in every flow)
FIRST = COMMON[0]  # the screen the wizard opens with
HOME = StartScreen  # where "Start over" returns


def flow_of(action: str) -> Flow:
    """The flow of the job *action* ("" before one is chosen: the default)."""
    return FLOWS.get(action) or FLOWS[DEFAULT]


def step_number(action: str, screen: type) -> tuple[int, int] | None:
    """(number, total) of *screen* in the flow of *action*, or in the first flow that has
    it; None for a screen that is no step (dialogs)."""
    current = flow_of(action)
    for flow in (current, *FLOWS.values()):
        number = flow.number(screen)
        if number is not None:
            return number, len(flow.steps)
    return None


def next_step(action: str, screen: type) -> type[WizardScreen] | None:
    """The screen after *screen* in the flow of *action* (None: the last one)."""
    return flow_of(action).after(screen)


def entry_step(action: str) -> type[WizardScreen]:
    """The first screen of the job *action* (after ``COMMON``)."""
    flow = FLOWS[action]
    return flow.steps[flow.entry]
