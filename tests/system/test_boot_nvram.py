"""The UEFI NVRAM fix-up for real: efibootmgr on OVMF, then a boot through that entry.

The test machines do not start in UEFI mode, so the NVRAM step cannot run on the host.
Here it runs where it can: inside a UEFI VM. The restored UEFI test system is booted in
OVMF (through the fallback loader the host-side fix-up added) with a second disk holding
the ``rescue`` package and a job; the test system's init runs the job, which calls
``plan_fixups`` + ``run_fixups`` for the ``uefi-nvram-entry`` step on the VM's own disk,
twice (a second restore onto the same disk must replace its entry, not add one), and
prints the results and ``efibootmgr -v``. Then the fallback loader is deleted from the
ESP and the disk is booted again with the same NVRAM: only the new entry can start it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import blake3
import bootcell
import pytest
import qemu_harness
import systemfixtures

import rescue
from rescue.image.repository import Repository

pytestmark = [pytest.mark.root, pytest.mark.qemu]

backups = systemfixtures.backups
scratch = systemfixtures.scratch
test_systems = systemfixtures.test_systems

JOB = r'''
import json, subprocess, sys
sys.path.insert(0, "/mnt/py")
from rescue.engine.bootfix import FixupContext, run_fixups
from rescue.image.manifest import Manifest
from rescue.plan.fixups import plan_fixups

root = next(l.split()[0] for l in open("/proc/mounts") if l.split()[1] == "/")
disk = root.rstrip("0123456789")
disk = disk[:-1] if disk.endswith("p") and "nvme" in disk else disk
m = Manifest.from_dict(json.load(open("/mnt/manifest.json")))
steps = [s for s in plan_fixups(m, "uefi", [], set()) if s.name == "uefi-nvram-entry"]
parts = {p.number: f"{disk}{p.number}" for p in m.disks[0].partitions}
ctx = FixupContext(disk=disk, partitions=parts, manifest=m, firmware="uefi",
                   workdir="/mnt/work")
for _ in range(2):
    for r in run_fixups(ctx, steps):
        print("NVRAM-RESULT " + json.dumps(r.to_dict()), flush=True)
out = subprocess.run(["efibootmgr", "-v"], capture_output=True, text=True).stdout
for line in out.splitlines():
    print("EFIBOOTMGR " + line, flush=True)
'''


def make_job_disk(path: Path, manifest_dict: dict) -> None:
    tree = path.with_suffix(".d")
    py = tree / "py"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(rescue.__file__).parent, py / "rescue", ignore=ignore)
    shutil.copytree(Path(blake3.__file__).parent, py / "blake3", ignore=ignore)
    (tree / "work").mkdir()
    (tree / "manifest.json").write_text(json.dumps(manifest_dict))
    (tree / "job.py").write_text(JOB)
    (tree / "job.sh").write_text("PYTHONDONTWRITEBYTECODE=1 python3 /mnt/job.py\n")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "RESCUEJOB", "-d", str(tree), str(path),
                    "96M"], check=True, capture_output=True)
    shutil.rmtree(tree)


def test_nvram_entry_created_in_uefi_firmware_and_boots(backups, scratch, tmp_path):
    ts, repo, image_id = backups["uefi-gpt"]
    target = scratch / "nvram-target.img"
    job = scratch / "nvram-job.img"
    vars_file = scratch / "nvram-vars.fd"
    logs = Path(os.environ.get("RESCUE_BOOT_LOGS", "/var/cache/rescue-tests/boot-logs"))
    try:
        restored = bootcell.restore_and_fix(ts, repo, image_id, target, size="same",
                                            bus="virtio")
        by = {r.name: r for r in restored.results}
        assert by["uefi-fallback-loader"].status == "done"
        assert by["uefi-nvram-entry"].status == "skipped"  # the host has no UEFI NVRAM
        manifest = Repository.open(repo).load_manifest(image_id)
        make_job_disk(job, manifest.to_dict())
        shutil.copyfile(qemu_harness.OVMF_VARS, vars_file)

        first = qemu_harness.boot(target, firmware="uefi", bus="virtio", marker=ts.marker,
                                  vars_file=vars_file, extra_disks=[str(job)],
                                  keep_log=logs / "nvram-job.log")
        assert first.booted, first.tail(60)
        runs = [json.loads(line.split("NVRAM-RESULT ", 1)[1])
                for line in first.console.splitlines() if "NVRAM-RESULT " in line]
        assert len(runs) == 2, first.tail(60)
        for run in runs:
            assert run["status"] == "done", run
            assert "created and read back (first in BootOrder)" in run["detail"]
        assert "removed stale" not in runs[0]["detail"]
        assert "removed stale Boot" in runs[1]["detail"]  # replaced, not piled up
        label = f"{manifest.os_name} ({manifest.computer})"
        nvram = [ln for ln in first.console.splitlines() if ln.startswith("EFIBOOTMGR Boot0")]
        ours = [ln for ln in nvram if label in ln]
        assert len(ours) == 1, nvram

        # Without the fallback loader only the NVRAM entry can start the disk.
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        subprocess.run(["mdeltree", "-i", f"{target}@@1M", "::/EFI/BOOT"], env=env,
                       check=True, capture_output=True)
        second = qemu_harness.boot(target, firmware="uefi", bus="virtio", marker=ts.marker,
                                   vars_file=vars_file, keep_log=logs / "nvram-boot.log")
        assert second.booted, second.tail(60)
        assert re.search(rf'BdsDxe: starting Boot[0-9A-F]{{4}} "{re.escape(label)}"',
                         second.console), second.tail()
        # And with a fresh, empty NVRAM the same disk does not boot: the entry did it.
        third = qemu_harness.boot(target, firmware="uefi", bus="virtio", marker=ts.marker,
                                  timeout=120)
        assert not third.booted and third.reason == "uefi-shell", third.tail()
    finally:
        for p in (target, job, vars_file, target.with_suffix(".report.json")):
            p.unlink(missing_ok=True)
