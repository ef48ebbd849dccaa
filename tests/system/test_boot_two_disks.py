"""A machine with two disks, for real: its system disk and a data disk are backed up into
one image, restored onto two blank disks (the data disk onto a larger one) with one
`rescue restore --disk A --disk B`, and the restored pair boots in QEMU, where the booted
system finds the restored data disk by its label and reads the file the source held.

The data disk's filesystem is labelled RESCUEJOB: the test system's init mounts such a
disk and runs its job.sh, which prints the token file and the filesystem's UUID as the
booted machine sees them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import bootcell
import pytest
import qemu_harness
import systemfixtures
from testsystem import loop_device, refresh_partitions

from rescue.image.repository import Repository

pytestmark = [pytest.mark.root, pytest.mark.qemu]

scratch = systemfixtures.scratch
test_systems = systemfixtures.test_systems

MiB = 1024 * 1024
JOB = ('echo "RESCUE-DATA-DISK token=$(cat /mnt/token) dev=$(blkid -L RESCUEJOB) '
       'uuid=$(blkid -s UUID -o value "$(blkid -L RESCUEJOB)") END"\n')


def sh(*argv: str, input: str | None = None) -> str:
    proc = subprocess.run(list(argv), input=input, capture_output=True, text=True)
    assert proc.returncode == 0, f"{argv}: {proc.stderr}"
    return proc.stdout


def make_data_disk(path: Path, token: str) -> str:
    """A GPT disk with one ext4 partition (label RESCUEJOB) holding the job and a token;
    returns the filesystem's UUID."""
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    tree = path.with_suffix(".d")
    tree.mkdir()
    (tree / "job.sh").write_text(JOB)
    (tree / "token").write_text(token + "\n")
    with loop_device(path) as dev:
        sh("sfdisk", "-q", "--no-reread", "--no-tell-kernel", dev,
           input="label: gpt\nsize=48MiB, type=L, name=data\n")
        refresh_partitions(dev, expect=1)
        sh("mkfs.ext4", "-q", "-F", "-L", "RESCUEJOB", "-d", str(tree), f"{dev}p1")
        uuid = sh("blkid", "-p", "-s", "UUID", "-o", "value", f"{dev}p1").strip()
    for p in tree.iterdir():
        p.unlink()
    tree.rmdir()
    return uuid


def test_two_disk_machine_restored_boots_with_its_data_disk(test_systems, scratch):
    ts = test_systems["bios-gpt"]
    token = secrets.token_hex(8)
    data_src = scratch / "two-disks-data-src.img"
    repo = scratch / "repo-two-disks"
    sys_target = scratch / "two-disks-system.img"
    data_target = scratch / "two-disks-data.img"
    report = scratch / "two-disks-report.json"
    logs = Path(os.environ.get("RESCUE_BOOT_LOGS", "/var/cache/rescue-tests/boot-logs"))
    try:
        uuid = make_data_disk(data_src, token)
        with loop_device(Path(ts.image), read_only=True) as system_dev, \
                loop_device(data_src, read_only=True) as data_dev:
            refresh_partitions(system_dev, expect=ts.root_partition)
            refresh_partitions(data_dev, expect=1)
            bootcell.rescue_cli("backup", "--disk", system_dev, "--disk", data_dev,
                                "--repo", str(repo), "--name", "two disks")
        manifest = Repository.open(repo).load_manifest("latest")
        assert [d.size_bytes for d in manifest.disks] == [ts.size, 64 * MiB]

        for path, size in ((sys_target, ts.size), (data_target, 128 * MiB)):
            with open(path, "wb") as f:
                f.truncate(size)
        with loop_device(sys_target) as a, loop_device(data_target) as b:
            bootcell.rescue_cli(
                "restore", "--repo", str(repo), "--image", manifest.id, "--disk", a,
                "--disk", b, "--yes", "--firmware", ts.firmware, "--add-driver",
                "virtio_blk", "--report", str(report))
            done = json.loads(report.read_text())
            assert done["result"] == "ok", done["error"]
            # the data disk first, the system disk (with the boot fix-ups) last
            assert [d["target"] for d in done["disks"]] == [b, a]
            assert any(s["name"] == "bios-boot-code" for s in done["disks"][1]["steps"])
            assert not any(s["name"] == "bios-boot-code" for s in done["disks"][0]["steps"])
        os.sync()

        booted = qemu_harness.boot(sys_target, firmware=ts.firmware, bus="virtio",
                                   marker=ts.marker, extra_disks=[str(data_target)],
                                   keep_log=logs / "two-disks.log")
        assert booted.booted, booted.tail(60)
        seen = [line for line in booted.console.splitlines() if "RESCUE-DATA-DISK" in line]
        assert seen, booted.tail(60)
        fields = dict(w.split("=", 1) for w in seen[-1].split() if "=" in w)
        assert fields["token"] == token  # the data disk's file, restored and read
        assert fields["uuid"] == uuid  # its filesystem identity kept
        assert fields["dev"] == "/dev/vdb1"  # on the second disk of the booted machine
    finally:
        for p in (data_src, sys_target, data_target, report):
            p.unlink(missing_ok=True)
