# ruff: noqa: F811  (pytest fixtures imported from wizard_fixtures shadow as parameters)
"""The wizard on real parts: the real engine restores a real image onto a loop device,
driven through every screen with the Pilot. Also the real refusals (no image, corrupt
image, target too small) and a real backup."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from loopdev import MiB
from wizard_disks import check_restored
from wizard_fixtures import english, loops, real_backup  # noqa: F401 (fixtures)
from wizard_helpers import press_button, run_async, to_select_image, to_target, wait_for

from rescue.events import Progress
from rescue.runner import DryRunRunner
from rescue.wizard.app import RescueApp
from rescue.wizard.backend import EngineServices
from rescue.wizard.model import WizardState

pytestmark = pytest.mark.root


def services_for(disks: list[str], tmp: Path, **kw) -> EngineServices:
    wanted = set(disks)
    return EngineServices(
        include_loop=True,
        disk_filter=lambda p: p in wanted,
        scan_media=False,
        power_runner=DryRunRunner(),
        log_file=tmp / "wizard.log",
        **kw,
    )




def test_restore_happy_path_onto_loop_device(real_backup, loops, tmp_path):
    target = loops(256 * MiB, "target")
    services = services_for([target], tmp_path)
    app = RescueApp(services, WizardState(locations=[str(real_backup.repo)]),
                    restart_countdown=0)

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.loaded, what="image search")
            info = str(screen.query_one("#latest-info").render())
            assert "demo-pc" in info and str(real_backup.repo) in info
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "TargetScreen")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.loaded, what="disk list")
            # The only eligible disk is pre-selected.
            assert app.state.target is not None and app.state.target.path == target
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "SummaryScreen")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.prepared is not None or screen.error,
                           what="plan")
            assert not screen.error, screen.error
            text = str(screen.query_one("#summary").render())
            assert "demo-pc" in text and "'root'" in text and target in text
            await press_button(pilot, "#finish")  # blank disk: no typed confirmation
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "FinishedScreen",
                           timeout=120, what="restore")
            outcome = app.state.outcome
            assert outcome is not None and outcome.ok, outcome
            assert outcome.verified is True
            result = str(pilot.app.screen.query_one("#result").render())
            assert "restored" in result
            # Restart goes through the injected runner and asks first.
            await press_button(pilot, "#reboot")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "ConfirmDialog")
            await press_button(pilot, "#yes")
            await wait_for(pilot, lambda: ["systemctl", "reboot"] in
                           services.power_runner.log, what="reboot")  # type: ignore[attr-defined]

    try:
        run_async(walk())
    finally:
        services.close()
    check_restored(target, tmp_path)
    log = (tmp_path / "wizard.log").read_text()
    assert "restore report" in log and '"result": "ok"' in log


def test_target_holding_data_needs_typed_confirmation(real_backup, loops, tmp_path):
    from loopdev import partition, sh

    target = loops(256 * MiB, "target")
    nodes = partition(target, "label: gpt\nsize=64MiB\n")
    sh("mkfs.ext4", "-q", "-L", "olddata", nodes[0])
    services = services_for([target], tmp_path)
    app = RescueApp(services, WizardState(locations=[str(real_backup.repo)]),
                    restart_countdown=0)

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_target(pilot)
            assert app.state.target is not None and app.state.target.has_data
            await press_button(pilot, "#next")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.prepared is not None or screen.error)
            assert "olddata" in str(screen.query_one("#summary").render())
            await press_button(pilot, "#finish")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ ==
                           "TypedConfirmDialog")
            dialog = pilot.app.screen
            assert dialog.query_one("#yes").disabled
            await pilot.press(*"wrong")
            assert dialog.query_one("#yes").disabled
            await pilot.press("escape")  # cancel: nothing happens
            await wait_for(pilot, lambda: pilot.app.screen is screen)
            assert app.state.prepared is None

    try:
        run_async(walk())
    finally:
        services.close()
    # Nothing was written: the old filesystem is still there.
    out = __import__("subprocess").run(["blkid", "-p", "-o", "value", "-s", "LABEL", nodes[0]],
                                       capture_output=True, text=True).stdout
    assert "olddata" in out


def summary_error(repo: Path, target: str, tmp: Path) -> str:
    services = services_for([target], tmp)
    app = RescueApp(services, WizardState(locations=[str(repo)]), restart_countdown=0)
    found: dict[str, str] = {}

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_target(pilot)
            await press_button(pilot, "#next")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.prepared is not None or screen.error)
            found["error"] = screen.error
            found["status"] = str(screen.query_one("#status").render())
            assert screen.query_one("#finish").disabled

    try:
        run_async(walk())
    finally:
        services.close()
    return found["error"]


def test_target_too_small_is_refused_with_numbers(real_backup, loops, tmp_path):
    """Too small even with shrinking: the target screen says so with the numbers (the
    planner's sentence) and the disk cannot be chosen, so Next stays off."""
    target = loops(48 * MiB, "small")
    services = services_for([target], tmp_path)
    app = RescueApp(services, WizardState(locations=[str(real_backup.repo)]),
                    restart_countdown=0)

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_target(pilot)
            screen = pilot.app.screen
            await wait_for(pilot, lambda: target in screen.too_small, what="the refusal")
            error = screen.too_small[target]
            assert "Target disk" in error and "need" in error, error
            assert "Use a disk at least that large" in error
            assert app.state.target is None and screen.query_one("#next").disabled

    try:
        run_async(walk())
    finally:
        services.close()


def test_corrupt_image_is_refused(real_backup, loops, tmp_path):
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(real_backup.repo, repo)
    # Remove one chunk: the image can no longer be restored.
    chunk = next(p for p in (repo / "chunks").rglob("*") if p.is_file())
    chunk.unlink()
    target = loops(256 * MiB, "target")
    error = summary_error(repo, target, tmp_path)
    assert "missing" in error and "cannot be restored" in error, error


def test_no_image_found(tmp_path):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    services = services_for([], tmp_path)
    app = RescueApp(services, WizardState(locations=[str(empty)]), restart_countdown=0)

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.loaded)
            assert "No system image was found" in str(screen.query_one("#latest-info").render())
            assert screen.query_one("#next").disabled

    try:
        run_async(walk())
    finally:
        services.close()


