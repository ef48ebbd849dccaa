"""rescue make-usb: boot-menu customisation (pure) and a real image file on a tiny ISO."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rescue.commands.make_usb import (
    DATA_LABEL,
    UsbJob,
    UsbWriter,
    base_append,
    custom_menus,
    data_size_for,
    parse_size,
    without_menu_default,
)
from rescue.errors import UsageError
from rescue.runner import CommandRunner

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
