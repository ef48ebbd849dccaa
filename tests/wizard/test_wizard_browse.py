# ruff: noqa: F811  (pytest fixtures imported from wizard_fixtures shadow as parameters)
"""The repair tool "Browse files in a system image" on fixture services: the image opened
when the tool opens and closed whenever it goes, folders walked with Enter and
Backspace/Esc, marks with Space, the copy's destination (the Save logs choice), the
result sentence and the errors. The real engine: test_wizard_browse_real.py."""

from __future__ import annotations

import threading

from textual.widgets import DataTable
from wizard_fakes import IMAGES, LOG_MEDIA, FixtureServices
from wizard_fixtures import english  # noqa: F401 (fixtures)
from wizard_helpers import on, press_button, run_async, to_repair, wait_for

from rescue.errors import DeviceError, SignatureRefusedError
from rescue.wizard.app import RescueApp
from rescue.wizard.model import WizardState


def make_app(services: FixtureServices) -> RescueApp:
    return RescueApp(services, WizardState(), restart_countdown=0, clock=lambda: 100.0)


async def to_browse(pilot) -> None:
    """Repair options -> "Browse files in a system image" -> the latest image -> open."""
    await to_repair(pilot)
    await pilot.press("down", "down", "enter")  # restore, back up, browse
    await on(pilot, "SelectImageScreen")
    await wait_for(pilot, lambda: pilot.app.screen.loaded, what="image search")
    await press_button(pilot, "#next")
    await on(pilot, "BrowseScreen")
    await wait_for(pilot, lambda: pilot.app.screen.loaded, what="image opened")


