"""rescue.engine.browse.copy_out — the copy behind the wizard's "Browse files in a system
image": contents, modes, times, links and holes kept; what the target refuses (owners on
a FAT stick) named, not fatal; existing files never replaced; read errors fail one file;
a full target or a cancel stops it."""

from __future__ import annotations

import errno
import os
import threading

from rescue.engine import browse


def tree(tmp_path):
    src = tmp_path / "src"
    (src / "docs" / "sub").mkdir(parents=True)
    (src / "docs" / "a.txt").write_bytes(b"alpha\n" * 1000)
    (src / "docs" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 64)
    os.link(src / "docs" / "a.txt", src / "docs" / "hard.txt")
    os.symlink("a.txt", src / "docs" / "link")
    with open(src / "docs" / "sparse", "wb") as f:  # a hole of 3 MiB, then data
        f.seek(3 * 1024 * 1024)
        f.write(b"end")
    os.chmod(src / "docs" / "a.txt", 0o640)
    os.utime(src / "docs" / "sub", ns=(1_700_000_000_123_456_789,) * 2)
    os.utime(src / "docs" / "a.txt", ns=(1_600_000_000_000_000_001,) * 2)
    return src


def test_copies_contents_and_metadata(tmp_path):
    src = tree(tmp_path)
    dest = tmp_path / "stick" / "rescue-files-x" / "p2" / "docs"
    seen = []
    report = browse.copy_out([(str(src / "docs"), str(dest))],
                             progress=lambda done, total: seen.append((done, total)))
    assert not report.failed and not report.stopped and not report.not_kept
    assert report.folders == 2 and report.files == 5
    assert (dest / "a.txt").read_bytes() == b"alpha\n" * 1000
    assert (dest / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 64
    assert os.readlink(dest / "link") == "a.txt"
    assert os.stat(dest / "hard.txt").st_ino == os.stat(dest / "a.txt").st_ino
    assert os.stat(dest / "a.txt").st_mode & 0o777 == 0o640
    assert os.stat(dest / "a.txt").st_mtime_ns == 1_600_000_000_000_000_001
    assert os.stat(dest / "sub").st_mtime_ns == 1_700_000_000_123_456_789
    sparse = os.stat(dest / "sparse")
    assert sparse.st_size == 3 * 1024 * 1024 + 3
    assert sparse.st_blocks * 512 < 1024 * 1024  # the hole stayed a hole
    assert seen[-1] == (report.bytes, report.total_bytes)


def test_owners_refused_are_named_not_fatal(tmp_path, monkeypatch):
    src = tree(tmp_path)

    def no_chown(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(browse.os, "chown", no_chown)
    report = browse.copy_out([(str(src / "docs" / "a.txt"), str(tmp_path / "out" / "a"))])
    assert report.files == 1 and not report.failed
    assert report.not_kept == {browse.KEPT_OWNERS}
    assert (tmp_path / "out" / "a").read_bytes() == b"alpha\n" * 1000


def test_existing_files_are_not_replaced_and_read_errors_fail_one_file(tmp_path,
                                                                       monkeypatch):
    src = tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("mine")
    real_read = os.read

    def read(fd, n):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("b.bin"):
            raise OSError(errno.EIO, "Input/output error")
        return real_read(fd, n)

    monkeypatch.setattr(browse.os, "read", read)
    report = browse.copy_out([(str(src / "docs" / "a.txt"), str(out / "a.txt")),
                              (str(src / "docs" / "sub"), str(out / "sub"))])
    assert (out / "a.txt").read_text() == "mine"
    assert report.failures == 2
    assert any("already there" in f for f in report.failed)
    assert any("b.bin: read error (Input/output error)" in f for f in report.failed)
    assert not (out / "sub" / "b.bin").exists()  # no partial file left
    assert not report.stopped


def test_a_full_target_or_a_cancel_stops(tmp_path, monkeypatch):
    src = tree(tmp_path)
    cancel = threading.Event()
    cancel.set()
    report = browse.copy_out([(str(src / "docs"), str(tmp_path / "c"))], cancel=cancel)
    assert report.cancelled and report.stopped

    real_write = os.write

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / "full")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(browse.os, "write", write)
    report = browse.copy_out([(str(src / "docs"), str(tmp_path / "full"))])
    assert "full" in report.stopped