def test_backup_through_the_wizard(loops, tmp_path):
    from wizard_disks import build_source

    source = loops(160 * MiB, "source")
    build_source(source, tmp_path)
    repo = tmp_path / "newrepo"
    services = services_for([source], tmp_path)
    app = RescueApp(services, WizardState(), restart_countdown=0,
                    default_backup_name="wizard-backup")

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "StartScreen")
            await press_button(pilot, "#backup")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ ==
                           "BackupSourceScreen")
            await wait_for(pilot, lambda: bool(pilot.app.screen.disks))
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ ==
                           "BackupDestinationScreen")
            pilot.app.screen.query_one("#destination").value = str(repo)
            await press_button(pilot, "#next")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.prepared is not None or screen.error)
            assert not screen.error, screen.error
            await press_button(pilot, "#finish")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "FinishedScreen",
                           timeout=120)
            assert app.state.outcome is not None and app.state.outcome.ok, app.state.outcome

    try:
        run_async(walk())
    finally:
        services.close()
    from rescue.image.repository import Repository

    images = Repository.open(repo).list_images()
    assert [i.name for i in images] == ["wizard-backup"]
    assert images[0].computer == "demo-pc"
    assert json.dumps(images[0].to_dict())


def test_images_appear_when_a_disk_with_a_repository_is_plugged_in(real_backup, tmp_path):
    """Hot-plug for real: a filesystem holding a repository is attached as a loop device
    while the image list is open; the udev monitor, the catalog (read-only mount) and
    the screen bring its image into the list."""
    import subprocess

    from wizard_helpers import wait_for as wait

    stick = tmp_path / "stick.img"
    tree = tmp_path / "stick-tree"
    import shutil

    shutil.copytree(real_backup.repo, tree / "rescue")
    with open(stick, "wb") as f:
        f.truncate(64 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "STICK", "-d", str(tree), str(stick)],
                   check=True, capture_output=True)

    def ours(path: str) -> bool:
        backing = Path(f"/sys/class/block/{Path(path).name}/loop/backing_file")
        return backing.exists() and backing.read_text().strip() == str(stick)

    services = EngineServices(include_loop=True, disk_filter=ours, scan_media=True,
                              power_runner=DryRunRunner(), log_file=tmp_path / "log")
    app = RescueApp(services, WizardState(), restart_countdown=0)
    attached: list[str] = []

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            screen = pilot.app.screen
            await wait(pilot, lambda: screen.loaded and screen.media.watching)
            assert screen.query_one("#images").row_count == 0
            dev = subprocess.run(["losetup", "-f", "--show", str(stick)], check=True,
                                 capture_output=True, text=True).stdout.strip()
            attached.append(dev)
            await wait(pilot, lambda: screen.query_one("#images").row_count == 1,
                       timeout=30, what="the plugged-in image")
            info = str(screen.query_one("#latest-info").render())
            assert "demo-pc" in info and "STICK" in info, info

    try:
        run_async(walk())
    finally:
        services.close()  # unmounts the catalog's read-only mount
        for dev in attached:
            subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_no_eligible_target_on_a_real_inventory(real_backup, tmp_path):
    """Every real disk filtered out (as on a machine with no disk but the stick): the
    target screen says so and Next stays disabled."""
    services = services_for([], tmp_path)
    app = RescueApp(services, WizardState(locations=[str(real_backup.repo)]),
                    restart_countdown=0)

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_select_image(pilot)
            await wait_for(pilot, lambda: pilot.app.screen.loaded)
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "TargetScreen")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.loaded)
            assert "No disk can receive the image" in str(
                screen.query_one("#selection").render())
            assert screen.query_one("#next").disabled and app.state.target is None

    try:
        run_async(walk())
    finally:
        services.close()


