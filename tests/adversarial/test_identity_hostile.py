"""A hostile source tree against the identity reader (rescue.devices.sysinfo._tree_reader,
used for every mounted root: xfs, btrfs subvolumes, LVs): an /etc/hostname that is a huge
(sparse) file must not make the backup read it whole into memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GiB = 1024**3

PROBE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from rescue.devices.sysinfo import _identity, _tree_reader
info = _identity(_tree_reader(sys.argv[1]))
print(info.os_name, "|", info.computer[:40])
"""


def _tree(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('NAME="Hostile"\nPRETTY_NAME="Hostile 1"\n')
    with open(root / "data.bin", "wb") as f:
        f.write(b"evil-box\n")
        f.truncate(4 * GiB)  # sparse: costs nothing on the source disk
    os.symlink("/data.bin", root / "etc/hostname")  # resolved inside the tree


def test_a_huge_hostname_file_is_not_read_whole(tmp_path: Path) -> None:
    _tree(tmp_path / "root")
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "root")],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-800:]
    assert "Hostile 1" in proc.stdout


def test_symlinks_never_leave_the_tree(tmp_path: Path) -> None:
    """Regression guard: absolute and ../ symlinks resolve inside the mounted tree."""
    from rescue.devices.sysinfo import _tree_reader

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink(str(outside / "secret"), root / "etc/hostname")
    os.symlink("../../../../../../../" + str(outside / "secret"), root / "etc/os-release")
    reader = _tree_reader(str(root))
    assert reader.read("/etc/hostname") is None
    assert reader.read("/etc/os-release") is None
