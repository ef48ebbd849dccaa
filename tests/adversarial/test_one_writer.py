"""One writer per repository (issue 12, finding 6): a backup, delete or prune holds a
lock file at the repository's top (created with O_CREAT|O_EXCL, which FAT, SMB and NFS
all honour) for as long as it writes. A second writer is refused at once with a sentence
naming the holder and --break-lock; a lock left behind by a crash is recognised."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rescue import services
from rescue.errors import RepositoryError
from rescue.image.repository import LOCK_FILE, Repository, _boot_id, _machine_id


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(root: Path, age: float = 0.0, **fields: object) -> Path:
    info = {"host": "other-pc", "pid": 4242, "boot_id": "b" * 36, "machine_id": "m" * 32,
            "started": "2026-01-01T00:00:00+00:00", "token": "t" * 32}
    info.update(fields)
    path = root / LOCK_FILE
    path.write_text(json.dumps(info))
    if age:
        past = time.time() - age
        os.utime(path, (past, past))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    Repository.create(tmp_path / "repo")
    return tmp_path / "repo"


def test_a_second_writer_is_refused_while_the_first_writes(root: Path) -> None:
    with services.open_writer(root):
        lock = json.loads((root / LOCK_FILE).read_text())
        assert lock["pid"] == os.getpid() and lock["boot_id"] == _boot_id()
        with pytest.raises(RepositoryError) as refused, services.open_writer(root):
            pass
        sentence = str(refused.value)
        assert f"process {os.getpid()} on " in sentence
        assert "--break-lock" in sentence and str(root / LOCK_FILE) in sentence
        # the refusal took nothing away from the writer that holds the lock
        assert json.loads((root / LOCK_FILE).read_text())["token"] == lock["token"]
    assert not (root / LOCK_FILE).exists()  # let go of after the block
    with services.open_writer(root):
        pass


def test_a_lock_of_a_process_that_ended_on_this_system_is_taken_over(root: Path) -> None:
    _write_lock(root, host="here", pid=_dead_pid(), boot_id=_boot_id())
    with services.open_writer(root):
        assert json.loads((root / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_live_process_on_this_system_keeps_its_lock(root: Path) -> None:
    _write_lock(root, host="here", pid=os.getppid(), boot_id=_boot_id(), age=7200)
    with pytest.raises(RepositoryError, match="in use"), services.open_writer(root):
        pass


def test_a_lock_of_this_machine_before_a_reboot_is_taken_over(root: Path) -> None:
    if not _machine_id():
        pytest.skip("this system has no machine id")
    import socket
    _write_lock(root, host=socket.gethostname(), machine_id=_machine_id(),
                boot_id="0" * 36)
    with services.open_writer(root):
        pass


def test_another_machine_s_lock_holds_until_it_is_no_longer_refreshed(root: Path) -> None:
    _write_lock(root, age=60)
    with pytest.raises(RepositoryError) as refused, services.open_writer(root):
        pass
    assert "process 4242 on other-pc" in str(refused.value)
    _write_lock(root, age=3 * 3600)  # its writer stopped refreshing it hours ago
    with services.open_writer(root):
        assert json.loads((root / LOCK_FILE).read_text())["host"] != "other-pc"


def test_break_lock_takes_a_live_lock(root: Path) -> None:
    _write_lock(root)
    with services.open_writer(root, break_lock=True):
        assert json.loads((root / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (root / LOCK_FILE).exists()


def test_a_half_written_lock_holds_until_it_is_old(root: Path) -> None:
    (root / LOCK_FILE).write_bytes(b"")  # the writer died between create and write
    with pytest.raises(RepositoryError, match="in use"), services.open_writer(root):
        pass
    past = time.time() - 3 * 3600
    os.utime(root / LOCK_FILE, (past, past))
    with services.open_writer(root):
        pass


def test_a_lock_taken_over_is_not_removed_by_its_old_holder(root: Path) -> None:
    with services.open_writer(root):
        _write_lock(root, token="n" * 32)  # broken and taken by another technician
    assert json.loads((root / LOCK_FILE).read_text())["token"] == "n" * 32


def test_a_refused_first_backup_leaves_no_lock_and_no_repository(tmp_path: Path) -> None:
    where = tmp_path / "new-repo"
    with pytest.raises(RuntimeError), services.open_writer(where):
        raise RuntimeError("refused")
    assert not where.exists()


def test_the_lock_is_refreshed_while_held(root: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    from rescue.image import repository
    monkeypatch.setattr(repository, "LOCK_REFRESH_S", 0.05)
    with services.open_writer(root):
        past = time.time() - 3600
        os.utime(root / LOCK_FILE, (past, past))
        time.sleep(0.3)
        assert time.time() - (root / LOCK_FILE).stat().st_mtime < 60
