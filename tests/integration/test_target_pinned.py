"""The target is pinned (issue 12, finding 5): only a whole disk may be a target; the
plan records the disk's identity, which is checked again through the open disk right
before the first write (a disk swapped or attached again at the same node is refused,
nothing written); the disk stays open with O_EXCL while the restore writes it."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from loopdev import loop_device, partition, sh
from realdisk import SRC_SIZE, BackedUp, MiB, file_is_zero, rescue_cli, source_digest

from rescue import services
from rescue.errors import TargetRefusedError
from rescue.events import Event, StageStarted

pytestmark = pytest.mark.root


def _digest(path: Path) -> str:
    h = hashlib.blake2b()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def test_partition_node_is_refused_before_anything_is_written(gpt_backup: BackedUp,
                                                             tmp_path: Path) -> None:
    with loop_device(tmp_path / "t.img", SRC_SIZE) as disk:
        nodes = partition(disk, "label: gpt\n,\n")
        before = _digest(tmp_path / "t.img")
        proc = rescue_cli("restore", "--repo", str(gpt_backup.repo), "--image",
                          gpt_backup.image_id, "--disk", nodes[0], "--yes")
        assert proc.returncode == 21, proc.stderr
        assert f"{nodes[0]} is a partition of {disk}" in proc.stderr
        assert "only a whole disk" in proc.stderr
        assert _digest(tmp_path / "t.img") == before
        with pytest.raises(TargetRefusedError, match="partition of"):
            services.prepare_restore(str(gpt_backup.repo), gpt_backup.image_id, nodes[0])


def test_plan_records_the_target_identity(gpt_backup: BackedUp, blank_disk) -> None:
    target = blank_disk(SRC_SIZE)
    prepared = services.prepare_restore(str(gpt_backup.repo), gpt_backup.image_id, target)
    try:
        t = prepared.plan.target
        st = os.stat(target)
        assert t.devnum == f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        assert t.diskseq > 0 and t.size_bytes == SRC_SIZE and not t.partition_of
        assert prepared.to_dict()["target"]["diskseq"] == t.diskseq
    finally:
        prepared.close()


def test_loop_device_attached_to_another_file_after_planning_is_refused(
        gpt_backup: BackedUp, tmp_path: Path) -> None:
    first, second = tmp_path / "first.img", tmp_path / "second.img"
    with open(second, "wb") as f:
        f.truncate(SRC_SIZE)
    with loop_device(first, SRC_SIZE) as target:
        prepared = services.prepare_restore(str(gpt_backup.repo), gpt_backup.image_id,
                                            target)
        # the same node, the same size, no serial: another disk all the same
        sh("losetup", "-d", target)
        sh("losetup", target, second)
        with pytest.raises(TargetRefusedError,
                           match="not the disk the restore was planned for.*diskseq"):
            services.run_restore(prepared)
        assert file_is_zero(first) and file_is_zero(second)


def test_target_of_another_size_after_planning_is_refused(gpt_backup: BackedUp,
                                                          tmp_path: Path) -> None:
    with loop_device(tmp_path / "t.img", SRC_SIZE) as target:
        prepared = services.prepare_restore(str(gpt_backup.repo), gpt_backup.image_id,
                                            target)
        os.truncate(tmp_path / "t.img", SRC_SIZE + 64 * MiB)
        sh("losetup", "-c", target)
        with pytest.raises(TargetRefusedError, match="changed since the plan was made"):
            services.run_restore(prepared)
        assert file_is_zero(tmp_path / "t.img")


def test_target_stays_claimed_while_it_is_written(gpt_backup: BackedUp, blank_disk,
                                                  tmp_path: Path) -> None:
    """While the data is written, nothing else can claim the disk (mount it, mkfs it,
    open it with O_EXCL); the restore with its fix-ups still completes."""
    target = blank_disk(SRC_SIZE + 64 * MiB)  # larger: the root filesystem is grown
    # UEFI, as the image's system booted: the fix-ups mount the ESP and the root
    prepared = services.prepare_restore(str(gpt_backup.repo), gpt_backup.image_id, target,
                                        services.RestoreOptions(firmware="uefi"))
    seen: list[str] = []

    def sink(event: Event) -> None:
        if isinstance(event, StageStarted) and event.stage == "write-data":
            try:
                os.close(os.open(target, os.O_RDONLY | os.O_EXCL))
                seen.append("claimed by someone else")
            except OSError as exc:
                seen.append(errno.errorcode[exc.errno or 0])
            mkfs = subprocess.run(["mkfs.ext4", "-q", "-F", f"{target}p2"],
                                  capture_output=True, text=True)
            seen.append(f"mkfs {mkfs.returncode}")

    report = services.run_restore(prepared, sink)
    assert report.result == "ok"
    assert seen == ["EBUSY", "mkfs 1"]
    assert not report.boot_fixups_failed, report.warnings
    # after the data, the partitions are claimed one by one: swap made, root grown,
    # the ESP and the root mounted by the fix-ups
    steps = {(s.name, s.status) for s in report.steps}
    assert {("recreate-swap", "done"), ("grow-filesystems", "done"),
            ("uefi-fallback-loader", "done")} <= steps, report.steps
    assert not [s for s in report.steps if s.status == "failed"], report.steps
    assert source_digest(f"{target}p2", tmp_path / "m") == gpt_backup.digest
