"""An image of a machine with two disks: a target screen per disk of the image, a summary
naming both, one typed confirmation for both; and a backup of two disks (Space marks)."""

from __future__ import annotations

from dataclasses import replace

from test_wizard_flow import make_app
from wizard_fakes import DISKS, GB, IMAGES, FixtureServices
from wizard_fixtures import english  # noqa: F401 (fixtures)
from wizard_helpers import on, press_button, run_async, to_target, wait_for

from rescue.wizard.model import DiskEntry, Volume

TWO_DISK_IMAGE = replace(
    IMAGES[0], id="5e5e5e5e", volumes=(*IMAGES[0].volumes,
                                       Volume(1, 1, 500 * GB, "xfs", "data", 300 * GB)),
    disk_sizes=(64 * GB, 500 * GB), disk_bytes=564 * GB)
NEW_DISK = DiskEntry("/dev/sdd", "sdd", "WD Red", "WD-1234", 1000 * GB, transport="sata")
BLANK = DiskEntry("/dev/sde", "sde", "Crucial MX500", "CT-77", 120 * GB, transport="sata")


def services() -> FixtureServices:
    return FixtureServices(images=[TWO_DISK_IMAGE], disks=[*DISKS, NEW_DISK, BLANK])



def row_of(screen, path: str) -> int:
    return [d.path for d in screen.disks].index(path)


async def pick(pilot, path: str) -> None:
    screen = pilot.app.screen
    table = screen.query_one("#disks")
    table.focus()
    table.move_cursor(row=row_of(screen, path))
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen.chosen is not None and screen.chosen.path == path)


def test_two_disk_image_gets_a_target_per_disk():
    svc = services()
    app = make_app(svc)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_target(pilot)
            first = pilot.app.screen
            assert "Target disk 1 of 2" in str(first.query_one("#title").render())
            assert first.chosen is None  # sda, sdd and sde are all possible: no guess
            await pick(pilot, "/dev/sde")
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: pilot.app.screen is not first
                           and pilot.app.screen.loaded, what="second target screen")
            second = pilot.app.screen
            assert second.disk_index == 1
            assert "Target disk 2 of 2" in str(second.query_one("#title").render())
            assert "500.0 GB" in str(second.query_one(".heading").render())
            assert not second.query("#verify")  # the options live on the first screen
            # the disk chosen for the image's disk 1 is shown but cannot be chosen again
            assert not second.usable(BLANK)
            second.query_one("#disks").move_cursor(row=row_of(second, "/dev/sde"))
            await pilot.press("enter")
            assert second.chosen is None
            await pick(pilot, "/dev/sdd")
            await press_button(pilot, "#next")
            await on(pilot, "SummaryScreen")
            summary = pilot.app.screen
            await wait_for(pilot, lambda: summary.prepared is not None)
            text = str(summary.query_one("#summary").render())
            assert "Target disk for the image's disk 1" in text and "/dev/sde" in text
            assert "Target disk for the image's disk 2" in text and "/dev/sdd" in text
            assert "Disk 2, Partition 1" in text
            assert ("prepare_restore", "5e5e5e5e", "/dev/sde", "/dev/sdd") in svc.calls
            # Back from the summary keeps the second choice; Back again keeps the first.
            await pilot.press("escape")
            await on(pilot, "TargetScreen")
            assert app.state.targets() == [BLANK, NEW_DISK]

    run_async(run())


def test_both_targets_with_data_are_confirmed_by_name():
    svc = services()
    app = make_app(svc)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_target(pilot)
            await pick(pilot, "/dev/sda")  # holds Windows
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: getattr(pilot.app.screen, "disk_index", 0) == 1
                           and pilot.app.screen.loaded)
            await pick(pilot, "/dev/sdd")
            await press_button(pilot, "#next")
            await on(pilot, "SummaryScreen")
            await wait_for(pilot, lambda: pilot.app.screen.prepared is not None)
            await press_button(pilot, "#finish")
            await on(pilot, "TypedConfirmDialog")
            dialog = pilot.app.screen
            assert dialog.word == "sda"  # only the disk that holds data is asked for
            await pilot.press(*"sda")
            assert not dialog.query_one("#yes").disabled
            await pilot.press("enter")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ in (
                "ProgressScreen", "FinishedScreen"), what="the restore")
        assert any(c[0] == "run_restore" for c in svc.calls)

    run_async(run())


def test_backup_of_two_disks_marked_with_space():
    svc = FixtureServices()
    app = make_app(svc)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await press_button(pilot, "#next")
            await on(pilot, "StartScreen")
            await press_button(pilot, "#backup")
            await on(pilot, "BackupSourceScreen")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: bool(screen.disks))
            table = screen.query_one("#sources")
            table.focus()
            table.move_cursor(row=1)
            await pilot.press("space")  # sdb first: the system disk
            table.move_cursor(row=0)
            await pilot.press("space")
            assert screen.marked == ["/dev/sdb", "/dev/sda"]
            assert "One image of 2 disk(s)" in str(screen.query_one("#message").render())
            await pilot.press("space")  # unmark sda again, then mark it
            await pilot.press("space")
            await press_button(pilot, "#next")
            await on(pilot, "BackupDestinationScreen")
            pilot.app.screen.query_one("#destination").value = "/media/usb/rescue"
            await press_button(pilot, "#next")
            await on(pilot, "SummaryScreen")
            await wait_for(pilot, lambda: pilot.app.screen.prepared is not None)
            assert "Disks to back up" in str(pilot.app.screen.query_one("#summary").render())
        assert ("backup_sources", ("/dev/sdb", "/dev/sda")) in svc.calls

    run_async(run())
