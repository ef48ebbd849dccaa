"""Delta restore: chunks already on the target are not rewritten; an interrupted restore
resumes where it stopped and the result is complete and verified."""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

import pytest
from realdisk import SRC_SIZE, BackedUp, rescue_cli, source_digest

from rescue import services
from rescue.engine.blockio import BlockTarget
from rescue.engine.restore import Restorer
from rescue.errors import DeviceError, from_oserror
from rescue.runner import CommandRunner

pytestmark = pytest.mark.root


def _restore(backed: BackedUp, target: str, report: Path, *extra: str) -> dict:
    rescue_cli("restore", "--repo", str(backed.repo), "--image", backed.image_id, "--disk",
               target, "--yes", "--firmware", "uefi", "--report", str(report), *extra,
               check=True)
    return dict(json.loads(report.read_text()))


def test_second_restore_with_delta_writes_nothing(gpt_backup: BackedUp, blank_disk,
                                                  tmp_path: Path) -> None:
    target = blank_disk(SRC_SIZE)
    first = _restore(gpt_backup, target, tmp_path / "r1.json")
    assert first["bytes_written"] > 0 and first["bytes_skipped"] == 0
    second = _restore(gpt_backup, target, tmp_path / "r2.json", "--delta", "--verify")
    assert second["plan"]["reuse_table"] is True
    assert second["bytes_written"] == 0
    assert second["bytes_skipped"] == first["bytes_written"]
    assert second["verified"] is True
    assert source_digest(f"{target}p2", tmp_path / "m") == gpt_backup.digest


class DiesAfter(BlockTarget):
    """Fault injection: the target fails after 40 writes, like a cable pulled mid-restore."""

    budget = 40

    def pwrite(self, data, offset):  # type: ignore[no-untyped-def]
        DiesAfter.budget -= 1
        if DiesAfter.budget < 0:
            raise from_oserror(OSError(errno.EIO, "I/O error"), f"Writing at byte {offset}")
        super().pwrite(data, offset)


def test_interrupted_restore_resumes_and_completes(gpt_backup: BackedUp, blank_disk,
                                                   tmp_path: Path) -> None:
    target = blank_disk(SRC_SIZE)
    prepared = services.prepare_restore(str(gpt_backup.repo), gpt_backup.image_id, target)
    broken = Restorer(prepared.repo, prepared.manifest, prepared.plan, CommandRunner(),
                      target_factory=DiesAfter)
    with pytest.raises(DeviceError):
        broken.run()
    resumed = _restore(gpt_backup, target, tmp_path / "r.json", "--resume", "--verify")
    assert resumed["plan"]["reuse_table"] is True
    assert resumed["bytes_skipped"] > 0  # the chunks written before the failure
    assert resumed["bytes_written"] > 0
    assert resumed["verified"] is True
    fsck = subprocess.run(["e2fsck", "-fn", f"{target}p2"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout
    assert source_digest(f"{target}p2", tmp_path / "m") == gpt_backup.digest
