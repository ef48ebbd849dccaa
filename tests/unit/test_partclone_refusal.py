"""partclone's refusals reach the technician as sentences to act on, not as "check
/var/log/partclone.log" (real partclone.ntfs on a real, resized NTFS image file)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rescue.errors import SourceRefusedError
from rescue.fs import partclone
from rescue.runner import CommandRunner

MiB = 1024 * 1024


@pytest.mark.skipif(shutil.which("partclone.ntfs") is None or shutil.which("mkfs.ntfs") is None,
                    reason="partclone and ntfs-3g are not installed (make setup installs them)")
def test_ntfs_marked_for_a_check_is_refused_with_what_to_do(tmp_path: Path) -> None:
    img = tmp_path / "ntfs.img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    subprocess.run(["mkfs.ntfs", "-Q", "-F", str(img)], check=True, capture_output=True)
    clean = partclone.used_map("ntfs", str(img), 64 * MiB, CommandRunner())
    assert clean.used_bytes > 0
    with open(img, "r+b") as f:
        f.truncate(80 * MiB)
    # ntfsresize leaves the volume marked for a check, as Windows' Fast Startup does
    subprocess.run(["ntfsresize", "--force", "--no-progress-bar", str(img)], input="y\n",
                   text=True, check=True, capture_output=True)
    with pytest.raises(SourceRefusedError) as err:
        partclone.used_map("ntfs", str(img), 80 * MiB, CommandRunner())
    assert "shut it down fully" in str(err.value)
    assert "partclone.log" not in str(err.value)
