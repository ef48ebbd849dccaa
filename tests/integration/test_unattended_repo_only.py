"""Unattended ``image=latest`` with ``repo=`` naming the location (issue 12, finding 8),
on real disks: a newer image of the same computer on an attached stick is not taken;
the image restored is the named repository's."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, sh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "wizard"))

from wizard_disks import back_up, build_source, check_restored  # noqa: E402

pytestmark = pytest.mark.root


def _wizard(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "rescue", "wizard", *args],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_latest_is_taken_from_the_named_repository_only(tmp_path: Path) -> None:
    named = tmp_path / "named"
    on_stick = tmp_path / "stick-tree" / "rescue"
    with loop_device(tmp_path / "source.img", 160 * MiB) as source:
        build_source(source, tmp_path)
        older = back_up(source, named, "in-named-repo")
        time.sleep(1.1)  # the stick's image is the newer one, of the same computer
        newer = back_up(source, on_stick, "on-a-stick")
    assert older.image_id != newer.image_id
    with loop_device(tmp_path / "stick.img", 96 * MiB) as stick, \
            loop_device(tmp_path / "target.img", 256 * MiB) as target:
        sh("mkfs.ext4", "-q", "-L", "STICK", "-d", tmp_path / "stick-tree", stick)
        job = tmp_path / "job.toml"
        job.write_text(f'action = "restore"\nrepo = "{named}"\nimage = "latest"\n'
                       f'target = "{target}"\nconfirm = true\n')
        proc = _wizard("--job", str(job), "--include-loop", "--disk", target, "--disk",
                       stick, "--simulate-power", "--log", str(tmp_path / "log"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"({older.image_id})" in proc.stdout
        assert newer.image_id not in proc.stdout
        check_restored(target, tmp_path)


def test_a_named_location_is_searched_alone_no_attached_disk_is_mounted(tmp_path: Path
                                                                       ) -> None:
    """With the location named, the attached disks are not even mounted read-only for
    the search; without one, the same stick is searched (the control)."""
    from rescue.runner import DryRunRunner
    from rescue.wizard.backend import EngineServices
    from rescue.wizard.headless import find_images

    named = tmp_path / "named"
    with loop_device(tmp_path / "source.img", 160 * MiB) as source:
        build_source(source, tmp_path)
        back_up(source, named, "in-named-repo")
        back_up(source, tmp_path / "stick-tree" / "rescue", "on-a-stick")
    with loop_device(tmp_path / "stick.img", 96 * MiB) as stick:
        sh("mkfs.ext4", "-q", "-L", "STICK", "-d", tmp_path / "stick-tree", stick)
        services = EngineServices(include_loop=True, disk_filter=lambda p: p == stick,
                                  power_runner=DryRunRunner(), log_file=tmp_path / "log")
        try:
            said: list[str] = []
            images = find_images(services, [str(named)], said.append, wait=0)
            assert [i.name for i in images] == ["in-named-repo"]
            assert services._catalog_mounts == set(), "an attached disk was mounted"
            images = find_images(services, [], said.append, wait=0)
            assert [i.name for i in images] == ["on-a-stick"]
            assert len(services._catalog_mounts) == 1  # the stick, searched this time
        finally:
            services.close()
