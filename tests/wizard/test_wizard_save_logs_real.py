# ruff: noqa: F811  (pytest fixtures imported from wizard_fixtures shadow as parameters)
"""Save logs on real parts: a "USB stick" is a loop device on a sparse file with a real
ext4 filesystem (this kernel cannot mount vfat). EngineServices lists it, mounts it
read-write in a private directory, writes the logs, unmounts it; the file is checked
afterwards, and nothing stays mounted or behind in /run, also when saving fails."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from loopdev import MiB, mounted, partition, refresh_partitions, settle, sh
from wizard_fixtures import english, loops  # noqa: F401 (fixtures)

from rescue.devices.mounts import current_mounts, devnum_of
from rescue.errors import DeviceError, NoSpaceError
from rescue.runner import CommandRunner, Result
from rescue.wizard.backend import EngineServices
from rescue.wizard.model import LogMedium

pytestmark = pytest.mark.root

WIZARD_LOG = "2026-11-30T10:14:00+00:00 restore ended: Writing /dev/sda: input/output error\n"
REPORT = '{"result": "failed", "marker": "report-7f3a"}\n'
SENTENCE = re.compile(r"Logs saved to (\S+) 'LOGS' as (rescue-logs-\d{8}T\d{6}Z\.txt); "
                      r"you can remove the stick\.")


def services_for(disk: str, tmp: Path, runner: CommandRunner | None = None) -> EngineServices:
    log = tmp / "wizard.log"
    log.write_text(WIZARD_LOG)
    log.with_name("rescue-restore-report.json").write_text(REPORT)
    return EngineServices(runner=runner, include_loop=True, disk_filter=lambda p: p == disk,
                          scan_media=False, log_file=log)


def make_stick(dev: str, size: str = "", label: str = "LOGS") -> str:
    """An MBR table with one partition holding an ext4 filesystem; its node."""
    nodes = partition(dev, f"label: dos\n{size}type=83\n")
    sh("mkfs.ext4", "-q", "-F", "-L", label, nodes[0])
    settle()
    return nodes[0]


def mounted_devnums() -> set[int]:
    return {m.devnum for m in current_mounts()}


def private_dirs() -> set[str]:
    return {p.name for p in Path("/run").iterdir() if p.name.startswith("rescue-logs-")}


def section(text: str, title: str) -> str:
    start = text.index(f"===== {title}")
    body = text[text.index("\n", start) + 1:]
    end = body.find("\n===== ")
    return body if end < 0 else body[:end]


def test_save_logs_onto_a_usb_stick(loops, tmp_path):
    dev = loops(64 * MiB, "stick")
    part = make_stick(dev)
    svc = services_for(dev, tmp_path)
    before = private_dirs()

    media = svc.log_media([])
    assert [m.device for m in media] == [part]
    medium = media[0]
    assert medium.fstype == "ext4" and medium.label == "LOGS" and not medium.mountpoint
    assert re.fullmatch(r"loop\d+p1 'LOGS' \(ext4, loop, 6\d\.\d MB\)", medium.title())
    # The restore target is never offered.
    assert svc.log_media([dev]) == []

    sentence = svc.save_logs(medium)
    m = SENTENCE.fullmatch(sentence)
    assert m, sentence
    assert m.group(1) == Path(part).name
    # Nothing stays mounted, no private directory is left.
    assert devnum_of(part) not in mounted_devnums()
    assert private_dirs() == before

    with mounted(part, tmp_path / "check", "ro") as mnt:
        files = sorted(p.name for p in mnt.iterdir() if p.name != "lost+found")
        assert files == [m.group(2)]
        text = (mnt / m.group(2)).read_text()
    assert WIZARD_LOG.strip() in section(text, "wizard log")
    assert "report-7f3a" in section(text, "restore report")
    assert "journalctl -b" in text and "dmesg" in text
    inventory = json.loads(section(text, "disks (inventory)"))
    disk = next(d for d in inventory["disks"] if d["path"] == dev)
    assert [p["path"] for p in disk["partitions"]] == [part]
    assert "cpu" in json.loads(section(text, "hardware profile"))
    assert "logs saved" in (tmp_path / "wizard.log").read_text()


def test_a_stick_mounted_read_write_is_used_where_it_is(loops, tmp_path):
    dev = loops(64 * MiB, "stick")
    part = make_stick(dev)
    svc = services_for(dev, tmp_path)
    with mounted(part, tmp_path / "media") as mnt:
        [medium] = svc.log_media([])
        assert medium.mountpoint == str(mnt)
        sentence = svc.save_logs(medium)
        assert f"(mounted on {mnt})" in sentence
        # Left mounted where it was, the file is there.
        assert devnum_of(part) in mounted_devnums()
        assert len(list(mnt.glob("rescue-logs-*.txt"))) == 1


def test_read_only_mounts_and_read_only_disks_are_not_offered(loops, tmp_path):
    dev = loops(64 * MiB, "stick")
    part = make_stick(dev)
    svc = services_for(dev, tmp_path)
    [medium] = svc.log_media([])
    # Mounted read-only (as the image search mounts what it reads): not offered, and a
    # stale choice is refused with a sentence before anything is mounted.
    with mounted(part, tmp_path / "catalog", "ro"):
        assert svc.log_media([]) == []
        with pytest.raises(DeviceError, match="read-only, mounted read-only or in use"):
            svc.save_logs(medium)
    # The whole loop device read-only (a write-protected stick).
    sh("blockdev", "--setro", dev)
    try:
        for p in refresh_partitions(dev):
            sh("blockdev", "--setro", p)
        assert svc.log_media([]) == []
        before = private_dirs()
        with pytest.raises(DeviceError, match="read-only"):
            svc.save_logs(medium)
        assert private_dirs() == before and devnum_of(part) not in mounted_devnums()
    finally:
        for p in (part, dev):
            subprocess.run(["blockdev", "--setrw", p], capture_output=True)


def test_the_stick_holding_the_images_takes_the_logs_too(loops, tmp_path):
    """One stick in the field: the image search has it mounted read-only; Save logs lets
    go of the search's mounts, saves, and the next search finds the images again."""
    from rescue.image.repository import Repository

    dev = loops(64 * MiB, "stick")
    part = make_stick(dev)
    with mounted(part, tmp_path / "prep") as mnt:
        Repository.create(mnt / "rescue")
    log = tmp_path / "wizard.log"
    log.write_text(WIZARD_LOG)
    svc = EngineServices(include_loop=True, disk_filter=lambda p: p == dev, log_file=log)
    try:
        assert svc.find_images([]) == []  # searched: the stick is mounted read-only now
        assert devnum_of(part) in mounted_devnums()
        [medium] = svc.log_media([])
        assert medium.device == part and not medium.mountpoint
        sentence = svc.save_logs(medium)
        assert SENTENCE.fullmatch(sentence), sentence
        assert devnum_of(part) not in mounted_devnums()
        assert "releasing the image search's mounts" in log.read_text()
        svc.find_images([])  # a new search mounts it again, read-only
        assert devnum_of(part) in mounted_devnums()
    finally:
        svc.close()
    assert devnum_of(part) not in mounted_devnums()
    with mounted(part, tmp_path / "check", "ro") as mnt:
        assert len(list(mnt.glob("rescue-logs-*.txt"))) == 1
        assert (mnt / "rescue" / "rescue-repository.json").is_file()


