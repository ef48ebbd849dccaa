"""The engine's sentences follow the language the wizard (or the CLI's environment) chose:
refusals of the planner, eligibility reasons, the hardware verdict, OSError translations.
English stays the default."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_plan import MiB, target, three_partition_manifest

from rescue import i18n
from rescue.devices.eligibility import assess
from rescue.devices.inventory import Inventory
from rescue.errors import DeviceError, TargetRefusedError, TargetTooSmallError, from_oserror
from rescue.hardware.compat import compare
from rescue.hardware.profile import HardwareProfile
from rescue.plan.restore import RestoreOptions, plan_restore

MACHINES = Path(__file__).parent.parent / "data" / "machines"


@pytest.fixture
def german() -> Iterator[None]:
    i18n.set_language("de")
    try:
        yield
    finally:
        i18n.set_language("en")


def too_small() -> str:
    with pytest.raises(TargetTooSmallError) as err:
        plan_restore(three_partition_manifest(), target(300 * MiB), RestoreOptions(shrink=False))
    return str(err.value)


def test_planner_refusal_is_english_by_default() -> None:
    assert too_small() == (
        "Target disk /dev/sdz is 300.0 MiB (314572800 bytes); the image's partitions need "
        "417.0 MiB (437273088 bytes). Use a disk at least that large.")


def test_planner_refusal_in_german() -> None:
    i18n.set_language("de")
    try:
        message = too_small()
    finally:
        i18n.set_language("en")
    assert message == (
        "Der Zieldatenträger /dev/sdz ist 300.0 MiB groß (314572800 Byte); die Partitionen "
        "des Abbilds benötigen 417.0 MiB (437273088 Byte). Verwenden Sie einen mindestens so "
        "großen Datenträger.")
    assert too_small().startswith("Target disk /dev/sdz is")  # back in English


def test_target_refusal_in_german(german: None) -> None:
    with pytest.raises(TargetRefusedError) as err:
        plan_restore(three_partition_manifest(), target(512 * MiB, is_boot_medium=True),
                     RestoreOptions())
    assert str(err.value) == ("/dev/sdz ist das Medium, von dem das Rescue-System gestartet "
                              "wurde; wählen Sie einen anderen Datenträger.")


def test_eligibility_reasons_in_german(german: None) -> None:
    inv = assess(Inventory.load(MACHINES / "laptop-nvme-usb.json"), repo_devices=["sdb"])
    stick, repo = inv.disk("sda"), inv.disk("sdb")
    assert stick is not None and repo is not None
    assert stick.ineligible_reasons == [
        "er enthält das laufende Rescue-System (Startmedium oder aktuelles Root-Dateisystem)",
        "/dev/sda1 ist unter /run/live/medium eingehängt",
    ]
    assert repo.ineligible_reasons == ["er enthält das ausgewählte Abbild-Repository"]


def test_hardware_verdict_in_spanish() -> None:
    i18n.set_language("es")
    try:
        verdict = compare(HardwareProfile.load(MACHINES / "uefi-arm64-server.json"),
                          HardwareProfile.load(MACHINES / "uefi-desktop-sata.json"))
        lines = verdict.describe()
    finally:
        i18n.set_language("en")
    arch = next(d for d in verdict.differences if d.component == "cpu.architecture")
    assert arch.action.startswith("Rechazado: restaure esta imagen en una máquina con "
                                  "procesador aarch64")
    assert lines[0] == "Veredicto: bloqueado"
    assert "Diferencias críticas para el arranque:" in lines


def test_oserror_in_french() -> None:
    i18n.set_language("fr")
    try:
        err = from_oserror(OSError(errno.EIO, "I/O error"), "Écriture sur /dev/sdz")
    finally:
        i18n.set_language("en")
    assert isinstance(err, DeviceError)
    assert str(err) == ("Écriture sur /dev/sdz : erreur d'entrée/sortie ; le disque est "
                        "peut-être défaillant.")


@pytest.mark.parametrize(("env", "lang"), [
    ({}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LANG": "de_DE.UTF-8"}, "de"),
    ({"LANG": "fr_CA.UTF-8"}, "fr"),
    ({"LANG": "it_IT.UTF-8"}, "en"),  # no catalog: English
    ({"LANG": "de_DE.UTF-8", "LC_MESSAGES": "es_ES.UTF-8"}, "es"),
    ({"LANG": "de_DE.UTF-8", "LC_ALL": "fr_FR.UTF-8"}, "fr"),
    ({"LANG": "de_DE.UTF-8", "LANGUAGE": "it:es"}, "es"),
    ({"LC_ALL": "C", "LANGUAGE": "de"}, "en"),  # gettext ignores LANGUAGE under C
])
def test_language_from_environment(env: dict[str, str], lang: str) -> None:
    assert i18n.language_from_environment(env) == lang


def test_cli_speaks_the_environments_language(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from rescue.cli import main

    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    try:
        code = main(["devices", "--machine", "/nonexistent/machine.json"])
    finally:
        i18n.set_language("en")
    assert code == 2
    assert "Die Rechnerdatei /nonexistent/machine.json kann nicht gelesen werden" in (
        capsys.readouterr().err)
