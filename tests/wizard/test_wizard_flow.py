"""Navigation, dialogs and error paths of every screen, on deterministic fixture services
(what the machine answers is fixed; what is tested is the wizard's behaviour)."""

from __future__ import annotations

import threading

import pytest
from wizard_fakes import DISKS, IMAGES, LOG_FILE_NAME, LOG_MEDIA, FixtureServices
from wizard_fixtures import english  # noqa: F401 (fixtures)
from wizard_helpers import (
    confirm_restore,
    name,
    on,
    press_button,
    run_async,
    to_repair,
    to_select_image,
    to_summary,
    wait_for,
)

from rescue.errors import DeviceError, TargetTooSmallError
from rescue.wizard.app import RescueApp
from rescue.wizard.model import DiskEntry, WizardState


def make_app(services: FixtureServices | None = None, **kw) -> RescueApp:
    kw.setdefault("restart_countdown", 0)
    return RescueApp(services or FixtureServices(), WizardState(), clock=lambda: 100.0,
                     default_backup_name="web01", **kw)






def test_first_screen_says_choose_your_language():
    async def run() -> None:
        async with make_app().run_test(size=(80, 24)) as pilot:
            await on(pilot, "LanguageScreen")
            assert "Choose your language" in str(
                pilot.app.screen.query_one("#choose-language").render())

    run_async(run())


def test_back_navigation_at_every_step():
    svc = FixtureServices()

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_summary(pilot)
            expected = ["TargetScreen", "SelectImageScreen", "RepairScreen", "StartScreen",
                        "LanguageScreen"]
            for i, screen in enumerate(expected):
                if i % 2 == 0 and pilot.app.screen.query("#back"):
                    await press_button(pilot, "#back")  # the Back button ...
                else:
                    await pilot.press("escape")  # ... and Escape
                await on(pilot, screen)
            await pilot.press("escape")  # the first screen stays
            await pilot.pause(0.1)
            assert name(pilot) == "LanguageScreen"
            # Forward again: the answers given are kept.
            await to_summary(pilot)
            assert pilot.app.state.image is not None and pilot.app.state.image.id == "3f9a1c2b"

    run_async(run())


def test_restore_flow_with_typed_confirmation_and_countdown():
    svc = FixtureServices()
    app = make_app(svc, restart_countdown=2, countdown_interval=0.05)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_summary(pilot)
            await press_button(pilot, "#finish")
            await on(pilot, "TypedConfirmDialog")
            await pilot.press("s", "d", "x")
            assert pilot.app.screen.query_one("#yes").disabled
            await pilot.press("backspace", "a", "enter")
            await on(pilot, "FinishedScreen")
            assert "restored" in str(pilot.app.screen.query_one("#result").render())
            await wait_for(pilot, lambda: ("power", "reboot") in svc.calls, what="restart")

    run_async(run())
    assert ("run_restore", ("restore", "3f9a1c2b", "/dev/sda")) in svc.calls


def test_a_restore_done_with_warnings_shows_them():
    svc = FixtureServices(restore_warnings=[
        "The xfs filesystem on partition 3 was not grown (xfs_growfs [failed]); the "
        "restored data is complete and the system works at the old size."])
    app = make_app(svc, restart_countdown=0)

    async def run() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await to_summary(pilot)
            await confirm_restore(pilot)
            await on(pilot, "FinishedScreen")
            finished = pilot.app.screen
            await wait_for(pilot, lambda: bool(finished.query("#result")), what="result")
            text = str(finished.query_one("#result").render())
            assert "restored" in text
            assert "Warning:" in text and "was not grown" in text
            assert "xfs_growfs [failed]" in text  # shown as text, not taken as markup

    run_async(run())


def test_countdown_can_be_stopped():
    svc = FixtureServices()
    app = make_app(svc, restart_countdown=30, countdown_interval=0.05)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_summary(pilot)
            await confirm_restore(pilot)
            await on(pilot, "FinishedScreen")
            await wait_for(pilot, lambda: "Restarting in" in str(
                pilot.app.screen.query_one("#countdown").render()))
            await pilot.press("escape")
            await pilot.pause(2.0)
            assert ("power", "reboot") not in svc.calls
            assert str(pilot.app.screen.query_one("#countdown").render()) == ""

    run_async(run())


