"""rescue make-usb: boot-menu customisation (pure), the refusals of the plan step (before
anything is written or asked) and a real image file on a tiny ISO."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from rescue.commands import make_usb
from rescue.commands.make_usb import parse_size
from rescue.engine import usbstick
from rescue.engine.usbstick import (
    DATA_LABEL,
    UsbJob,
    UsbWriter,
    base_append,
    custom_menus,
    data_size_for,
    plan_usb,
    without_menu_default,
)
from rescue.errors import TargetRefusedError, UsageError
from rescue.runner import CommandRunner, Result

GRUB = """set timeout=5
menuentry "Rescue" --id rescue {
\tlinux /live/vmlinuz boot=live components quiet
\tinitrd /live/initrd.img
}
menuentry "Rescue to a shell" --id shell {
\tlinux /live/vmlinuz boot=live components quiet rescue_console=shell
}
"""
ISOLINUX = """label rescue
\tmenu label ^Rescue
\tmenu default
\tappend boot=live components quiet
include custom.cfg
"""


def test_parse_size() -> None:
    assert parse_size("512M") == 512 << 20
    assert parse_size("2G") == 2 << 30
    assert parse_size("1.5GiB") == 3 << 29
    assert parse_size("4096") == 4096
    with pytest.raises(UsageError):
        parse_size("lots")


def test_data_size_leaves_room_and_is_mib_aligned() -> None:
    size = data_size_for(1000 << 20)
    assert size >= (1000 << 20) * 5 // 4 + (512 << 20)
    assert size % (1 << 20) == 0


def test_base_append_reads_the_first_rescue_entry() -> None:
    assert base_append(GRUB) == "boot=live components quiet"
    with pytest.raises(UsageError):
        base_append("menuentry x { }")


def test_custom_entry_becomes_the_default_in_both_menus() -> None:
    iso, grub = custom_menus("boot=live rescue.image=latest", "Rescue (unattended)")
    assert "menu default" in iso and "append boot=live rescue.image=latest" in iso
    assert "set default=custom" in grub and "--id custom" in grub
    assert "linux /live/vmlinuz boot=live rescue.image=latest" in grub
    stripped = without_menu_default(ISOLINUX)
    assert "menu default" not in stripped and "include custom.cfg" in stripped


def test_custom_entry_refuses_quotes() -> None:
    with pytest.raises(UsageError):
        custom_menus('quiet"; reboot', "x")


@pytest.mark.skipif(shutil.which("xorriso") is None,
                    reason="xorriso is not installed (make iso-apt installs it)")
def test_image_file_has_live_iso_and_data_partition_with_repo(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "boot/grub").mkdir(parents=True)
    (tree / "isolinux").mkdir()
    (tree / "boot/grub/grub.cfg").write_text(GRUB)
    (tree / "isolinux/isolinux.cfg").write_text(ISOLINUX)
    iso = tmp_path / "tiny.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-o", str(iso), str(tree)],
                   check=True)
    repo = tmp_path / "repo"
    (repo / "images").mkdir(parents=True)
    (repo / "images/manifest.json").write_text('{"magic": "test"}')
    out = tmp_path / "usb.img"
    messages: list[str] = []
    job = UsbJob(iso=str(iso), target=out, repo=repo, size=16 << 20,
                 append="rescue.image=latest console=ttyS0")
    UsbWriter(CommandRunner(), say=messages.append).write(job)

    table = json.loads(subprocess.run(["sfdisk", "-J", str(out)], capture_output=True,
                                      text=True, check=True).stdout)["partitiontable"]
    data = [p for p in table["partitions"] if p["node"].endswith("3")]
    assert len(data) == 1 and data[0]["type"] == "83"
    offset = data[0]["start"] * 512
    assert data[0]["size"] * 512 >= 16 << 20
    # The data partition is an ext4 labelled RESCUE-DATA holding the repository.
    part = tmp_path / "part.ext4"
    with out.open("rb") as src, part.open("wb") as dst:
        src.seek(offset)
        dst.write(src.read(data[0]["size"] * 512))
    label = subprocess.run(["e2label", str(part)], capture_output=True, text=True, check=True)
    assert label.stdout.strip() == DATA_LABEL
    cat = subprocess.run(["debugfs", "-R", "cat /images/manifest.json", str(part)],
                         capture_output=True, text=True, check=True)
    assert cat.stdout == '{"magic": "test"}'
    # The custom entry is the default and keeps the ISO's own parameters.
    grub = subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(out), "-extract",
                           "/boot/grub/custom.cfg", str(tmp_path / "custom.cfg")],
                          capture_output=True, text=True)
    assert grub.returncode == 0, grub.stderr
    custom = (tmp_path / "custom.cfg").read_text()
    assert "boot=live components quiet rescue.image=latest console=ttyS0" in custom
    assert "set default=custom" in custom


class ScriptedRunner(CommandRunner):
    """Answers lsblk/findmnt from a table; any other command fails the test."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.log: list[list[str]] = []

    def run(self, argv: Sequence[str], **kwargs: object) -> Result:
        args = [str(a) for a in argv]
        self.log.append(args)
        key = " ".join(args)
        assert args[0] in ("lsblk", "findmnt"), f"plan_usb ran {key}"
        return Result(args, 0, self.answers.get(key, ""), "")


