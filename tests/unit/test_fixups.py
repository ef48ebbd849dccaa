"""The boot fix-up plan (pure) and the executor's pure parts."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import rescue
from rescue.engine.bootfix import (
    choose_loader,
    module_status,
    parse_efibootmgr,
    read_fstab,
    spec_key,
    spec_matches,
)
from rescue.errors import UsageError
from rescue.image.manifest import Disk, Manifest, Partition
from rescue.plan.fixups import (
    FIXUP_NAMES,
    FIXUPS,
    FixupStep,
    expand_drivers,
    module_name,
    plan_fixups,
    steps_from_json,
    steps_to_json,
)

ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX = "0FC63DAF-8483-4772-8E7D-3D69E4C47D1E"
BIOS_GRUB = "21686148-6449-6E6F-744E-656564454649"


def manifest(layout: str) -> Manifest:
    if layout == "uefi-gpt":
        parts = [
            Partition(1, 2048, 131072, ESP, uuid="2C2C05B5-93C7-5F45-AAEA-E3C9F53CF83E",
                      filesystem="vfat", fs_uuid="D8F9-2CB9"),
            Partition(2, 133120, 1961984, LINUX, filesystem="ext4", fs_uuid="u-root"),
        ]
        table, fw = "gpt", "uefi"
    elif layout == "bios-gpt":
        parts = [
            Partition(1, 2048, 2048, BIOS_GRUB),
            Partition(2, 4096, 2091008, LINUX, filesystem="ext4", fs_uuid="u-root"),
        ]
        table, fw = "gpt", "bios"
    else:
        parts = [
            Partition(1, 2048, 1000000, "83", filesystem="ext4", fs_uuid="u-small"),
            Partition(2, 1002048, 1000000, "82", filesystem="swap"),
            Partition(3, 2002048, 3000000, "83", filesystem="ext4", fs_uuid="u-big"),
        ]
        table, fw = "dos", "bios"
    disk = Disk(2**30, 512, 512, table, "0x1234", source_path="/dev/sda", partitions=parts)
    return Manifest(
        id="img", name="", created_utc="", created_local="", timezone="", computer="pc1",
        os_name="Debian GNU/Linux 12 (bookworm)", os_id="debian", os_version="12",
        firmware=fw, hardware={}, chunk_size=4 << 20, compression="zstd", disks=[disk],
    )


def names(steps: list[FixupStep]) -> list[str]:
    return [s.name for s in steps]


def test_uefi_target_gets_fallback_and_nvram_steps():
    steps = plan_fixups(manifest("uefi-gpt"), "uefi", [], set())
    assert names(steps) == ["uefi-fallback-loader", "uefi-nvram-entry", "fstab-check"]
    nvram = steps[1]
    assert nvram.params["esp_partition"] == 1
    assert nvram.params["esp_partuuid"] == "2c2c05b5-93c7-5f45-aaea-e3c9f53cf83e"
    assert nvram.params["label"] == "Debian GNU/Linux 12 (bookworm) (pc1)"


def test_bios_target_checks_boot_code_not_uefi():
    steps = plan_fixups(manifest("bios-gpt"), "bios", [], set())
    assert names(steps) == ["bios-boot-code", "fstab-check"]
    assert steps[0].params["bios_grub_partition"] == 1
    assert steps[0].params["table"] == "gpt"


def test_uefi_image_on_bios_machine_still_plans_the_check():
    # The check fails at run time with a sentence; the plan says what will be checked.
    steps = plan_fixups(manifest("uefi-gpt"), "bios", [], set())
    assert steps[0].name == "bios-boot-code"
    assert steps[0].params["bios_grub_partition"] is None


def test_changed_controller_adds_initramfs_step_with_companions():
    steps = plan_fixups(manifest("bios-gpt"), "bios", ["ahci"], set())
    step = next(s for s in steps if s.name == "initramfs-drivers")
    assert step.params["drivers"] == ["ahci", "sd_mod"]
    assert step.params["root_candidates"] == [2]


def test_root_candidates_largest_linux_filesystem_first():
    steps = plan_fixups(manifest("bios-mbr"), "bios", ["nvme"], set())
    step = next(s for s in steps if s.name == "initramfs-drivers")
    assert step.params["root_candidates"] == [3, 1]  # swap is not a candidate
    assert step.params["drivers"] == ["nvme"]


def test_skipped_steps_stay_in_the_plan_marked():
    steps = plan_fixups(manifest("uefi-gpt"), "uefi", ["nvme"], {"uefi-nvram-entry"})
    by = {s.name: s for s in steps}
    assert by["uefi-nvram-entry"].skip
    assert not by["uefi-fallback-loader"].skip
    assert by["uefi-nvram-entry"].summary_line().endswith("(skipped by option)")


def test_unknown_skip_name_is_a_usage_error():
    with pytest.raises(UsageError, match="uefi-nvram-entry"):
        plan_fixups(manifest("uefi-gpt"), "uefi", [], {"nvram"})


def test_bad_firmware_is_a_usage_error():
    with pytest.raises(UsageError):
        plan_fixups(manifest("uefi-gpt"), "efi", [], set())


def test_plan_roundtrips_through_json():
    steps = plan_fixups(manifest("uefi-gpt"), "uefi", ["nvme"], {"fstab-check"})
    raw = json.dumps(steps_to_json(steps))
    assert steps_from_json(json.loads(raw)) == steps
    assert set(names(steps)) <= set(FIXUP_NAMES)


def test_module_names_normalise():
    assert module_name("kernel/drivers/nvme/host/nvme-core.ko.xz") == "nvme_core"
    assert module_name("virtio-blk") == "virtio_blk"
    assert expand_drivers(["virtio-blk", "virtio_blk", "ahci", "ahci"]) == [
        "virtio_blk", "virtio_pci", "ahci", "sd_mod"]


def test_plan_module_imports_no_engine_or_ui():
    code = ("import sys, rescue.plan.fixups; bad = [m for m in sys.modules if m.startswith("
            "('textual', 'pyudev', 'parted', 'rescue.engine'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


# --------------------------------------------------------------------------- the registry


def test_every_registered_fixup_has_an_implementation_and_no_other():
    from rescue.engine.bootfix import HANDLERS

    registered, implemented = set(FIXUP_NAMES), set(HANDLERS)
    assert not registered - implemented, "registered in rescue.plan.fixups.FIXUPS, but " \
        f"not in rescue.engine.bootfix.HANDLERS: {sorted(registered - implemented)}"
    assert not implemented - registered, "in rescue.engine.bootfix.HANDLERS, but not " \
        f"registered in rescue.plan.fixups.FIXUPS: {sorted(implemented - registered)}"
    assert all(callable(h) for h in HANDLERS.values())


def test_the_registry_names_each_fixup_once_with_a_translatable_title():
    from rescue.i18n.extract import messages

    assert len(set(FIXUP_NAMES)) == len(FIXUP_NAMES) == len(FIXUPS)
    marked = messages()
    for fixup in FIXUPS:
        assert fixup.title in marked, f"{fixup.name}: its title is not marked N_()"
        assert any(w.startswith("plan/fixups.py:") for w in marked[fixup.title])


def test_fixup_names_are_spelled_only_in_the_registry():
    """Everything else (the engine's table, the options) uses the registry's names."""
    root = Path(rescue.__file__).resolve().parent
    spelled = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "plan/fixups.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in FIXUP_NAMES:
                spelled.append(f"{rel}:{node.lineno}: {node.value}")
    assert spelled == []


def test_unregistered_step_fails_with_a_sentence(tmp_path: Path):
    from rescue.engine.bootfix import FixupContext, run_fixups

    ctx = FixupContext(disk="/dev/null", partitions={}, manifest=manifest("bios-gpt"),
                       firmware="bios", workdir=str(tmp_path))
    [result] = run_fixups(ctx, [FixupStep("no-such-fixup", "No such fix-up")])
    assert (result.name, result.status) == ("no-such-fixup", "failed")
    assert "no-such-fixup" in result.detail


# --------------------------------------------------------------------------- efibootmgr

EFIBOOTMGR_17 = """BootCurrent: 0001
Timeout: 0 seconds
BootOrder: 0003,0001,0000
Boot0000* UiApp\tFvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(462caa21-7614-4503-836e-8ab6f4662331)
Boot0001* debian\tHD(1,GPT,2c2c05b5-93c7-5f45-aaea-e3c9f53cf83e,0x800,0x20000)/File(\\EFI\\debian\\shimx64.efi)
Boot0003* Windows Boot Manager\tHD(1,GPT,11111111-2222-3333-4444-555555555555,0x800,0x32000)/File(\\EFI\\Microsoft\\Boot\\bootmgfw.efi)WINDOWS.........
"""  # noqa: E501

EFIBOOTMGR_18 = """BootCurrent: 0001
BootOrder: 0004,0001
Boot0001  UEFI QEMU NVMe Ctrl 1 PciRoot(0x0)/Pci(0x4,0x0)/NVMe(0x1,00-00-00-00-00-00-00-00)
Boot0004* Debian (pc1)  HD(1,GPT,2C2C05B5-93C7-5F45-AAEA-E3C9F53CF83E,0x800,0x20000)/\\EFI\\debian\\grubx64.efi
"""  # noqa: E501


def test_parse_efibootmgr_17():
    entries, order = parse_efibootmgr(EFIBOOTMGR_17)
    assert order == ["0003", "0001", "0000"]
    by = {e.number: e for e in entries}
    assert by["0001"].label == "debian"
    assert by["0001"].partuuid == "2c2c05b5-93c7-5f45-aaea-e3c9f53cf83e"
    assert by["0001"].loader == "\\EFI\\debian\\shimx64.efi"
    assert by["0003"].loader == "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"
    assert by["0000"].partuuid == ""


def test_parse_efibootmgr_18_without_tabs():
    entries, order = parse_efibootmgr(EFIBOOTMGR_18)
    assert order == ["0004", "0001"]
    by = {e.number: e for e in entries}
    assert not by["0001"].active and by["0004"].active
    assert by["0004"].label == "Debian (pc1)"
    assert by["0004"].partuuid == "2c2c05b5-93c7-5f45-aaea-e3c9f53cf83e"
    assert by["0004"].loader == "\\EFI\\debian\\grubx64.efi"


# --------------------------------------------------------------------------- ESP loaders


def test_choose_loader_prefers_shim_and_brings_grub_along():
    files = ["/EFI/debian/shimx64.efi", "/EFI/debian/grubx64.efi", "/EFI/debian/mmx64.efi",
             "/EFI/debian/fbx64.efi", "/EFI/debian/grub.cfg"]
    assert choose_loader(files, "debian") == [
        ("/EFI/debian/shimx64.efi", "BOOTX64.EFI"),
        ("/EFI/debian/grubx64.efi", "grubx64.efi"),
        ("/EFI/debian/mmx64.efi", "mmx64.efi"),
    ]


def test_choose_loader_grub_only_and_case_insensitive():
    files = ["/EFI/DEBIAN/GRUBX64.EFI"]
    assert choose_loader(files, "debian") == [("/EFI/DEBIAN/GRUBX64.EFI", "BOOTX64.EFI")]


def test_choose_loader_other_distribution_directory():
    files = ["/EFI/ubuntu/grubx64.efi", "/EFI/BOOT/fbx64.efi"]
    assert choose_loader(files, "debian") == [("/EFI/ubuntu/grubx64.efi", "BOOTX64.EFI")]


def test_choose_loader_nothing_to_copy():
    assert choose_loader(["/EFI/BOOT/README.txt"], "debian") == []


# --------------------------------------------------------------------------- fstab


def test_fstab_specs(tmp_path: Path):
    fstab = tmp_path / "fstab"
    fstab.write_text(
        "# comment\n"
        "UUID=AbC / ext4 errors=remount-ro 0 1\n"
        "PARTUUID=\"p-1\" /boot/efi vfat umask=0077 0 1\n"
        "/dev/disk/by-label/data /data ext4 nofail 0 2\n"
        "/dev/sda3 none swap sw 0 0\n"
        "proc /proc proc defaults 0 0\n"
    )
    entries = read_fstab(fstab)
    assert [e.mountpoint for e in entries] == ["/", "/boot/efi", "/data", "none", "/proc"]
    assert entries[2].optional and not entries[0].optional
    assert spec_key(entries[1].spec) == ("PARTUUID", "p-1")
    assert spec_key(entries[2].spec) == ("LABEL", "data")
    assert spec_key("/dev/sda3") is None
    assert spec_matches("UUID=AbC", {"UUID": "abc"})
    assert not spec_matches("UUID=abc", {"UUID": ""})
    assert spec_matches("/dev/disk/by-label/data", {"LABEL": "data"})
    assert not spec_matches("LABEL=Data", {"LABEL": "data"})


def test_module_status_reads_builtin_and_dep(tmp_path: Path):
    d = tmp_path / "lib/modules/6.1.0-1-amd64"
    d.mkdir(parents=True)
    (d / "modules.builtin").write_text("kernel/drivers/block/virtio_blk.ko\n")
    (d / "modules.dep").write_text(
        "kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko\n"
        "kernel/drivers/nvme/host/nvme-core.ko:\n"
    )
    assert module_status(tmp_path, "6.1.0-1-amd64", "virtio-blk") == "builtin"
    assert module_status(tmp_path, "6.1.0-1-amd64", "nvme_core") == "module"
    assert module_status(tmp_path, "6.1.0-1-amd64", "ahci") == "missing"


def test_grub_root_device_name_rewritten_to_uuid(tmp_path: Path):
    from rescue.engine.bootfix import check_boot_loader_root

    grub = tmp_path / "boot/grub"
    grub.mkdir(parents=True)
    cfg = (
        "set root='hd0,msdos2'\n"
        "search --no-floppy --fs-uuid --set=root 1111\n"
        "    linux /vmlinuz root=/dev/sda2 ro quiet\n"
        "    linux /vmlinuz root=/dev/sda2 ro single\n"
        "    linux /vmlinuz-old root=UUID=dead-beef ro\n"
    )
    (grub / "grub.cfg").write_text(cfg)
    facts = {1: {"UUID": "aaaa"}, 2: {"UUID": "bbbb-cccc"}}
    notes = check_boot_loader_root(tmp_path, facts, "/dev/sda")
    new = (grub / "grub.cfg").read_text()
    assert new.count("root=UUID=bbbb-cccc ro") == 2
    assert "set root='hd0,msdos2'" in new  # GRUB's own root variable is not the kernel's
    assert (grub / "grub.cfg.rescue-backup").read_text() == cfg
    assert any("root=/dev/sda2 -> root=UUID=bbbb-cccc" in n for n in notes)
    assert any("UUID=dead-beef, not on this disk" in n for n in notes)


def test_grub_root_by_uuid_resolves(tmp_path: Path):
    from rescue.engine.bootfix import check_boot_loader_root

    (tmp_path / "boot/grub").mkdir(parents=True)
    (tmp_path / "boot/grub/grub.cfg").write_text("linux /vmlinuz root=UUID=BBBB ro\n")
    notes = check_boot_loader_root(tmp_path, {2: {"UUID": "bbbb"}}, "/dev/vda")
    assert notes == ["/boot/grub/grub.cfg: root= resolves on the restored disk"]
    assert not (tmp_path / "boot/grub/grub.cfg.rescue-backup").exists()


def test_initramfs_tools_modules_setting_follows_conf_d(tmp_path: Path):
    from rescue.engine.bootfix import initramfs_tools_modules_setting

    conf = tmp_path / "etc/initramfs-tools"
    (conf / "conf.d").mkdir(parents=True)
    assert initramfs_tools_modules_setting(tmp_path) == "most"
    (conf / "initramfs.conf").write_text("# MODULES=list\nMODULES=most\n")
    assert initramfs_tools_modules_setting(tmp_path) == "most"
    (conf / "conf.d/zz-local").write_text('MODULES="dep"\n')
    assert initramfs_tools_modules_setting(tmp_path) == "dep"