def test_cancel_during_progress_asks_and_leaves_a_clear_state():
    svc = FixtureServices(block_run=threading.Event())

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_summary(pilot)
            await confirm_restore(pilot)
            await on(pilot, "ProgressScreen")
            await wait_for(pilot, lambda: "Writing partition 2" in str(
                pilot.app.screen.query_one("#stage").render()))
            await pilot.press("escape")  # asks first
            await on(pilot, "ConfirmDialog")
            await press_button(pilot, "#no")  # "Continue"
            await on(pilot, "ProgressScreen")
            assert not pilot.app.state.cancel.is_set()
            await press_button(pilot, "#cancel")
            await on(pilot, "ConfirmDialog")
            await press_button(pilot, "#yes")
            await on(pilot, "FinishedScreen")
            outcome = pilot.app.state.outcome
            assert outcome is not None and outcome.cancelled and not outcome.ok
            text = str(pilot.app.screen.query_one("#result").render())
            assert "cancelled" in text and "incomplete" in text
            assert pilot.app.screen.query("#logs")  # Save logs offered

    run_async(run())


def test_failure_shows_the_cause_and_save_logs():
    svc = FixtureServices(run_error=DeviceError(
        "Writing /dev/sda: input/output error; the disk may be failing."))

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_summary(pilot)
            await confirm_restore(pilot)
            await on(pilot, "FinishedScreen")
            text = str(pilot.app.screen.query_one("#result").render())
            assert "The restore failed." in text and "input/output error" in text
            await press_button(pilot, "#logs")
            await on(pilot, "SaveLogsDialog")
            dialog = pilot.app.screen
            await wait_for(pilot, lambda: dialog.loaded, what="the list of sticks")
            # The restore target (sda) was being written: its NTFS partition is not offered.
            assert ("log_media", ("/dev/sda",)) in svc.calls
            assert [m.device for m in dialog.media] == ["/dev/sdd1"]
            options = dialog.query_one("#choices")
            assert options.option_count == 2
            options.highlighted = options.get_option_index("folder")  # "Type a folder…"
            await pilot.press("enter")
            await on(pilot, "InputDialog")
            await pilot.press(*"/media/usb", "enter")
            await wait_for(pilot, lambda: ("save_logs", "/media/usb") in svc.calls)
            await on(pilot, "TextDialog")
            assert f"/media/usb/{LOG_FILE_NAME}" in str(
                pilot.app.screen.query_one("#text").render())

    run_async(run())


async def to_save_logs_dialog(pilot):
    await to_repair(pilot)
    options = pilot.app.screen.query_one("#options")
    options.highlighted = options.get_option_index("logs")
    await pilot.press("enter")
    await on(pilot, "SaveLogsDialog")
    dialog = pilot.app.screen
    await wait_for(pilot, lambda: dialog.loaded, what="the list of sticks")
    return dialog


def test_save_logs_to_a_usb_stick_from_repair_options():
    svc = FixtureServices()

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            dialog = await to_save_logs_dialog(pilot)
            assert ("log_media", ()) in svc.calls
            options = dialog.query_one("#choices")
            labels = [str(options.get_option_at_index(i).prompt)
                      for i in range(options.option_count)]
            # USB stick first, then the internal disk's filesystem, then the folder entry.
            assert labels == ["sdd1 'LOGS' (vfat, usb, 16.0 GB)",
                              "sda2 'Data' (ntfs, sata, 200.0 GB)", "Type a folder…"]
            assert options.highlighted == 0
            await pilot.press("enter")  # the stick
            await on(pilot, "TextDialog")
            text = str(pilot.app.screen.query_one("#text").render())
            assert text == (f"Logs saved to sdd1 'LOGS' as {LOG_FILE_NAME}; "
                            "you can remove the stick.")
            assert ("save_logs", "/dev/sdd1") in svc.calls
            await press_button(pilot, "#yes")
            await on(pilot, "RepairScreen")

    run_async(run())


