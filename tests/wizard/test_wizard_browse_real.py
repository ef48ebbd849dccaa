# ruff: noqa: F811  (pytest fixtures imported from wizard_fixtures shadow as parameters)
""""Browse files in a system image" on real parts: the real engine mounts a real backup
(FUSE, read-only loop devices, the ext4 root mounted read-only), the Pilot walks its
folders, marks a file and a folder and copies them onto a "USB stick" (a loop device with
a real ext4 filesystem); the copies' bytes, modes and times are checked on the stick, and
nothing of the image stays mounted after leaving the tool, nor after the app is closed
while browsing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from loopdev import MiB, mounted, partition, settle, sh
from textual.widgets import DataTable
from wizard_disks import FILES
from wizard_fixtures import english, loops, real_backup  # noqa: F401 (fixtures)
from wizard_helpers import on, press_button, run_async, to_repair, wait_for

from rescue.devices.mounts import current_mounts, devnum_of
from rescue.runner import DryRunRunner
from rescue.wizard.app import RescueApp
from rescue.wizard.backend import EngineServices
from rescue.wizard.model import WizardState

pytestmark = pytest.mark.root


def make_stick(dev: str) -> str:
    nodes = partition(dev, "label: dos\ntype=83\n")
    sh("mkfs.ext4", "-q", "-F", "-L", "STICK", nodes[0])
    settle()
    return nodes[0]


def image_mounts() -> list[str]:
    """FUSE mounts of images and anything mounted in a browse folder."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = line.split(" - ", 1)[1].split()[0]
            if fstype.startswith("fuse.rescue") or "/rescue-browse-" in fields[4]:
                found.append(fields[4])
    return found


def browse_loops() -> list[str]:
    """Loop devices whose backing file is a partition file of a browsed image."""
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if "/rescue-browse-" in backing.read_text():
                found.append(backing.parent.parent.name)
        except OSError:
            pass
    return found


def leftovers() -> list[str]:
    return (image_mounts() + browse_loops()
            + [p.name for p in Path("/run").iterdir()
               if p.name.startswith(("rescue-browse-", "rescue-files-"))])


def names(pilot) -> list[str]:
    return [e.name for e in pilot.app.screen.entries]


async def open_entry(pilot, entry: str) -> None:
    screen = pilot.app.screen
    screen.query_one("#files", DataTable).move_cursor(row=names(pilot).index(entry))
    await pilot.pause()
    before = (screen.part, screen.path)
    await pilot.press("enter")
    await wait_for(pilot, lambda: (screen.part, screen.path) != before and not screen.listing,
                   what=f"open {entry}")


async def mark(pilot, entry: str) -> None:
    pilot.app.screen.query_one("#files", DataTable).move_cursor(row=names(pilot).index(entry))
    await pilot.pause()
    await pilot.press("space")


async def to_browse(pilot) -> None:
    await to_repair(pilot)
    await pilot.press("down", "down", "enter")
    await on(pilot, "SelectImageScreen")
    await wait_for(pilot, lambda: pilot.app.screen.loaded, what="image search")
    await press_button(pilot, "#next")
    await on(pilot, "BrowseScreen")
    await wait_for(pilot, lambda: pilot.app.screen.loaded, timeout=60, what="image opened")
    assert not pilot.app.screen.error, pilot.app.screen.error


