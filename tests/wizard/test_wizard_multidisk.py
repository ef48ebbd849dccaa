# ruff: noqa: F811  (pytest fixtures imported from wizard_fixtures shadow as parameters)
"""An image of a machine with two disks: a target screen per disk of the image, a summary
naming both, one typed confirmation for both; and a backup of two disks (Space marks)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_wizard_flow import make_app
from wizard_fakes import DISKS, GB, IMAGES, FixtureServices
from wizard_fixtures import english, loops  # noqa: F401 (fixtures)
from wizard_helpers import (
    on,
    press_button,
    restore_from_summary,
    run_async,
    to_target,
    wait_for,
)

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


@pytest.mark.root
def test_real_two_disk_restore_through_the_wizard(loops, tmp_path):
    """The real engine: a two-disk image restored through every screen onto two loop
    devices, one target chosen by hand, the other pre-selected as the only one left."""
    import threading

    from loopdev import MiB, mounted, partition, sh
    from test_wizard_restore_real import services_for
    from wizard_disks import SOURCE_SIZE, build_source, check_restored

    from rescue import services as facade
    from rescue.engine.backup import BackupOptions
    from rescue.runner import CommandRunner
    from rescue.wizard.app import RescueApp
    from rescue.wizard.model import WizardState

    system_src, data_src = loops(SOURCE_SIZE, "system-src"), loops(48 * MiB, "data-src")
    build_source(system_src, tmp_path)
    (data_node,) = partition(data_src, "label: gpt\nsize=40MiB, type=L, name=data\n")
    sh("mkfs.ext4", "-q", "-F", "-L", "data", data_node)
    with mounted(data_node, tmp_path / "data-rw") as m:
        (m / "payroll.txt").write_text("restored with its disk\n")
    repo = tmp_path / "repo"
    prepared = facade.prepare_backup([system_src, data_src], str(repo),
                                     BackupOptions(name="two"), CommandRunner())
    facade.run_backup(prepared, cancel=threading.Event())
    first, second = loops(256 * MiB, "target-a"), loops(64 * MiB, "target-b")
    services = services_for([first, second], tmp_path)
    app = RescueApp(services, WizardState(locations=[str(repo)]), restart_countdown=0)

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_target(pilot)
            assert app.state.image is not None and app.state.image.disk_count == 2
            screen = pilot.app.screen
            table = screen.query_one("#disks")
            table.focus()
            table.move_cursor(row=[d.path for d in screen.disks].index(first))
            await pilot.press("enter")
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: getattr(pilot.app.screen, "disk_index", 0) == 1
                           and pilot.app.screen.loaded, what="target screen 2")
            assert app.state.targets() == [app.state.target, *app.state.other_targets]
            assert [d.path for d in app.state.targets()] == [first, second]  # the rest
            outcome = await restore_from_summary(pilot)
            assert outcome is not None and outcome.ok and outcome.verified, outcome

    try:
        run_async(walk())
    finally:
        services.close()
    check_restored(first, tmp_path)
    from loopdev import refresh_partitions

    (node,) = refresh_partitions(second)
    with mounted(node, tmp_path / "data-check", "ro") as m:
        assert (m / "payroll.txt").read_text() == "restored with its disk\n"