def test_save_logs_never_offers_any_restore_target():
    svc = FixtureServices()
    second = DiskEntry("/dev/nvme0n1", "nvme0n1", "WD Black SN770", "2215ABC", 500 * 10**9)
    app = make_app(svc)
    app.state.target, app.state.other_targets = DISKS[0], [second]

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            dialog = await to_save_logs_dialog(pilot)
            assert ("log_media", ("/dev/sda", "/dev/nvme0n1")) in svc.calls
            assert [m.device for m in dialog.media] == ["/dev/sdd1"]

    run_async(run())


def test_save_logs_shows_why_it_failed():
    svc = FixtureServices(save_error=DeviceError(
        "sdd1 'LOGS' (vfat) could not be mounted to save the logs: wrong fs type. "
        "Try another USB stick, or type a folder."))

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_save_logs_dialog(pilot)
            await pilot.press("enter")
            await on(pilot, "TextDialog")
            screen = pilot.app.screen
            assert "The logs were not saved" in str(screen.query_one(".dialog-title").render())
            assert "could not be mounted" in str(screen.query_one("#text").render())

    run_async(run())


def test_save_logs_list_updates_when_a_stick_is_plugged_in():
    svc = FixtureServices(log_media_found=[])

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            dialog = await to_save_logs_dialog(pilot)
            await wait_for(pilot, lambda: bool(svc.watchers))
            assert "No writable disk" in str(dialog.query_one("#media-status").render())
            assert dialog.query_one("#choices").option_count == 1  # only "Type a folder…"
            svc.log_media_found = [LOG_MEDIA[0]]  # the technician plugs the stick in
            for watcher in list(svc.watchers):
                threading.Thread(target=watcher).start()
            await wait_for(pilot, lambda: dialog.query_one("#choices").option_count == 2,
                           what="the stick in the list")
            assert str(dialog.query_one("#media-status").render()) == ""
            await pilot.press("escape")  # cancelled: nothing saved, the watch stops
            await on(pilot, "RepairScreen")
            await wait_for(pilot, lambda: not svc.watchers, what="the watch to stop")
            assert not [c for c in svc.calls if c[0] == "save_logs"]

    run_async(run())


def test_prepare_refusal_is_shown_and_finish_disabled():
    svc = FixtureServices(prepare_error=TargetTooSmallError(
        "Target disk /dev/sda is 120 GB; the image's partitions need 143 GB."))

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_summary(pilot)
            screen = pilot.app.screen
            assert "143 GB" in str(screen.query_one("#status").render())
            assert screen.query_one("#finish").disabled

    run_async(run())


def test_no_eligible_target():
    protected = [d for d in DISKS if not d.eligible]
    svc = FixtureServices(disks=protected)

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            await press_button(pilot, "#next")
            await on(pilot, "TargetScreen")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.loaded)
            assert "No disk can receive the image" in str(
                screen.query_one("#selection").render())
            assert screen.query_one("#next").disabled
            # Protected disks are listed, with their reason, but Enter does not pick them.
            table = screen.query_one("#disks")
            assert table.row_count == 2
            await pilot.press("enter")
            assert pilot.app.state.target is None
            assert "cannot be chosen" in str(screen.query_one("#selection").render())

    run_async(run())


def test_ambiguous_targets_are_not_preselected():
    second = DiskEntry("/dev/nvme0n1", "nvme0n1", "WD Black SN770", "2215ABC", 500 * 10**9)
    svc = FixtureServices(disks=[*DISKS, second])

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            await press_button(pilot, "#next")
            await on(pilot, "TargetScreen")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.loaded)
            assert pilot.app.state.target is None and screen.query_one("#next").disabled
            screen.query_one("#disks").focus()
            await pilot.press("down", "down", "down", "enter")
            assert pilot.app.state.target == second
            assert not screen.query_one("#next").disabled
            # Unticking "Format and repartition" blocks Next with an explanation.
            screen.query_one("#repartition").focus()
            await pilot.press("space")
            assert screen.query_one("#next").disabled
            assert "partition table" in str(screen.query_one("#selection").render())

    run_async(run())


