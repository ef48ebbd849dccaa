"""UEFI Secure Boot as a tested property of the ISO (docs/ISO.md, "Secure Boot").

- The loaders: the firmware's first file (EFI/boot/bootx64.efi, in the ISO tree and in
  the ESP image) is shim signed by Microsoft's UEFI CA; the GRUB next to it is Debian's
  signed GRUB; MokManager (mmx64.efi) is next to shim; every command in the menus is
  built into that signed GRUB (it cannot load modules under Secure Boot).
- Negative control: the same ISO with GRUB's signature stripped is refused by shim under
  Secure Boot (and boots without Secure Boot, so only the signature differs).
- The shipped chain boots under OVMF's Secure Boot firmware with Microsoft's keys
  enrolled, to the wizard, and the live kernel reports Secure Boot on.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from efitools import (
    COMMAND_MODULES,
    esp_extract,
    grub_builtin_modules,
    grub_commands,
    iso_extract,
    iso_with_files,
    run,
    signers,
    strip_signature,
)
from isoqemu import Machine

pytestmark = pytest.mark.qemu

MS_CA_2011 = "CN=Microsoft Corporation UEFI CA 2011"
MS_CA_2023 = "CN=Microsoft UEFI CA 2023"  # machines that trust only the new CA
DEBIAN_SIGNER = "Debian Secure Boot Signer"


@pytest.fixture(scope="module")
def efi(iso_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ISO's EFI files: tree/{bootx64,grubx64,mmx64}.efi, esp/ (from efi.img), cfg/."""
    d = tmp_path_factory.mktemp("efi")
    for sub in ("tree", "esp", "cfg"):
        (d / sub).mkdir()
    listing = run("xorriso", "-indev", str(iso_path), "-find", "/EFI/boot", "-type", "f")
    for inside in re.findall(r"'(/EFI/boot/[^']+)'", listing):
        iso_extract(iso_path, inside, d / "tree" / Path(inside).name.lower())
    img = iso_extract(iso_path, "/boot/grub/efi.img", d / "efi.img")
    for name in ("bootx64.efi", "grubx64.efi", "mmx64.efi"):
        with contextlib.suppress(AssertionError):  # reported by the test that needs it
            esp_extract(img, f"/EFI/boot/{name}", d / "esp" / name)
    esp_extract(img, "/boot/grub/grub.cfg", d / "cfg" / "esp-grub.cfg")
    listing = run("xorriso", "-indev", str(iso_path), "-find", "/boot/grub", "-name", "*.cfg")
    # every menu file; the signed GRUB reads /boot/grub/x86_64-efi/grub.cfg first
    for inside in re.findall(r"'(/boot/grub/[^']+\.cfg)'", listing):
        name = inside.removeprefix("/boot/grub/").replace("/", "--")
        iso_extract(iso_path, inside, d / "cfg" / name)
    return d


def test_shim_signed_by_microsoft_is_the_first_loader(efi: Path) -> None:
    for where in ("tree", "esp"):
        shim = efi / where / "bootx64.efi"
        assert shim.is_file(), f"bootx64.efi missing from the {where}"
        sigs = signers(shim)
        for ca in (MS_CA_2011, MS_CA_2023):
            assert any(ca in s for s in sigs), (
                f"{where}/bootx64.efi carries no signature under {ca}: {sigs}")
    assert (efi / "tree/bootx64.efi").read_bytes() == (efi / "esp/bootx64.efi").read_bytes()


@pytest.mark.parametrize("name", ["grubx64.efi", "mmx64.efi"])
def test_grub_and_mokmanager_are_signed_by_debian_next_to_shim(efi: Path, name: str) -> None:
    for where in ("tree", "esp"):
        f = efi / where / name
        assert f.is_file(), f"{name} missing from the {where} (next to shim)"
        sigs = signers(f)
        assert any(DEBIAN_SIGNER in s for s in sigs), f"{where}/{name} signers: {sigs}"
    assert (efi / "tree" / name).read_bytes() == (efi / "esp" / name).read_bytes()


def test_menus_use_only_what_the_signed_grub_has_built_in(efi: Path) -> None:
    builtin = grub_builtin_modules(efi / "tree/grubx64.efi")
    assert {"linux", "serial", "configfile", "search"} <= builtin, sorted(builtin)
    cfgs = sorted((efi / "cfg").iterdir())
    assert {c.name for c in cfgs} >= {"grub.cfg", "esp-grub.cfg", "x86_64-efi--grub.cfg"}
    for cfg in cfgs:
        text = cfg.read_text()
        for module in re.findall(r"^\s*insmod\s+(\S+)", text, re.M):
            assert module in builtin, f"{cfg.name} loads module {module}: not in signed GRUB"
        for command in grub_commands(text):
            assert command in COMMAND_MODULES, (
                f"{cfg.name} uses the GRUB command {command!r}: add it to COMMAND_MODULES "
                "with the module that provides it")
            assert COMMAND_MODULES[command] in builtin, (
                f"{cfg.name}: {command} needs module {COMMAND_MODULES[command]}, "
                "which the signed GRUB lacks")


@pytest.fixture(scope="module")
def unsigned_grub_iso(iso_path: Path, efi: Path, tmp_path_factory: pytest.TempPathFactory
                      ) -> Path:
    work = tmp_path_factory.mktemp("unsigned")
    grub = strip_signature(efi / "tree/grubx64.efi", work / "grubx64-unsigned.efi")
    assert signers(grub) == []
    return iso_with_files(iso_path, work / "unsigned-grub.iso",
                          {"/EFI/boot/grubx64.efi": grub}, {"/EFI/boot/grubx64.efi": grub},
                          work)


def test_negative_control_unsigned_grub_is_refused(unsigned_grub_iso: Path,
                                                   tmp_path: Path) -> None:
    vm = Machine(iso=unsigned_grub_iso, workdir=tmp_path / "sb", firmware="uefi-secboot")
    try:
        vm.start()
        vm.wait_for(r"Verification failed: \(0x1A\) Security Violation", 180)
        # nothing of GRUB ever runs
        with pytest.raises(TimeoutError):
            vm.wait_for(r"GNU GRUB|Welcome to GRUB", vm.elapsed() + 30)
    finally:
        vm.stop()
    # the same image without Secure Boot: the GRUB is intact, only its signature is gone
    vm = Machine(iso=unsigned_grub_iso, workdir=tmp_path / "plain", firmware="uefi")
    try:
        vm.start()
        vm.wait_for(r"GNU GRUB", 180)
        assert "Security Violation" not in vm.text()
    finally:
        vm.stop()


def test_secure_boot_reaches_the_wizard(serial_iso: Path, tmp_path: Path) -> None:
    vm = Machine(iso=serial_iso, workdir=tmp_path, firmware="uefi-secboot")
    try:
        vm.start()
        vm.wait_for(r"GNU GRUB", 180)
        vm.wait_for(r"rescue \d+\.\d+\.\d+\S* on ttyS0", 420)
        vm.wait_for(r"Choose your language", vm.elapsed() + 240)
        assert "Security Violation" not in vm.text()
        vm.quit_wizard_to_shell()
        state = vm.shell("od -An -tu1 /sys/firmware/efi/efivars/"
                         "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")
        assert state.split()[-1:] == ["1"], f"Secure Boot is not on in the live system: {state}"
        lockdown = vm.shell("cat /sys/kernel/security/lockdown")
        assert "[integrity]" in lockdown or "[confidentiality]" in lockdown, lockdown
    finally:
        vm.stop()
