# ruff: noqa: F811  (pytest fixtures imported from wizard_fixtures shadow as parameters)
"""Hot-plug on the target screen (issue 12, finding 5): a disk plugged in appears, and
a chosen disk that is pulled out or swapped for another under the same name is
un-chosen with a sentence, so Next cannot carry a stale choice to the summary. (The
engine checks the disk's identity again before the first write; this is the wizard's
half.) The monitor's calls come from another thread, as the real one's do."""

from __future__ import annotations

import dataclasses
import threading

from wizard_fakes import DISKS, FixtureServices
from wizard_fixtures import english  # noqa: F401 (fixtures)
from wizard_helpers import run_async, to_summary, to_target, wait_for

from rescue.wizard.app import RescueApp
from rescue.wizard.model import DiskEntry, WizardState

GB = 1000**3
NEW = DiskEntry("/dev/sdd", "sdd", "Crucial MX500", "2133E5F1", 500 * GB,
                "/dev/disk/by-id/ata-Crucial_MX500_2133E5F1", "sata")


def _fire(svc: FixtureServices) -> None:
    for watcher in list(svc.watchers):
        threading.Thread(target=watcher).start()


def _selection(screen) -> str:  # type: ignore[no-untyped-def]
    return str(screen.query_one("#selection").render())


def test_a_disk_plugged_in_appears_and_a_pulled_one_is_unchosen(english) -> None:
    svc = FixtureServices()

    async def run() -> None:
        app = RescueApp(svc, WizardState(), restart_countdown=0)
        async with app.run_test(size=(100, 30)) as pilot:
            await to_target(pilot)
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.media.watching, what="the watch")
            assert app.state.target is not None and app.state.target.path == "/dev/sda"
            svc.disks = [*DISKS, NEW]  # a second eligible disk plugged in
            _fire(svc)
            await wait_for(pilot, lambda: screen.query_one("#disks").row_count == 4,
                           what="the new disk listed")
            assert app.state.target.path == "/dev/sda"  # the choice stays
            assert not screen.query_one("#next").disabled
            svc.disks = [NEW, *DISKS[1:]]  # the chosen disk pulled out
            _fire(svc)
            await wait_for(pilot, lambda: app.state.target is None, what="un-chosen")
            assert "/dev/sda (Samsung SSD 870, 250.0 GB) was removed or changed" in \
                _selection(screen)
            assert screen.query_one("#next").disabled
            screen.query_one("#disks").focus()
            await pilot.press("enter")  # the first row, the new disk
            await wait_for(pilot, lambda: app.state.target is not None)
            assert app.state.target == NEW and "was removed" not in _selection(screen)

    run_async(run())


def test_a_disk_swapped_under_the_same_name_is_unchosen(english) -> None:
    svc = FixtureServices()

    async def run() -> None:
        app = RescueApp(svc, WizardState(), restart_countdown=0)
        async with app.run_test(size=(100, 30)) as pilot:
            await to_target(pilot)
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.media.watching, what="the watch")
            swapped = dataclasses.replace(DISKS[0], serial="OTHER0001", size_bytes=256 * GB,
                                          by_id="/dev/disk/by-id/ata-Samsung_OTHER0001")
            svc.disks = [swapped, *DISKS[1:]]  # another disk, enumerated as sda again
            _fire(svc)
            await wait_for(pilot, lambda: app.state.target is None, what="un-chosen")
            assert "was removed or changed" in _selection(screen)
            # the same disk seen again (new partitions on it) stays chosen
            screen.query_one("#disks").focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.state.target == swapped)
            svc.disks = [dataclasses.replace(swapped, partitions=("sda1 ext4",)),
                         *DISKS[1:]]
            _fire(svc)
            await wait_for(pilot, lambda: app.state.target is not None
                           and app.state.target.partitions == ("sda1 ext4",))
            assert "was removed" not in _selection(screen)

    run_async(run())


