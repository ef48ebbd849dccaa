"""`make usb` / `rescue make-usb` with the real ISO: a stick image file and a stick
(a loop device) each get the live system plus an ext4 data partition holding the
repository; the image keeps both boot paths and boots from USB under UEFI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from isoqemu import Machine
from loopdev import loop_device

from rescue.engine.usbstick import DATA_LABEL

pytestmark = pytest.mark.qemu

MiB = 1024 * 1024


def sh(*argv: str) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    assert proc.returncode == 0, f"{argv} failed: {proc.stderr}"
    return proc.stdout


def make_usb(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "rescue", "make-usb", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "images" / "abc").mkdir(parents=True)
    (repo / "images" / "abc" / "manifest.json").write_text('{"id": "abc"}\n')
    (repo / "chunks").mkdir()
    (repo / "chunks" / "blob").write_bytes(bytes(range(256)) * 4096)
    return repo


def data_partition(table: dict) -> dict:
    parts = [p for p in table["partitions"] if re.search(r"3$", p["node"])]
    assert len(parts) == 1, table
    return parts[0]


def test_usb_image_file(iso_path: Path, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "rescue-usb.img"
    make_usb("--iso", str(iso_path), "--repo", str(repo), str(out))
    assert out.stat().st_size > iso_path.stat().st_size + 512 * MiB
    el_torito = sh("xorriso", "-indev", str(out), "-report_el_torito", "plain")
    assert "BIOS" in el_torito and "UEFI" in el_torito
    table = json.loads(sh("sfdisk", "-J", str(out)))["partitiontable"]
    part = data_partition(table)
    assert part["start"] * 512 >= iso_path.stat().st_size - 4 * MiB
    with loop_device(out) as dev:
        subprocess.run(["partx", "-u", dev], capture_output=True)
        node = f"{dev}p3"
        assert sh("blkid", "-o", "value", "-s", "LABEL", node).strip() == DATA_LABEL
        assert sh("blkid", "-o", "value", "-s", "TYPE", node).strip() == "ext4"
        sh("e2fsck", "-fn", node)
        assert sh("debugfs", "-R", "cat /images/abc/manifest.json", node) == '{"id": "abc"}\n'


def test_usb_stick_device_gets_a_data_partition_to_its_end(iso_path: Path, repo: Path,
                                                           tmp_path: Path) -> None:
    with loop_device(tmp_path / "stick.img", 1024 * MiB) as dev:
        make_usb("--iso", str(iso_path), "--repo", str(repo), "--yes", dev)
        table = json.loads(sh("sfdisk", "-J", dev))["partitiontable"]
        part = data_partition(table)
        end = (part["start"] + part["size"]) * 512
        assert end > 1000 * MiB, f"data partition ends at {end // MiB} MiB of 1024"
        node = f"{dev}p3"
        subprocess.run(["partx", "-u", dev], capture_output=True)
        sh("e2fsck", "-fn", node)
        assert sh("blkid", "-o", "value", "-s", "LABEL", node).strip() == DATA_LABEL
        blocks = sh("dumpe2fs", "-h", node)
        count = int(re.search(r"Block count:\s+(\d+)", blocks).group(1))  # type: ignore[union-attr]
        size = int(re.search(r"Block size:\s+(\d+)", blocks).group(1))  # type: ignore[union-attr]
        assert count * size > 600 * MiB, "the filesystem was not grown with its partition"
        assert sh("debugfs", "-R", "cat /images/abc/manifest.json", node) == '{"id": "abc"}\n'
        el_torito = sh("xorriso", "-indev", f"stdio:{dev}", "-report_el_torito", "plain")
        assert "BIOS" in el_torito and "UEFI" in el_torito
        area = sh("xorriso", "-indev", f"stdio:{dev}", "-report_system_area", "plain")
        # The ISO's own entries survive: the bootable ISO entry and the EFI image's.
        assert re.search(r"MBR partition\s+:\s+1\s+0x80\s+0x00", area), area
        assert re.search(r"MBR partition path\s+:\s+2\s+/boot/grub/efi.img", area), area


def test_usb_image_boots_from_usb_on_uefi(iso_path: Path, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "rescue-usb.img"
    make_usb("--iso", str(iso_path), "--repo", str(repo), "--size", "64M",
             "--append", "console=ttyS0,115200n8", str(out))
    vm = Machine(iso=None, boot_disk=out, workdir=tmp_path / "vm", firmware="uefi")
    try:
        vm.start()
        vm.wait_for(r"rescue \d+\.\d+\.\d+\S* on ttyS0", 480)
    finally:
        vm.stop()
