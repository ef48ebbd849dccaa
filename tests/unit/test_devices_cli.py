"""`rescue devices` on recorded machines and on this one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rescue.cli import main
from rescue.hardware.machine import Machine

MACHINES = Path(__file__).parent.parent / "data" / "machines"


def test_devices_text_says_why_each_disk_is_or_is_not_a_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["devices", "--machine", str(MACHINES / "vm-virtio.json")]) == 0
    out = capsys.readouterr().out
    assert "/dev/vdb" in out and "-> eligible as a restore target" in out
    assert "it is an optical drive" in out
    assert "it holds the running rescue system" in out
    assert "zram" in out


def test_devices_json_of_a_recording(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["devices", "--json", "--machine", str(MACHINES / "laptop-nvme-usb.json")])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert {d["name"]: d["eligible"] for d in data["disks"]} == {
        "nvme0n1": True, "sda": False, "sdb": True}


def test_devices_hides_loop_devices_of_a_recording_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = Machine.load(MACHINES / "vm-virtio.json")
    m.inventory.disks[1].kind = "loop"
    m.inventory.disks[1].name = "loop5"
    f = tmp_path / "m.json"
    m.dump(f)
    main(["devices", "--json", "--machine", str(f)])
    assert "loop5" not in [d["name"] for d in json.loads(capsys.readouterr().out)["disks"]]
    main(["devices", "--json", "--include-loop", "--machine", str(f)])
    assert "loop5" in [d["name"] for d in json.loads(capsys.readouterr().out)["disks"]]


def test_dump_records_this_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "me.json"
    assert main(["devices", "--dump", str(out)]) == 0
    m = Machine.load(out)
    assert m.hardware.architecture and m.hardware.firmware in ("uefi", "bios")
    assert m.inventory.disks
    # And consumers run from it.
    assert main(["devices", "--machine", str(out)]) == 0
    assert main(["compat", "--source-machine", str(out), "--machine", str(out)]) == 0
    assert "Verdict: compatible" in capsys.readouterr().out