def test_the_summary_cannot_be_finished_once_its_target_is_pulled(english) -> None:
    svc = FixtureServices()

    async def run() -> None:
        app = RescueApp(svc, WizardState(), restart_countdown=0)
        async with app.run_test(size=(100, 30)) as pilot:
            await to_summary(pilot)
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.prepared is not None and screen.media.watching)
            assert not screen.query_one("#finish").disabled
            svc.disks = list(DISKS[1:])  # the target pulled out
            _fire(svc)
            await wait_for(pilot, lambda: screen.query_one("#finish").disabled,
                           what="Finish disabled")
            status = str(screen.query_one("#status").render())
            assert "/dev/sda (Samsung SSD 870, 250.0 GB) was removed or changed" in status
            assert "nothing was written" in status
            screen.query_one("#finish").press()  # pressed anyway: nothing starts
            await pilot.pause()
            assert not any(c[0] == "run_restore" for c in svc.calls)
            assert type(pilot.app.screen).__name__ == "SummaryScreen"

    run_async(run())


def test_the_summary_plans_again_when_its_target_changes_content(english) -> None:
    svc = FixtureServices()

    async def run() -> None:
        app = RescueApp(svc, WizardState(), restart_countdown=0)
        async with app.run_test(size=(100, 30)) as pilot:
            await to_summary(pilot)
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.prepared is not None and screen.media.watching)
            before = sum(1 for c in svc.calls if c[0] == "prepare_restore")
            svc.disks = [dataclasses.replace(DISKS[0], partitions=("sda1 ntfs 'New'",)),
                         *DISKS[1:]]  # someone partitioned it meanwhile
            _fire(svc)
            await wait_for(pilot, lambda: sum(1 for c in svc.calls
                                              if c[0] == "prepare_restore") == before + 1,
                           what="a second plan")
            await wait_for(pilot, lambda: screen.prepared is not None)
            assert "sda1 ntfs 'New'" in str(screen.query_one("#summary").render())
            assert not screen.query_one("#finish").disabled

    run_async(run())


def test_a_smaller_disk_says_what_shrinks_or_why_it_cannot_be_used(english) -> None:
    """Issue 13: a disk smaller than the image's is offered; choosing it shows what the
    restore will shrink (the planner's answer), or why even shrinking does not fit, in
    which case it cannot be chosen."""
    from rescue.errors import TargetTooSmallError

    small = DiskEntry("/dev/sdd", "sdd", "Kingston A400", "K1", 40 * GB, transport="sata")
    tiny = DiskEntry("/dev/sde", "sde", "Old SSD", "O1", 16 * GB, transport="sata")
    note = ("Partition 2 (ext4) shrinks from 40.0 GB to 28.0 GB: it is made anew with the "
            "same UUID and label and its files are copied one by one")
    svc = FixtureServices(disks=[small, tiny, *DISKS[1:]], shrink_answers={
        small.path: note,
        tiny.path: TargetTooSmallError("Target disk /dev/sde is 16.0 GB; even with 2 (ext4) "
                                       "shrunk, the image needs 24.0 GB."),
    })

    async def run() -> None:
        app = RescueApp(svc, WizardState(), restart_countdown=0)
        async with app.run_test(size=(100, 30)) as pilot:
            await to_target(pilot)
            screen = pilot.app.screen
            assert app.state.target is None  # two disks: none chosen for the technician
            table = screen.query_one("#disks")
            table.focus()
            await pilot.press("enter")  # sdd, smaller than the image's 64 GB disk
            await wait_for(pilot, lambda: note in _selection(screen), what="the fit")
            assert app.state.target == small and not screen.query_one("#next").disabled
            await pilot.press("down")
            await wait_for(pilot, lambda: table.cursor_row == 1)
            await pilot.press("enter")  # sde: does not fit even shrunk
            await wait_for(pilot, lambda: tiny.path in screen.too_small, what="the refusal")
            assert "even with 2 (ext4)" in _selection(screen)
            assert app.state.target is None and screen.query_one("#next").disabled
            await pilot.press("enter")  # chosen again: refused at once, still not chosen
            await pilot.pause()
            assert app.state.target is None

    run_async(run())
