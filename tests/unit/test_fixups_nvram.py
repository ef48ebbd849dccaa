"""The UEFI NVRAM step against a firmware double.

The real thing runs in tests/system/test_boot_nvram.py (efibootmgr inside an OVMF VM).
This double covers what real OVMF will not show: stale entries next to another disk's,
efibootmgr 18 output, a firmware that accepts an entry and then drops it. Only
``efibootmgr`` is replaced (by a small NVRAM model); the ESP is real: a FAT image file
made with mkfs.vfat and read with mtools, as on a restore.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_fixups import manifest

from rescue.engine.bootfix import FixupContext, run_fixups
from rescue.plan.fixups import plan_fixups
from rescue.runner import CommandRunner, Result

PARTUUID = "2c2c05b5-93c7-5f45-aaea-e3c9f53cf83e"

pytestmark = pytest.mark.skipif(
    shutil.which("mkfs.vfat") is None or shutil.which("mcopy") is None,
    reason="needs dosfstools and mtools (make setup installs them)",
)


class FirmwareDouble(CommandRunner):
    """Runs everything for real except efibootmgr, which edits an in-memory NVRAM."""

    def __init__(self, entries: dict[str, tuple[str, str]], order: list[str],
                 drop_new: bool = False) -> None:
        self.entries = dict(entries)  # number -> (label, device path text)
        self.order = list(order)
        self.drop_new = drop_new  # firmware that accepts and then forgets the entry
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], **kwargs) -> Result:  # type: ignore[override]
        args = [str(a) for a in argv]
        if args[0] != "efibootmgr":
            return super().run(args, **kwargs)
        self.calls.append(args)
        if "-B" in args:
            num = args[args.index("-b") + 1]
            del self.entries[num]
            self.order = [n for n in self.order if n != num]
        elif "-c" in args:
            label = args[args.index("-L") + 1]
            loader = args[args.index("-l") + 1]
            part = args[args.index("-p") + 1]
            num = f"{max([int(n, 16) for n in self.entries] + [0]) + 1:04X}"
            if not self.drop_new:
                self.entries[num] = (label, f"HD({part},GPT,{PARTUUID.upper()},0x800,0x20000)"
                                            f"/{loader}")
                self.order.insert(0, num)
        out = [f"BootOrder: {','.join(self.order)}"]
        out += [f"Boot{n}* {label}  {path}" for n, (label, path) in sorted(self.entries.items())]
        return Result(args, 0, "\n".join(out) + "\n", "")


def make_esp(path: Path, files: dict[str, bytes]) -> str:
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    subprocess.run(["mkfs.vfat", "-C", "-F", "32", str(path), str(40 * 1024)],
                   check=True, capture_output=True)
    made = set()
    for name, data in files.items():
        parts = name.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in made:
                subprocess.run(["mmd", "-i", str(path), f"::/{d}"], env=env, check=True,
                               capture_output=True)
                made.add(d)
        local = path.parent / parts[-1]
        local.write_bytes(data)
        subprocess.run(["mcopy", "-i", str(path), str(local), f"::/{name.strip('/')}"],
                       env=env, check=True, capture_output=True)
    return str(path)


def context(tmp_path: Path, runner: CommandRunner, esp: str) -> FixupContext:
    efivars = tmp_path / "efivars"
    efivars.mkdir(exist_ok=True)
    return FixupContext(disk="/dev/nvme0n1", partitions={1: esp, 2: "/dev/null"},
                        manifest=manifest("uefi-gpt"), firmware="uefi",
                        runner=runner, efivars=str(efivars))


def nvram_steps():
    steps = plan_fixups(manifest("uefi-gpt"), "uefi", [], set())
    return [s for s in steps if s.name == "uefi-nvram-entry"]


def test_stale_entry_for_the_same_esp_is_replaced(tmp_path):
    esp = make_esp(tmp_path / "esp.img", {"EFI/debian/grubx64.efi": b"grub" * 100})
    fw = FirmwareDouble(
        {"0001": ("debian", f"HD(1,GPT,{PARTUUID},0x800,0x20000)/\\EFI\\debian\\grubx64.efi"),
         "0002": ("Windows Boot Manager",
                  "HD(1,GPT,11111111-2222-3333-4444-555555555555,0x800,0x1)/\\EFI\\ms.efi")},
        ["0002", "0001"])
    [result] = run_fixups(context(tmp_path, fw, esp), nvram_steps())
    assert result.status == "done", result.detail
    assert "removed stale Boot0001" in result.detail
    assert "first in BootOrder" in result.detail
    assert "0001" not in fw.entries and "0002" in fw.entries  # the other disk's entry stays
    labels = [label for label, _ in fw.entries.values()]
    assert labels.count("Debian GNU/Linux 12 (bookworm) (pc1)") == 1
    create = next(c for c in fw.calls if "-c" in c)
    assert create[create.index("-l") + 1] == "\\EFI\\debian\\grubx64.efi"
    assert create[create.index("-d") + 1] == "/dev/nvme0n1"


def test_running_twice_does_not_pile_up_entries(tmp_path):
    esp = make_esp(tmp_path / "esp.img", {"EFI/debian/grubx64.efi": b"grub"})
    fw = FirmwareDouble({}, [])
    for _ in range(3):
        [result] = run_fixups(context(tmp_path, fw, esp), nvram_steps())
        assert result.status == "done"
    assert len(fw.entries) == 1


def test_entry_the_firmware_drops_is_reported_as_failed(tmp_path):
    esp = make_esp(tmp_path / "esp.img", {"EFI/debian/grubx64.efi": b"grub"})
    fw = FirmwareDouble({}, [], drop_new=True)
    [result] = run_fixups(context(tmp_path, fw, esp), nvram_steps())
    assert result.status == "failed"
    assert re.search(r"reading the NVRAM back shows no entry", result.detail)


def test_not_started_in_uefi_mode_is_skipped_honestly(tmp_path):
    esp = make_esp(tmp_path / "esp.img", {"EFI/debian/grubx64.efi": b"grub"})
    fw = FirmwareDouble({}, [])
    ctx = context(tmp_path, fw, esp)
    ctx.efivars = str(tmp_path / "no-such-dir")
    [result] = run_fixups(ctx, nvram_steps())
    assert result.status == "skipped"
    assert "BOOTX64.EFI" in result.detail
    assert fw.calls == []


def test_entries_for_the_targets_overwritten_partitions_are_stale(tmp_path):
    """The disk held another system before the restore: its entry points at a partition
    GUID that no longer exists on this disk and goes; another disk's entry stays."""
    esp = make_esp(tmp_path / "esp.img", {"EFI/debian/grubx64.efi": b"grub"})
    old = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    other = "11111111-2222-3333-4444-555555555555"
    fw = FirmwareDouble(
        {"0001": ("ubuntu", f"HD(1,GPT,{old},0x800,0x1)/\\EFI\\ubuntu\\shimx64.efi"),
         "0002": ("other", f"HD(1,GPT,{other},0x800,0x1)/\\EFI\\x.efi")},
        ["0001", "0002"])
    ctx = context(tmp_path, fw, esp)
    ctx.previous_partuuids = [old.upper(), PARTUUID]
    [result] = run_fixups(ctx, nvram_steps())
    assert result.status == "done", result.detail
    assert "removed stale Boot0001" in result.detail
    assert set(fw.entries) == {"0002", "0003"}