class FailingMount(CommandRunner):
    """The real runner, except that mounting fails the way a damaged stick does."""

    def run(self, argv, **kwargs) -> Result:  # type: ignore[override]
        if list(argv)[:1] == ["mount"] and not kwargs.get("check", True):
            return Result([str(a) for a in argv], 32, "",
                          "mount: /run/x: wrong fs type, bad option, bad superblock on "
                          f"{argv[-2]}, missing codepage or helper program, or other error.\n")
        return super().run(argv, **kwargs)


def test_a_failing_mount_gives_a_sentence_and_leaves_nothing_behind(loops, tmp_path):
    dev = loops(64 * MiB, "stick")
    part = make_stick(dev)
    svc = services_for(dev, tmp_path, runner=FailingMount())
    [medium] = svc.log_media([])
    before = private_dirs()
    with pytest.raises(DeviceError) as err:
        svc.save_logs(medium)
    text = str(err.value)
    assert text.startswith(f"{Path(part).name} 'LOGS' (ext4) could not be mounted to save "
                           "the logs: mount: /run/x: wrong fs type"), text
    assert text.endswith("Try another USB stick, or type a folder.")
    assert private_dirs() == before
    assert devnum_of(part) not in mounted_devnums()


def test_a_full_stick_gives_a_sentence_and_no_half_file(loops, tmp_path):
    dev = loops(64 * MiB, "stick")
    part = make_stick(dev, size="size=4MiB, ")
    svc = services_for(dev, tmp_path)
    # More log than the 4 MiB filesystem holds.
    with (tmp_path / "wizard.log").open("a") as f:
        for _ in range(80_000):
            f.write("restore progress " + "x" * 62 + "\n")
    [medium] = svc.log_media([])
    before = private_dirs()
    with pytest.raises(NoSpaceError, match=r"Saving the logs to .* 'LOGS': the destination "
                                           r"is full"):
        svc.save_logs(medium)
    assert private_dirs() == before and devnum_of(part) not in mounted_devnums()
    with mounted(part, tmp_path / "check", "ro") as mnt:
        assert not list(mnt.glob("rescue-logs-*"))


def test_a_stick_pulled_out_after_choosing_is_refused(tmp_path):
    svc = EngineServices(include_loop=True, disk_filter=lambda p: False, scan_media=False,
                         log_file=tmp_path / "wizard.log")
    gone = LogMedium("/dev/sdz9", "sdz9", "vfat", "LOGS", "1234-ABCD", "usb", 16 * 10**9)
    with pytest.raises(DeviceError, match="sdz9 'LOGS' is not attached any more"):
        svc.save_logs(gone)