def test_select_a_specific_image_and_add_a_location():
    svc = FixtureServices()

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.loaded)
            await press_button(pilot, "#add")
            await on(pilot, "InputDialog")
            await pilot.press(*"/mnt/nas/images", "enter")
            await on(pilot, "SelectImageScreen")
            await wait_for(pilot, lambda: ("find_images", ("/mnt/nas/images",)) in svc.calls)
            assert pilot.app.state.locations == ["/mnt/nas/images"]
            await wait_for(pilot, lambda: screen.loaded)
            screen.query_one("#images").focus()
            await pilot.press("down", "enter")  # the second row: web01 "monthly"
            await on(pilot, "TargetScreen")
            assert pilot.app.state.image == IMAGES[1]
            assert not pilot.app.state.use_latest

    run_async(run())


def test_image_list_updates_when_media_change():
    svc = FixtureServices(images=[])

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.loaded and bool(svc.watchers))
            assert screen.query_one("#images").row_count == 0
            svc.images = list(IMAGES)  # a USB stick with images is plugged in
            threading.Thread(target=svc.watchers[0]).start()  # from the monitor's thread
            await wait_for(pilot, lambda: screen.query_one("#images").row_count == 3,
                           what="live update")
            assert not screen.query_one("#next").disabled
            svc.images = []  # and pulled out again
            threading.Thread(target=svc.watchers[0]).start()
            await wait_for(pilot, lambda: screen.query_one("#images").row_count == 0)
            assert screen.query_one("#next").disabled
        assert not svc.watchers  # the watch stops with the screen

    run_async(run())


def test_language_can_be_changed_from_any_screen():
    svc = FixtureServices()

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_summary(pilot)
            await pilot.press("f2")
            await on(pilot, "LanguageScreen")
            pilot.app.screen.query_one("#language").value = "de"
            # The title is missing for a moment while the screen recomposes.
            await wait_for(pilot, lambda: any("Sprache und Tastatur" in str(t.render())
                                              for t in pilot.app.screen.query("#title")),
                           what="recomposed in German")
            await pilot.pause(0.1)
            await press_button(pilot, "#next")
            await on(pilot, "SummaryScreen")
            screen = pilot.app.screen
            assert "Zusammenfassung" in str(screen.query_one("#title").render())
            summary = str(screen.query_one("#summary").render())
            assert "Datum und Uhrzeit: 31.10.2026 14:05" in summary
            assert pilot.app.state.region == "de_DE" and pilot.app.state.keymap == "de"
            # The plan is still there after the change: Finish is enabled.
            assert not screen.query_one("#finish").disabled

    run_async(run())
    assert ("apply_keymap", "de") in svc.calls


@pytest.mark.parametrize("tool,expected", [
    ("shell", ("shell",)),
    ("reboot", ("power", "reboot")),
    ("poweroff", ("power", "poweroff")),
])
def test_repair_tools(tool, expected):
    svc = FixtureServices()

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_repair(pilot)
            options = pilot.app.screen.query_one("#options")
            options.highlighted = options.get_option_index(tool)
            await pilot.press("enter")
            if tool != "shell":
                await on(pilot, "ConfirmDialog")
                await press_button(pilot, "#yes")
            await wait_for(pilot, lambda: expected in svc.calls, what=tool)

    run_async(run())


def test_check_disk_tool():
    svc = FixtureServices()

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_repair(pilot)
            options = pilot.app.screen.query_one("#options")
            options.highlighted = options.get_option_index("check")
            await pilot.press("enter")
            await on(pilot, "ChoiceDialog")
            await pilot.press("enter")
            await on(pilot, "TextDialog")
            assert "/dev/sda1: clean" in str(pilot.app.screen.query_one("#text").render())

    run_async(run())