def test_browse_mark_copy_to_a_stick_and_unmount(real_backup, loops, tmp_path):
    assert not leftovers(), leftovers()
    dev = loops(64 * MiB, "stick")
    part = make_stick(dev)
    services = EngineServices(include_loop=True, disk_filter=lambda p: p == dev,
                              scan_media=False, power_runner=DryRunRunner(),
                              log_file=tmp_path / "wizard.log")
    app = RescueApp(services, WizardState(locations=[str(real_backup.repo)]),
                    restart_countdown=0)
    expected: dict[str, os.stat_result] = {}

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_browse(pilot)
            screen = pilot.app.screen
            root = next(e.name for e in screen.entries if "ext4" in e.name)
            assert any("swap" in e.name and e.note for e in screen.entries)
            await open_entry(pilot, root)
            assert {"etc", "home", "usr"} <= set(names(pilot))
            assert image_mounts(), "the image is mounted while the tool is open"
            # What the copies must look like: the image's own files, as mounted.
            mounted_root = next(v.mounted for s in services._browsing.values()
                                for v in s.mount.views if v.mounted)
            for rel in ("etc/hostname", "home/user", "home/user/notes.txt"):
                expected[rel] = os.lstat(os.path.join(mounted_root, rel))
            await open_entry(pilot, "etc")
            await mark(pilot, "hostname")
            await pilot.press("backspace")
            await wait_for(pilot, lambda: screen.path == "" and "home" in names(pilot),
                           what="up")
            await open_entry(pilot, "home")
            await mark(pilot, "user")
            assert len(screen.marked) == 2
            await press_button(pilot, "#copy")
            await on(pilot, "SaveLogsDialog")
            dialog = pilot.app.screen
            await wait_for(pilot, lambda: dialog.loaded, what="the stick listed")
            assert [m.device for m in dialog.media] == [part]
            await pilot.press("enter")
            await on(pilot, "TextDialog", timeout=120)
            result = str(pilot.app.screen.query_one("#text").render())
            assert pilot.app.screen.title_text == "Files copied", result
            folder = f"rescue-files-{real_backup.image_id}"
            assert f"in the folder {folder}: 2 file(s), 1 folder(s)" in result, result
            assert "You can remove the stick." in result
            await press_button(pilot, "#yes")
            await on(pilot, "BrowseScreen")
            # The stick is unmounted again; the image stays open until the tool is left.
            assert devnum_of(part) not in {m.devnum for m in current_mounts()}
            assert image_mounts()
            await pilot.press("escape")  # up to the top of p2
            await wait_for(pilot, lambda: screen.path == "" and not screen.listing,
                           what="up")
            await pilot.press("escape")  # up to the partitions
            await wait_for(pilot, lambda: screen.part == "", what="partitions")
            await pilot.press("escape")  # and out: the image is unmounted
            await on(pilot, "SelectImageScreen")
            assert not leftovers(), leftovers()

    run_async(walk())
    assert not services._browsing
    with mounted(part, tmp_path / "check", "ro") as mnt:
        top = mnt / f"rescue-files-{real_backup.image_id}" / "p2"
        assert sorted(str(p.relative_to(top)) for p in top.rglob("*")) == [
            "etc", "etc/hostname", "home", "home/user", "home/user/notes.txt"]
        for rel, info in expected.items():
            copy = os.lstat(top / rel)
            assert stat.S_IMODE(copy.st_mode) == stat.S_IMODE(info.st_mode), rel
            assert copy.st_mtime_ns == info.st_mtime_ns, rel
            assert (copy.st_uid, copy.st_gid) == (info.st_uid, info.st_gid), rel
        for rel in ("etc/hostname", "home/user/notes.txt"):
            assert (top / rel).read_bytes() == FILES[rel], rel
    services.close()


def test_closing_the_app_while_browsing_unmounts_the_image(real_backup, tmp_path):
    assert not leftovers(), leftovers()
    cwd = os.getcwd()
    services = EngineServices(include_loop=True, disk_filter=lambda p: False,
                              scan_media=False, power_runner=DryRunRunner(),
                              log_file=tmp_path / "wizard.log")
    app = RescueApp(services, WizardState(locations=[str(real_backup.repo)]),
                    restart_countdown=0)

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_browse(pilot)
            root = next(e.name for e in pilot.app.screen.entries if "ext4" in e.name)
            await open_entry(pilot, root)
            await open_entry(pilot, "home")
            assert image_mounts() and browse_loops()
            # the process's working folder is not moved by the mount (libfuse's
            # daemonize goes to /; ImageMount puts it back)
            assert os.getcwd() == cwd
            await pilot.press("ctrl+q")  # the app ends with the image open

    run_async(walk())
    try:
        assert not leftovers(), leftovers()
        assert not services._browsing
    finally:
        services.close()