class PausingServices(EngineServices):
    """The real engine, paused at its first progress event until the test lets it go:
    the test can press Cancel while the restore is really running."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reached = threading.Event()
        self.release = threading.Event()

    def run_restore(self, prepared, sink, cancel):  # type: ignore[no-untyped-def]
        def paused(event) -> None:  # type: ignore[no-untyped-def]
            sink(event)
            if isinstance(event, Progress) and not self.reached.is_set():
                self.reached.set()
                self.release.wait(60)

        return super().run_restore(prepared, paused, cancel)


def test_cancel_a_real_restore(real_backup, loops, tmp_path):
    target = loops(256 * MiB, "target")
    wanted = {target}
    services = PausingServices(include_loop=True, disk_filter=lambda p: p in wanted,
                               scan_media=False, power_runner=DryRunRunner(),
                               log_file=tmp_path / "wizard.log")
    app = RescueApp(services, WizardState(locations=[str(real_backup.repo)]),
                    restart_countdown=0)

    async def walk() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_target(pilot)
            await press_button(pilot, "#next")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.prepared is not None or screen.error)
            await press_button(pilot, "#finish")
            await wait_for(pilot, lambda: services.reached.is_set(), what="engine running")
            assert type(pilot.app.screen).__name__ == "ProgressScreen"
            await press_button(pilot, "#cancel")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "ConfirmDialog")
            await press_button(pilot, "#yes")
            await wait_for(pilot, lambda: app.state.cancel.is_set())
            services.release.set()
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "FinishedScreen",
                           timeout=60)
            outcome = app.state.outcome
            assert outcome is not None and outcome.cancelled and not outcome.ok, outcome
            text = str(pilot.app.screen.query_one("#result").render())
            assert "The restore was cancelled." in text and "will not start" in text

    try:
        run_async(walk())
    finally:
        services.release.set()
        services.close()
    report = json.loads(services.report_file.read_text())
    assert report["result"] == "cancelled"
    assert report["bytes_written"] < sum(p["data_bytes"] for p in report["plan"]["partitions"])


def test_backup_onto_a_locked_repository_offers_to_break_the_lock(loops, tmp_path):
    """Another machine's writer lock (fresh, so not stale) on the destination: the
    summary says who holds it and offers "Break the lock"; cancelling keeps it, confirming
    breaks it and the backup runs (issue 12, finding 6, in the wizard)."""
    from wizard_disks import build_source

    from rescue.image.repository import LOCK_FILE, Repository

    source = loops(160 * MiB, "source")
    build_source(source, tmp_path)
    repo = tmp_path / "locked"
    Repository.create(repo)
    lock = {"host": "other-pc", "pid": 4242, "boot_id": "b" * 36, "machine_id": "m" * 32,
            "started": "2026-01-01T00:00:00+00:00", "token": "t" * 32}
    (repo / LOCK_FILE).write_text(json.dumps(lock))
    services = services_for([source], tmp_path)
    app = RescueApp(services, WizardState(), restart_countdown=0,
                    default_backup_name="after-break")

    async def walk() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "StartScreen")
            await press_button(pilot, "#backup")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ ==
                           "BackupSourceScreen")
            await wait_for(pilot, lambda: bool(pilot.app.screen.disks))
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ ==
                           "BackupDestinationScreen")
            pilot.app.screen.query_one("#destination").value = str(repo)
            await press_button(pilot, "#next")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.prepared is not None or screen.error)
            assert screen.locked and screen.prepared is None
            status = str(screen.query_one("#status").render())
            assert "other-pc" in status and "Break the lock" in status
            assert screen.query_one("#break-lock").display
            await press_button(pilot, "#break-lock")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "ConfirmDialog")
            await press_button(pilot, "#no")  # not sure after all: nothing changes
            await wait_for(pilot, lambda: pilot.app.screen is screen)
            assert json.loads((repo / LOCK_FILE).read_text())["host"] == "other-pc"
            await pilot.pause(0.3)  # the summary takes the focus back first
            await press_button(pilot, "#break-lock")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "ConfirmDialog")
            await press_button(pilot, "#yes")
            await wait_for(pilot, lambda: screen.prepared is not None or bool(screen.error))
            assert not screen.error, screen.error
            assert json.loads((repo / LOCK_FILE).read_text())["host"] != "other-pc"
            await press_button(pilot, "#finish")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "FinishedScreen",
                           timeout=120)
            assert app.state.outcome is not None and app.state.outcome.ok, app.state.outcome

    try:
        run_async(walk())
    finally:
        services.close()
    assert [i.name for i in Repository.open(repo).list_images()] == ["after-break"]
    assert not (repo / LOCK_FILE).exists()


def test_restore_onto_a_smaller_disk_through_the_wizard(real_backup, loops, tmp_path):
    """Issue 13 in the wizard, on real parts: a target smaller than the image's disk is
    offered; the target screen says the root shrinks and is copied file by file (from
    the planner), the summary shows the plan, and the restore gives a clean root with
    the source's files."""
    target = loops(100 * MiB, "smaller")  # the source disk is 160 MiB
    services = services_for([target], tmp_path)
    app = RescueApp(services, WizardState(locations=[str(real_backup.repo)]),
                    restart_countdown=0)

    async def walk() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await to_select_image(pilot)
            await wait_for(pilot, lambda: pilot.app.screen.loaded)
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "TargetScreen")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.loaded and target in screen.shrinks,
                           what="the fit of the smaller disk")
            selection = str(screen.query_one("#selection").render())
            assert "Partition 2 (ext4) shrinks from 117.4 MB" in selection, selection  # 112 MiB
            assert "copied one by one" in selection
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "SummaryScreen")
            summary = pilot.app.screen
            await wait_for(pilot, lambda: summary.prepared is not None or bool(summary.error))
            assert not summary.error, summary.error
            assert "shrunk from 112.0 MiB" in str(summary.query_one("#status").render())
            await press_button(pilot, "#finish")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "FinishedScreen",
                           timeout=180)
            assert app.state.outcome is not None and app.state.outcome.ok, app.state.outcome

    try:
        run_async(walk())
    finally:
        services.close()
    check_restored(target, tmp_path)