def test_backup_flow_with_fixture_services():
    svc = FixtureServices()

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await press_button(pilot, "#next")
            await on(pilot, "StartScreen")
            await press_button(pilot, "#backup")
            await on(pilot, "BackupSourceScreen")
            await wait_for(pilot, lambda: bool(pilot.app.screen.disks))
            await press_button(pilot, "#next")
            await on(pilot, "BackupDestinationScreen")
            await wait_for(pilot, lambda: pilot.app.screen.media)
            pilot.app.screen.query_one("#media").focus()
            await pilot.press("enter")  # pick the repository on the USB stick
            assert pilot.app.screen.query_one("#destination").value == "/media/usb/rescue"
            await press_button(pilot, "#next")
            await on(pilot, "SummaryScreen")
            await wait_for(pilot, lambda: pilot.app.screen.prepared is not None)
            await press_button(pilot, "#finish")  # no typed confirmation for a backup
            await on(pilot, "FinishedScreen")
            assert "9e8d7c6b" in str(pilot.app.screen.query_one("#result").render())
            await press_button(pilot, "#again")
            await on(pilot, "StartScreen")

    run_async(run())
    assert ("prepare_backup", "/dev/sda", "/media/usb/rescue", "web01") in svc.calls


def test_media_changes_do_not_reload_images_under_a_later_step():
    """A udev event while a later step is on screen (the restore rewriting the target's
    table sends some) must not re-run the image search, which could unmount the
    repository being read; the list reloads when the technician comes back."""
    svc = FixtureServices()

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            select = pilot.app.screen
            await wait_for(pilot, lambda: select.loaded and bool(svc.watchers))
            await press_button(pilot, "#next")
            await on(pilot, "TargetScreen")
            searches = len([c for c in svc.calls if c[0] == "find_images"])
            threading.Thread(target=svc.watchers[0]).start()
            await pilot.pause(1.0)
            assert len([c for c in svc.calls if c[0] == "find_images"]) == searches
            await pilot.press("escape")
            await on(pilot, "SelectImageScreen")
            await wait_for(pilot, lambda: len(
                [c for c in svc.calls if c[0] == "find_images"]) == searches + 1)

    run_async(run())


def test_blocked_verdict_offers_restore_anyway():
    from rescue.wizard.model import VerdictView

    svc = FixtureServices(verdict=VerdictView(
        "blocked", ("firmware: uefi -> bios. The image boots only with UEFI.",), ()))

    async def run() -> None:
        async with make_app(svc).run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            await press_button(pilot, "#next")
            await on(pilot, "TargetScreen")
            screen = pilot.app.screen
            force = screen.query_one("#force")
            await wait_for(pilot, lambda: force.display, what="the force option")
            verdict = str(screen.query_one("#verdict").render())
            assert "not expected to start" in verdict and "UEFI" in verdict
            force.focus()
            await pilot.press("space")
            assert pilot.app.state.options.force
            await press_button(pilot, "#next")
            await on(pilot, "SummaryScreen")
            await wait_for(pilot, lambda: pilot.app.screen.prepared is not None)
            assert "Restore anyway" in str(pilot.app.screen.query_one("#summary").render())

    run_async(run())


def test_wizard_on_services_built_in_the_background():
    """``rescue wizard`` gives the app services built after the first screen is drawn
    (rescue/wizard/deferred.py): the warm-up builds them once, and a whole restore walk
    to the summary works through them."""
    from typing import cast

    from rescue.wizard.deferred import DeferredServices
    from rescue.wizard.ports import Services

    built: list[FixtureServices] = []

    def build() -> FixtureServices:
        built.append(FixtureServices())
        return built[-1]

    deferred = DeferredServices(build)

    async def run() -> None:
        app = RescueApp(cast(Services, deferred), WizardState(), clock=lambda: 100.0,
                        default_backup_name="web01", restart_countdown=0)
        async with app.run_test(size=(80, 24)) as pilot:
            await on(pilot, "LanguageScreen")
            await wait_for(pilot, lambda: deferred.built)  # the warm-up thread
            await to_summary(pilot)

    run_async(run())
    assert len(built) == 1