def rows(pilot) -> list[str]:
    table = pilot.app.screen.query_one("#files", DataTable)
    return [" ".join(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]


def names(pilot) -> list[str]:
    return [e.name for e in pilot.app.screen.entries]


def text(pilot, selector: str) -> str:
    return str(pilot.app.screen.query_one(selector).render())


async def cursor_to(pilot, entry_name: str) -> None:
    index = names(pilot).index(entry_name)
    pilot.app.screen.query_one("#files", DataTable).move_cursor(row=index)
    await pilot.pause()


async def enter_folder(pilot, entry_name: str) -> None:
    await cursor_to(pilot, entry_name)
    screen = pilot.app.screen
    await pilot.press("enter")
    await wait_for(pilot, lambda: not screen.listing and entry_name in screen.where_text(
        ) or entry_name in screen.part_title(), what=f"folder {entry_name}")


def test_open_walk_and_leave_closes_the_image():
    services = FixtureServices()
    app = make_app(services)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_browse(pilot)
            assert app.state.action == "browse"
            assert "Step 5 of 5" in text(pilot, "#title")
            assert services.open_images == [IMAGES[0].id]  # the latest image
            # The top: the image's partitions; swap cannot be opened and says why.
            assert names(pilot) == ["p1: vfat 'EFI'", "p2: ext4 'root'", "p3: swap"]
            assert "not opened" in rows(pilot)[2]
            await cursor_to(pilot, "p3: swap")
            assert "nothing of it is stored" in text(pilot, "#status")
            await pilot.press("enter")  # nothing happens
            assert pilot.app.screen.part == ""
            # Enter opens p2, then home, then anna; size and date shown.
            await enter_folder(pilot, "p2: ext4 'root'")
            assert names(pilot) == ["etc", "home", "vmlinuz"]
            assert rows(pilot)[0].startswith("[ ] etc/")
            assert rows(pilot)[2].startswith("[ ] vmlinuz@")
            await enter_folder(pilot, "home")
            await enter_folder(pilot, "anna")
            assert "/home/anna" in text(pilot, "#where")
            assert names(pilot) == ["Documents", "photos", ".bashrc", "thesis.odt"]
            thesis = rows(pilot)[3]
            assert "2.5 MB" in thesis and "10/30/2026" in thesis, thesis
            # Backspace goes up, the cursor on the folder we came from; Esc too.
            await pilot.press("backspace")
            await wait_for(pilot, lambda: names(pilot) == ["anna"], what="up to home")
            await pilot.press("escape")
            await wait_for(pilot, lambda: "etc" in names(pilot), what="up to p2's top")
            assert pilot.app.screen.query_one("#files", DataTable).cursor_row == 1
            await pilot.press("escape")
            await wait_for(pilot, lambda: pilot.app.screen.part == "", what="partitions")
            assert pilot.app.screen.query_one("#files", DataTable).cursor_row == 1
            # Esc at the top leaves the tool: the image is closed.
            await pilot.press("escape")
            await on(pilot, "SelectImageScreen")
            assert services.open_images == []
            assert ("close_image", IMAGES[0].id) in services.calls

    run_async(run())


def test_mark_and_copy_to_a_stick():
    services = FixtureServices()
    app = make_app(services)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_browse(pilot)
            await enter_folder(pilot, "p2: ext4 'root'")
            await enter_folder(pilot, "home")
            await enter_folder(pilot, "anna")
            assert pilot.app.screen.query_one("#copy").disabled
            await cursor_to(pilot, "photos")
            await pilot.press("space")  # marks it and moves down
            assert rows(pilot)[1].startswith("[X] photos/")
            await cursor_to(pilot, "thesis.odt")
            await pilot.press("space")
            await cursor_to(pilot, ".bashrc")
            await pilot.press("space", "up", "space")  # marked, then unmarked again
            assert rows(pilot)[2].startswith("[ ]")
            assert "Marked: 2 (2.5 MB in files" in text(pilot, "#status")
            # Marks stay when walking elsewhere.
            await pilot.press("backspace")
            await wait_for(pilot, lambda: names(pilot) == ["anna"], what="up")
            await enter_folder(pilot, "anna")
            assert rows(pilot)[1].startswith("[X]") and rows(pilot)[3].startswith("[X]")
            await press_button(pilot, "#copy")
            await on(pilot, "SaveLogsDialog")
            dialog = pilot.app.screen
            await wait_for(pilot, lambda: dialog.loaded, what="media")
            assert "Copy the marked files" in str(dialog.query_one(".dialog-title").render())
            assert ("copy_media", ()) in services.calls
            await pilot.press("enter")  # the first: the USB stick
            await on(pilot, "TextDialog")
            assert pilot.app.screen.title_text == "Files copied"
            result = text(pilot, "#text")
            assert "Copied to sdd1 'LOGS', in the folder rescue-files-3f9a1c2b" in result
            call = next(c for c in services.calls if c[0] == "copy_files")
            assert call == ("copy_files", ("p2/home/anna/photos", "p2/home/anna/thesis.odt"),
                            LOG_MEDIA[0].device)
            await press_button(pilot, "#yes")
            await on(pilot, "BrowseScreen")
            # A copy that went through clears the marks.
            assert not pilot.app.screen.marked
            assert rows(pilot)[1].startswith("[ ]")

    run_async(run())


def test_copy_to_a_typed_folder_and_a_partial_failure():
    services = FixtureServices(copy_failed=["p2/etc/fstab: read error (Input/output error)"])
    app = make_app(services)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_browse(pilot)
            await enter_folder(pilot, "p2: ext4 'root'")
            await enter_folder(pilot, "etc")
            await pilot.press("enter")  # Enter on a file marks it too
            assert rows(pilot)[0].startswith("[X] fstab")
            await press_button(pilot, "#copy")
            await on(pilot, "SaveLogsDialog")
            dialog = pilot.app.screen
            await wait_for(pilot, lambda: dialog.loaded, what="media")
            await pilot.press("end", "enter")  # "Type a folder…"
            await on(pilot, "InputDialog")
            assert "Copy the files to which folder?" in str(
                pilot.app.screen.query_one(".dialog-text").render())
            await pilot.press(*"/media/usb", "enter")
            await on(pilot, "TextDialog")
            assert pilot.app.screen.title_text == "Copied, with problems"
            result = text(pilot, "#text")
            assert "1 could not be copied:" in result and "read error" in result
            call = next(c for c in services.calls if c[0] == "copy_files")
            assert call[2] == "/media/usb"
            await press_button(pilot, "#yes")
            # Marks stay for another try.
            assert pilot.app.screen.marked

    run_async(run())


def test_errors_are_sentences():
    services = FixtureServices(copy_error=DeviceError("sdd1 'LOGS' is read-only (is the "
                                                      "stick's write-protect switch on?)"),
                               list_error=None)
    app = make_app(services)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_browse(pilot)
            await enter_folder(pilot, "p2: ext4 'root'")
            await pilot.press("space")
            await press_button(pilot, "#copy")
            await on(pilot, "SaveLogsDialog")
            dialog = pilot.app.screen
            await wait_for(pilot, lambda: dialog.loaded, what="media")
            await pilot.press("enter")
            await on(pilot, "TextDialog")
            assert pilot.app.screen.title_text == "Nothing was copied"
            assert "write-protect" in text(pilot, "#text")
            await press_button(pilot, "#yes")
            await on(pilot, "BrowseScreen")
            # A folder that cannot be read: a notification, the screen stays where it was.
            services.list_error = DeviceError("The folder p2/home of the image cannot be "
                                              "read: Input/output error")
            await cursor_to(pilot, "home")
            await pilot.press("enter")
            await wait_for(pilot, lambda: not pilot.app.screen.listing, what="listing")
            await pilot.pause(0.1)
            assert names(pilot) == ["etc", "home", "vmlinuz"]
            assert any("cannot be read" in str(n.message) for n in app._notifications)
            # Cancelling the destination copies nothing.
            calls = len([c for c in services.calls if c[0] == "copy_files"])
            await press_button(pilot, "#copy")
            await on(pilot, "SaveLogsDialog")
            await pilot.press("escape")
            await on(pilot, "BrowseScreen")
            assert len([c for c in services.calls if c[0] == "copy_files"]) == calls

    run_async(run())


def test_an_image_that_cannot_be_opened():
    services = FixtureServices(open_error=SignatureRefusedError(
        "Image 3f9a1c2b is not signed by a trusted key; it is not opened."))
    app = make_app(services)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_browse(pilot)
            assert "not signed by a trusted key" in text(pilot, "#status")
            assert names(pilot) == []
            await pilot.press("escape")
            await on(pilot, "SelectImageScreen")
            assert not any(c[0] == "close_image" for c in services.calls)

    run_async(run())


def test_esc_stops_a_running_copy_and_leaving_closes_the_image():
    block = threading.Event()
    services = FixtureServices(block_copy=block)
    app = make_app(services)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_browse(pilot)
            await enter_folder(pilot, "p2: ext4 'root'")
            await pilot.press("space")
            await press_button(pilot, "#copy")
            await on(pilot, "SaveLogsDialog")
            dialog = pilot.app.screen
            await wait_for(pilot, lambda: dialog.loaded, what="media")
            await pilot.press("enter")
            await on(pilot, "BrowseScreen")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: "Copying" in text(pilot, "#status"), what="copy")
            assert screen.query_one("#bar").display
            await pilot.press("escape")  # stops the copy, stays in the folder
            await on(pilot, "TextDialog")
            assert "The copy stopped" in text(pilot, "#text")
            await press_button(pilot, "#yes")
            await on(pilot, "BrowseScreen")
            assert screen.part == "p2"
            await press_button(pilot, "#back")
            await on(pilot, "SelectImageScreen")
            assert services.open_images == []

    run_async(run())


def test_the_app_ending_while_browsing_closes_the_image():
    services = FixtureServices()
    app = make_app(services)

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_browse(pilot)
            await enter_folder(pilot, "p2: ext4 'root'")
            assert services.open_images == [IMAGES[0].id]
            await pilot.press("ctrl+q")
        assert services.open_images == []

    run_async(run())
