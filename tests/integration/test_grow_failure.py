"""A growth that fails after the data is written does not fail the restore: the data is
complete and the system works at its old size, so the technician gets a warning that
says so, not a "restore failed". Made for real: an LVM volume group spanning two disks,
only one of them backed up and restored onto a larger disk; pvresize refuses a volume
group with a missing physical volume."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, refresh_partitions, sh
from realdisk import rescue_cli, sfdisk_json

from rescue.fs.lvm import LVM_CONF

pytestmark = pytest.mark.root


def _lvm(env: dict[str, str], *argv: str) -> str:
    return sh("lvm", *argv, env=env)


def test_pv_of_a_two_disk_volume_group_not_grown_is_a_warning(blank_disk,
                                                               tmp_path: Path) -> None:
    conf = tempfile.mkdtemp(prefix="rescue-test-lvm-")
    try:
        Path(conf, "lvm.conf").write_text(LVM_CONF)
        env = dict(os.environ, LVM_SYSTEM_DIR=conf, LVM_SUPPRESS_FD_WARNINGS="1")
        with loop_device(tmp_path / "a.img", 128 * MiB) as a, \
                loop_device(tmp_path / "b.img", 64 * MiB) as b:
            sh("sfdisk", "-q", "--no-reread", "--no-tell-kernel", a,
               input=f"label: gpt\n{a}p1 : start=2048, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n")
            refresh_partitions(a)
            pv = f"{a}p1"
            devices = f"{pv},{b}"
            _lvm(env, "pvcreate", "-q", "--devices", devices, pv, b)
            _lvm(env, "vgcreate", "-q", "--devices", devices, "spanned", pv, b)
            before = sfdisk_json(a)["partitions"][0]["size"]
            repo = tmp_path / "repo"
            rescue_cli("backup", "--disk", a, "--repo", str(repo), check=True)
        target = blank_disk(256 * MiB)
        report_file = tmp_path / "report.json"
        proc = rescue_cli("restore", "--repo", str(repo), "--disk", target, "--yes",
                          "--report", str(report_file))
        assert proc.returncode == 0, proc.stderr + proc.stdout
        report = json.loads(report_file.read_text())
        assert report["result"] == "ok"
        grow = [s for s in report["steps"] if s["name"] == "grow-filesystems"]
        assert [s["status"] for s in grow] == ["failed"]
        assert any("was not grown" in w and "data is complete" in w
                   for w in report["warnings"]), report["warnings"]
        assert "was not grown" in proc.stdout + proc.stderr  # the technician is told
        # the partition took the disk; the PV on it is whole and still names its VG
        assert sfdisk_json(target)["partitions"][0]["size"] > before
        pvs = _lvm(env, "pvs", "--devices", f"{target}p1", "--readonly", "--noheadings",
                   "-o", "vg_name", f"{target}p1")
        assert pvs.strip() == "spanned"
    finally:
        sh("rm", "-rf", conf)
