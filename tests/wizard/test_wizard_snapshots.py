"""Every screen at 80x24, in English and German (pytest-textual-snapshot; deterministic:
fixture services with fixed dates and sizes, a frozen clock, no blinking cursor).

Update after an intended change: pytest tests/wizard/test_wizard_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest
from textual.widgets import Input
from wizard_fakes import DISKS, IMAGES, FixtureServices
from wizard_fixtures import english  # noqa: F401 (fixtures)
from wizard_helpers import wait_for

from rescue import i18n
from rescue.errors import DeviceError
from rescue.events import LogMessage, Progress, StageStarted
from rescue.wizard.app import RescueApp
from rescue.wizard.model import Outcome, Prepared, WizardState

SCREENS = [
    "language", "start", "repair", "select_image", "target", "summary", "confirm",
    "progress", "finished", "finished_failed", "backup_source", "backup_destination",
    "save_logs", "second_target", "browse_top", "browse",
]
GB = 1000**3


def make_app(lang: str) -> RescueApp:
    state = WizardState(language=lang, region=i18n.DEFAULT_FORMAT[lang],
                        keymap=i18n.DEFAULT_KEYMAP[lang])
    return RescueApp(FixtureServices(), state, restart_countdown=30, clock=lambda: 100.0,
                     default_backup_name="web01", countdown_interval=3600)


async def goto(pilot, key: str) -> None:
    from rescue.wizard.screens.backup import BackupDestinationScreen, BackupSourceScreen
    from rescue.wizard.screens.finished import FinishedScreen
    from rescue.wizard.screens.progress import ProgressScreen
    from rescue.wizard.screens.repair import RepairScreen
    from rescue.wizard.screens.select_image import SelectImageScreen
    from rescue.wizard.screens.start import StartScreen
    from rescue.wizard.screens.summary import SummaryScreen
    from rescue.wizard.screens.target import TargetScreen

    app = pilot.app
    st = app.state
    await wait_for(pilot, lambda: type(app.screen).__name__ == "LanguageScreen")
    if key in ("target", "summary", "confirm"):
        st.image = IMAGES[0]
    if key in ("summary", "confirm"):
        st.target = DISKS[0]
        st.verdict = app.services.verdict
    if key == "start":
        await app.push_screen(StartScreen())
    elif key == "repair":
        await app.push_screen(RepairScreen())
    elif key == "select_image":
        await app.push_screen(SelectImageScreen())
        await wait_for(pilot, lambda: app.screen.loaded)
    elif key == "target":
        await app.push_screen(TargetScreen())
        await wait_for(pilot, lambda: app.screen.loaded and st.verdict is not None)
    elif key in ("summary", "confirm"):
        screen = SummaryScreen("restore")
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.prepared is not None)
        if key == "confirm":
            screen.query_one("#finish").focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "TypedConfirmDialog")
    elif key == "progress":
        st.prepared = Prepared("restore", [], total_bytes=20 * GB, volumes=[
            ("1: vfat 'EFI'", 12_000_000), ("2: ext4 'root'", 20 * GB - 12_000_000)])
        screen = ProgressScreen("restore", start=False)
        await app.push_screen(screen)
        total = 20 * GB
        for event in (
            LogMessage("info", "write-partition-table: done - GPT, 3 partitions"),
            StageStarted("write-data", "Writing 20.0 GB to /dev/sda", total),
            Progress("write-data", total // 4, total, 60.0, 85_000_000.0, 180.0),
        ):
            screen.on_engine_event(event)
    elif key in ("finished", "finished_failed"):
        st.outcome = Outcome(ok=True, verified=True) if key == "finished" else Outcome(
            ok=False, message=str(DeviceError(
                "Writing /dev/sda: input/output error; the disk may be failing.")))
        await app.push_screen(FinishedScreen("restore"))
    elif key == "backup_source":
        screen = BackupSourceScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: bool(screen.disks))
    elif key == "backup_destination":
        screen = BackupDestinationScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: bool(screen.media))
    elif key == "second_target":  # an image of two disks: the screen for its disk 2
        from dataclasses import replace

        from rescue.wizard.model import Volume

        st.image = replace(IMAGES[0], volumes=(*IMAGES[0].volumes,
                                               Volume(1, 1, 500 * GB, "xfs", "data")),
                           disk_sizes=(64 * GB, 500 * GB))
        st.target = DISKS[0]
        screen = TargetScreen(disk_index=1)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.loaded)
    elif key in ("browse_top", "browse"):  # "Browse files in a system image"
        from rescue.wizard.screens.browse import BrowseScreen

        st.action, st.image = "browse", IMAGES[0]
        screen = BrowseScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.loaded)
        if key == "browse":
            screen.go("p2", "home/anna")
            await wait_for(pilot, lambda: screen.path == "home/anna" and not screen.listing)
            await pilot.press("down", "space", "space")  # photos/ and .bashrc marked
            await pilot.press("up")
    elif key == "save_logs":
        from rescue.wizard.screens.save_logs import SaveLogsDialog

        await app.push_screen(RepairScreen())
        dialog = SaveLogsDialog([])
        await app.push_screen(dialog)
        await wait_for(pilot, lambda: dialog.loaded)
    for widget in app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.pause(0.2)


@pytest.mark.parametrize("lang", ["en", "de"])
@pytest.mark.parametrize("key", SCREENS)
def test_screen_snapshot(snap_compare, key, lang):
    async def run_before(pilot) -> None:
        await goto(pilot, key)

    assert snap_compare(make_app(lang), terminal_size=(80, 24), run_before=run_before)