def test_plan_refuses_a_mounted_stick_before_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usbstick, "is_block_device", lambda p: str(p).startswith("/dev/"))
    runner = ScriptedRunner({"lsblk -nrpo NAME,MOUNTPOINT /dev/sdz":
                             "/dev/sdz \n/dev/sdz1 /media/stick\n"})
    with pytest.raises(TargetRefusedError, match="/dev/sdz1 is mounted on /media/stick"):
        plan_usb(UsbJob(iso="/srv/rescue.iso", target=Path("/dev/sdz")), runner)


def test_plan_refuses_the_boot_medium_and_the_repository_disk(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(usbstick, "is_block_device", lambda p: str(p).startswith("/dev/"))
    lsblk = "lsblk -nrpo NAME,MOUNTPOINT /dev/sdz"
    boot = ScriptedRunner({lsblk: "/dev/sdz \n", "lsblk -ndpo PKNAME /dev/sdz1": "/dev/sdz\n"})
    with pytest.raises(TargetRefusedError, match="boot medium"):
        plan_usb(UsbJob(iso="/dev/sdz1", target=Path("/dev/sdz")), boot)
    repo = tmp_path / "repo"
    repo.mkdir()
    holder = ScriptedRunner({lsblk: "/dev/sdz \n",
                             f"findmnt -nvo SOURCE -T {repo}": "/dev/sdz2\n",
                             "lsblk -ndpo PKNAME /dev/sdz2": "/dev/sdz\n"})
    with pytest.raises(TargetRefusedError, match="holding the repository"):
        plan_usb(UsbJob(iso=str(tmp_path / "x.iso"), target=Path("/dev/sdz"), repo=repo),
                 holder)


def test_plan_for_an_image_file_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "usb.img"
    target.write_bytes(b"old")
    runner = ScriptedRunner({})
    with pytest.raises(UsageError, match="not a directory"):
        plan_usb(UsbJob(iso="x.iso", target=target, repo=tmp_path / "missing"), runner)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "blob").write_bytes(b"x" * 4096)
    plan = plan_usb(UsbJob(iso="x.iso", target=target, repo=repo), runner)
    assert not plan.device and plan.data_size == data_size_for(4096)
    assert plan.menus == {} and plan.append == ""
    assert plan_usb(UsbJob(iso="x.iso", target=target, iso_only=True), runner).data_size is None
    assert target.read_bytes() == b"old" and runner.log == []


def test_command_refuses_before_asking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usbstick, "is_block_device", lambda p: str(p).startswith("/dev/"))
    runner = ScriptedRunner({"lsblk -nrpo NAME,MOUNTPOINT /dev/sdz": "/dev/sdz1 /mnt\n"})
    monkeypatch.setattr(make_usb, "CommandRunner", lambda: runner)
    monkeypatch.setattr(make_usb.shutil, "which", lambda _name: "/usr/bin/xorriso")
    monkeypatch.setattr("builtins.input", lambda _prompt: pytest.fail("asked before refusing"))
    args = argparse.Namespace(iso=__file__, target="/dev/sdz", repo=None, size=None,
                              append="", title="t", iso_only=False, label=DATA_LABEL, yes=False)
    with pytest.raises(TargetRefusedError):
        make_usb.cmd_make_usb(args)
