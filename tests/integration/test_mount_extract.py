"""rescue mount | umount | extract on real images: partition files produced on demand
from folder and web-server repositories (format 2 and format 1), filesystems mounted
read-only through loop devices (ext4, xfs, btrfs, ntfs), everything taken down by
`rescue umount` and by SIGTERM, files copied out with their metadata, and a damaged chunk
read as an I/O error of its own range only."""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from httpserve import serve
from loopdev import loop_device, mounted, partition
from realdisk import BackedUp, MiB, rescue_cli

from rescue.demo.sample_system import populate_tree, tree_digest
from rescue.engine.browse import state_path
from rescue.image import chunks as codec
from rescue.image.manifest import Manifest
from rescue.image.repository import Repository

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "iso"))
from sambaserve import samba  # noqa: E402

pytestmark = pytest.mark.root


class Mount:
    """A running `rescue mount` process: its output lines as they come."""

    def __init__(self, repo: str, where: Path, *extra: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.where = where
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rescue", "mount", "--repo", repo, *extra, str(where)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, keep in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._drain, args=(stream, keep), daemon=True).start()

    def _drain(self, stream, keep: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            keep.append(line)
            self.out.put(line)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.startswith("Read-only.") for line in self.stdout):
                return
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(f"rescue mount ended ({self.proc.returncode}): "
                                     f"{''.join(self.stderr)}{''.join(self.stdout)}")
            time.sleep(0.05)
        raise AssertionError("rescue mount did not get ready: " + "".join(self.stdout))

    def stop(self) -> None:
        if self.proc.poll() is None:
            rescue_cli("umount", str(self.where))
            self.proc.wait(timeout=60)


@contextlib.contextmanager
def rescue_mount(repo: str, where: Path, *extra: str) -> Iterator[Mount]:
    m = Mount(repo, where, *extra)
    try:
        m.wait_ready()
        yield m
    finally:
        m.stop()
        assert "Traceback" not in "".join(m.stderr), "".join(m.stderr)


def nothing_left(where: Path) -> None:
    """No mount at or below *where*, no loop device over a file below it, no state."""
    top = os.path.realpath(where)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    assert not [p for p in points if p == top or p.startswith(top + "/")], points
    loops = subprocess.run(["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"],
                           capture_output=True, text=True).stdout
    assert top not in loops, loops
    assert not state_path(where).exists()


def check_chunks(repo_path: str | Path, manifest: Manifest, where: Path) -> int:
    """Every stored chunk of every partition reads back from its partition file with its
    BLAKE3, every zero chunk as zeros: the used ranges equal the source byte for byte.
    The number of chunks compared."""
    repo = Repository.open(repo_path) if not str(repo_path).startswith("http") else None
    compared = 0
    for p in manifest.disks[0].partitions:
        if p.data is None:
            continue
        data = p.data
        fetch = (lambda part: repo.read_part(part, "test")) if repo else None
        with open(where / "parts" / f"p{p.number}.img", "rb") as f:
            for entry in data.entries(fetch):  # type: ignore[arg-type]
                for i in range(entry.index, entry.index + entry.count):
                    start, length = data.chunk_span(i)
                    got = os.pread(f.fileno(), length, start)
                    if entry.digest is None:
                        assert got == bytes(length), (p.number, i)
                    else:
                        assert codec.chunk_hash(got) == entry.digest, (p.number, i)
                    compared += 1
    return compared


def test_mount_a_folder_repository_then_umount(gpt_backup: BackedUp, tmp_path: Path) -> None:
    where = tmp_path / "img"
    manifest = Repository.open(gpt_backup.repo).load_manifest(gpt_backup.image_id)
    with rescue_mount(str(gpt_backup.repo), where) as m:
        out = "".join(m.stdout)
        sizes = {p.number: p.size * 512 for p in manifest.disks[0].partitions}
        for n, size in sizes.items():
            assert (where / "parts" / f"p{n}.img").stat().st_size == size
        # the root filesystem, mounted read-only with no journal replay
        assert tree_digest(where / "p2") == gpt_backup.digest
        assert (where / "p2/etc/hostname").read_text() == "demo-pc\n"
        with open("/proc/self/mountinfo") as f:
            line = next(x for x in f if x.split()[4] == str(where / "p2"))
        assert " ro," in line or " ro " in line
        with pytest.raises(OSError) as err:
            (where / "p2/etc/new").write_text("x")
        assert err.value.errno == errno.EROFS
        with pytest.raises(OSError):
            open(where / "parts/p2.img", "r+b")  # noqa: SIM115
        # the partition files: used ranges byte for byte, the filesystem's own check clean
        assert check_chunks(gpt_backup.repo, manifest, where) > 50
        fsck = subprocess.run(["e2fsck", "-fn", str(where / "parts/p2.img")],
                              capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        # vfat: this kernel has no vfat driver; its file is read with mtools instead
        assert "the running kernel cannot mount vfat" in out or (where / "p1").is_dir()
        esp = str(where / "parts/p1.img")
        assert subprocess.run(["fsck.fat", "-n", esp], capture_output=True).returncode == 0
        for name, content in gpt_backup.system.esp_files.items():
            got = subprocess.run(["mtype", "-i", esp, "::/" + name], capture_output=True,
                                 check=True).stdout
            assert got == content, name
        # swap: recreated on restore, nothing stored: its file reads as zeros
        assert "nothing of it is stored" in out
        with open(where / "parts/p3.img", "rb") as f:
            assert f.read(MiB) == bytes(MiB)
        assert m.proc.poll() is None
    assert m.proc.returncode == 0
    assert f"Unmounted {where}" in "".join(m.stdout)
    nothing_left(where)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_ctrl_c_and_a_killed_mount_leave_nothing(gpt_backup: BackedUp, tmp_path: Path,
                                                         sig: signal.Signals) -> None:
    where = tmp_path / "img"
    m = Mount(str(gpt_backup.repo), where)
    try:
        m.wait_ready()
        assert (where / "p2/etc/hostname").exists()
        m.proc.send_signal(sig)
        assert m.proc.wait(timeout=60) == 0
    finally:
        m.stop()
    nothing_left(where)
    # a mount killed outright (SIGKILL) leaves its mounts; rescue umount takes them down
    m = Mount(str(gpt_backup.repo), where)
    try:
        m.wait_ready()
        m.proc.kill()
        m.proc.wait(timeout=30)
        assert state_path(where).exists()
        umount = rescue_cli("umount", str(where), check=True)
        assert "Unmounted" in umount.stdout
    finally:
        m.stop()
    nothing_left(where)
    again = rescue_cli("umount", str(where))
    assert again.returncode == 2 and "No image is mounted" in again.stderr


def test_a_background_mount_returns_and_is_taken_down_by_umount(gpt_backup: BackedUp,
                                                                tmp_path: Path) -> None:
    where = tmp_path / "img"
    where.mkdir()
    started = rescue_cli("mount", "--background", "--repo", str(gpt_backup.repo), str(where),
                         check=True)
    assert "Mounted in the background" in started.stdout
    pid = int(started.stdout.split("(process ")[1].split(")")[0])
    assert (where / "p2/etc/hostname").read_text() == "demo-pc\n"
    assert str(gpt_backup.repo) not in Path(f"/proc/{pid}/cmdline").read_text()
    log = state_path(where).with_suffix(".log")
    assert log.exists()
    rescue_cli("umount", str(where), check=True)
    assert not log.exists()
    assert not Path(f"/proc/{pid}").exists() or b"rescue" not in Path(
        f"/proc/{pid}/cmdline").read_bytes()
    nothing_left(where)
    # a background mount that cannot start says why and leaves nothing
    bad = rescue_cli("mount", "--background", "--repo", str(gpt_backup.repo), "--image",
                     "nosuchimage", str(where))
    assert bad.returncode == 11 and "No image 'nosuchimage'" in bad.stderr
    nothing_left(where)
    assert not log.exists()


def test_mount_over_a_web_server(gpt_backup: BackedUp, tmp_path: Path) -> None:
    where = tmp_path / "img"
    with serve(gpt_backup.repo, listing=False) as (url, requests):
        started = time.monotonic()
        with rescue_mount(url, where):
            listing = os.listdir(where / "p2")
            took = time.monotonic() - started
            assert "etc" in listing and took < 30
            assert tree_digest(where / "p2") == gpt_backup.digest
            fsck = subprocess.run(["e2fsck", "-fn", str(where / "parts/p2.img")],
                                  capture_output=True, text=True)
            assert fsck.returncode == 0, fsck.stdout
        assert any(r.startswith("GET /chunks/") for r in requests)
    nothing_left(where)


def test_mount_and_extract_from_an_smb_share(gpt_backup: BackedUp, tmp_path: Path) -> None:
    """A share is opened through the one door (rescue.repo) and stays mounted while the
    image is: after `rescue umount` neither is left."""
    if shutil.which("smbd") is None or shutil.which("mount.cifs") is None:
        pytest.skip("needs samba and cifs-utils")
    subprocess.run(["modprobe", "-q", "cifs"], check=False)
    with open("/proc/filesystems") as f:
        if not any(line.split()[-1] == "cifs" for line in f if line.strip()):
            pytest.skip("this kernel cannot mount SMB shares (no cifs module)")
    share = tmp_path / "share"
    shutil.copytree(gpt_backup.repo, share / "rescue")
    where = tmp_path / "img"
    with samba(share, tmp_path / "samba"):
        location = "smb://127.0.0.1/backups/rescue"
        with rescue_mount(location, where):
            assert tree_digest(where / "p2") == gpt_backup.digest
        nothing_left(where)
        rescue_cli("extract", "--repo", location, "--path", "/etc/hostname", "--to",
                   str(tmp_path / "out"), check=True)
        assert (tmp_path / "out/hostname").read_text() == "demo-pc\n"
        with open("/proc/self/mountinfo") as f:
            assert "rescue-share-" not in f.read()


def _as_format_1(manifest: Manifest, repo: Repository) -> Manifest:
    for _place, data in manifest.ranges():
        entries = list(data.entries(lambda part: repo.read_part(part, "test")))
        data.chunks = [(e.index, e.digest) for e in entries if e.digest is not None]
        data.zero = [(e.index, e.count) for e in entries if e.digest is None]
        data.parts = []
    manifest.format_version = 1
    return manifest


def test_mount_a_format_1_image(gpt_backup: BackedUp, tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    shutil.copytree(gpt_backup.repo, repo_path)
    repo = Repository.open(repo_path)
    old = _as_format_1(repo.load_manifest(gpt_backup.image_id), repo)
    (repo_path / "images" / old.id / "manifest.json").write_bytes(old.to_json())
    where = tmp_path / "img"
    with rescue_mount(str(repo_path), where, "--image", old.id):
        assert tree_digest(where / "p2") == gpt_backup.digest
        assert check_chunks(repo_path, old, where) > 50
    nothing_left(where)


MKFS = {
    "xfs": ["mkfs.xfs", "-q", "-L", "data-xfs"],
    "btrfs": ["mkfs.btrfs", "-q", "-L", "data-btrfs"],
    "ntfs": ["mkfs.ntfs", "-q", "-F", "-f", "-L", "data-ntfs"],
}
CHECK = {
    "xfs": ["xfs_repair", "-n", "-f"],
    "btrfs": ["btrfs", "check", "--readonly", "--force"],  # mounted too, read-only
    "ntfs": ["ntfsfix", "-n"],
}


def _ntfs_view(digest: dict) -> dict:
    """ntfs-3g maps owners and modes; compare what NTFS stores."""
    return {k: (v[3], v[9]) for k, v in digest.items()}


def test_mount_xfs_btrfs_ntfs(tmp_path: Path) -> None:
    order = ["ntfs", "btrfs", "xfs"]
    digests = {}
    with loop_device(tmp_path / "src.img", 1024 * MiB) as src:
        nodes = partition(src, "label: gpt\nsize=150M\nsize=200M\nsize=600M\n")
        for node, fstype in zip(nodes, order, strict=True):
            subprocess.run([*MKFS[fstype], node], check=True, capture_output=True)
            mnt = tmp_path / f"m-{fstype}"
            if fstype == "ntfs":
                mnt.mkdir()
                subprocess.run(["ntfs-3g", node, str(mnt)], check=True)
                try:
                    (mnt / "docs").mkdir()
                    for i in range(40):
                        (mnt / "docs" / f"f{i}.txt").write_bytes(os.urandom(1000 + i * 3000))
                finally:
                    subprocess.run(["umount", str(mnt)], check=True)
                subprocess.run(["ntfs-3g", "-o", "ro", node, str(mnt)], check=True)
                try:
                    digests[fstype] = _ntfs_view(tree_digest(mnt))
                finally:
                    subprocess.run(["umount", str(mnt)], check=True)
            else:
                with mounted(node, mnt) as m:
                    populate_tree(m, files=200, data_bytes=6 * MiB, seed=21)
                with mounted(node, mnt, "ro") as m:
                    digests[fstype] = tree_digest(m)
        repo = tmp_path / "repo"
        rescue_cli("backup", "--disk", src, "--repo", str(repo), check=True)
    where = tmp_path / "img"
    manifest = Repository.open(repo).load_manifest("latest")
    with rescue_mount(str(repo), where) as m:
        for n, fstype in enumerate(order, start=1):
            view = tree_digest(where / f"p{n}")
            assert (_ntfs_view(view) if fstype == "ntfs" else view) == digests[fstype], fstype
            check = subprocess.run([*CHECK[fstype], str(where / "parts" / f"p{n}.img")],
                                   capture_output=True, text=True)
            assert check.returncode == 0, (fstype, check.stdout, check.stderr)
        check_chunks(repo, manifest, where)
        with open("/proc/self/mountinfo") as f:
            info = {x.split()[4]: x for x in f}
        assert "norecovery" in info[str(where / "p3")]  # xfs: no log replay
        assert m.proc.poll() is None
    nothing_left(where)


# -------------------------------------------------------------------------------- extract


def _meta(digest: dict) -> dict:
    """What a copy keeps of each path: mode, owner, size of files, mtime, hard links,
    xattrs, content or link target (not directory sizes or block counts)."""
    out = {}
    for rel, (mode, uid, gid, size, mtime, nlink, _blocks, first, xattrs, content) in \
            digest.items():
        is_dir = (mode & 0o170000) == 0o040000
        out[rel] = (mode, uid, gid, None if is_dir else size, mtime,
                    None if is_dir else nlink, first, xattrs, content)
    return out


def test_extract_a_folder_a_file_and_the_whole_root(gpt_backup: BackedUp,
                                                   tmp_path: Path) -> None:
    repo = str(gpt_backup.repo)
    out = tmp_path / "out"
    # the whole root filesystem: every file, link, hard link, xattr, time as the source
    rescue_cli("extract", "--repo", repo, "--path", "/", "--to", str(out / "all"),
               check=True)
    assert _meta(tree_digest(out / "all")) == _meta(gpt_backup.digest)
    sparse = out / "all/var/log/sparse.img"
    assert sparse.stat().st_size == 64 * MiB and sparse.stat().st_blocks * 512 < MiB
    assert (out / "all/usr/lib/docs").is_symlink()
    assert os.readlink(out / "all/etc/dangling") == "/nonexistent/target"
    linked = [k for k, v in gpt_backup.digest.items() if v[5] > 1 and "hard" in k]
    assert linked
    for rel in linked[:5]:
        assert (out / "all" / rel).stat().st_nlink == gpt_backup.digest[rel][5]
    withx = [k for k, v in gpt_backup.digest.items() if v[8]]
    assert withx and os.getxattr(out / "all" / withx[0], "user.rescue.test")
    # a folder
    res = rescue_cli("extract", "--repo", repo, "--path", "/home/user", "--to",
                     str(out / "one"), check=True)
    assert "Copied /home/user" in res.stdout
    def loose(meta: dict) -> dict:  # hard links may lead out of the folder: no counts
        return {k: v[:5] + v[7:] for k, v in meta.items()}

    want = {k[len("home/"):]: v for k, v in loose(_meta(gpt_backup.digest)).items()
            if k.startswith("home/user")}
    assert loose(_meta(tree_digest(out / "one"))) == want
    # a file, through a path whose folder is a symbolic link inside the image
    res = rescue_cli("extract", "--repo", repo, "--path", "/usr/lib/docs/pkg000/../../../../etc"
                     "/hostname", "--to", str(out / "file"), check=True)
    assert (out / "file/hostname").read_text() == "demo-pc\n"
    # existing files are refused, then replaced with --overwrite
    (out / "file/hostname").write_text("changed\n")
    again = rescue_cli("extract", "--repo", repo, "--path", "/etc/hostname", "--to",
                       str(out / "file"))
    assert again.returncode == 2 and "already exist" in again.stderr
    assert (out / "file/hostname").read_text() == "changed\n"
    rescue_cli("extract", "--repo", repo, "--path", "/etc/hostname", "--to",
               str(out / "file"), "--overwrite", check=True)
    assert (out / "file/hostname").read_text() == "demo-pc\n"
    # a path the image does not have; a partition that does not exist
    missing = rescue_cli("extract", "--repo", repo, "--path", "/no/such", "--to", str(out))
    assert missing.returncode == 2 and "is not in partition 2" in missing.stderr
    nopart = rescue_cli("extract", "--repo", repo, "--path", "/x", "--partition", "9",
                        "--to", str(out))
    assert nopart.returncode == 2 and "has no partition 9" in nopart.stderr
    # no private mount is left behind
    assert not [p for p in os.listdir("/run") if p.startswith("rescue-browse-")]


def test_extract_refuses_a_target_inside_a_mounted_image(gpt_backup: BackedUp,
                                                        tmp_path: Path) -> None:
    where = tmp_path / "img"
    with rescue_mount(str(gpt_backup.repo), where):
        res = rescue_cli("extract", "--repo", str(gpt_backup.repo), "--path",
                         "/etc/hostname", "--to", str(where / "p2/tmp"))
        assert res.returncode == 2 and "inside the mounted image" in res.stderr
    nothing_left(where)


# -------------------------------------------------------------------------------- hostile


def test_a_damaged_chunk_is_an_io_error_of_its_range_only(gpt_backup: BackedUp,
                                                         tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    shutil.copytree(gpt_backup.repo, repo_path)
    repo = Repository.open(repo_path)
    manifest = repo.load_manifest(gpt_backup.image_id)
    data = manifest.disks[0].partitions[1].data
    assert data is not None
    stored = [e for e in data.entries(lambda part: repo.read_part(part, "t")) if e.digest]
    victim = stored[len(stored) // 2]
    assert victim.digest is not None
    start, length = data.chunk_span(victim.index)
    # a whole, valid zstd frame of other bytes of the same length: only BLAKE3 tells
    forged = codec.compress(blake3.blake3(b"forged").digest(length=length))
    path = repo.chunk_path(victim.digest)
    path.chmod(0o644)
    path.write_bytes(forged)
    where = tmp_path / "img"
    with rescue_mount(str(repo_path), where) as m:
        fd = os.open(where / "parts/p2.img", os.O_RDONLY)
        try:
            with pytest.raises(OSError) as err:
                os.pread(fd, 4096, start)
            assert err.value.errno == errno.EIO
            # the chunks around it read fine
            if start >= length:
                assert len(os.pread(fd, 4096, start - length)) == 4096
            assert len(os.pread(fd, 4096, 0)) == 4096
        finally:
            os.close(fd)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("damaged" in x for x in m.stderr):
            time.sleep(0.1)
        said = "".join(m.stderr)
        assert "Read error, answered as an I/O error" in said
        assert victim.digest[:16] in said and "BLAKE3" in said
        assert m.proc.poll() is None  # still serving
    assert m.proc.returncode == 0
    nothing_left(where)


def _acl(*entries: tuple[int, int, int]) -> bytes:
    """A POSIX ACL as the kernel stores it in system.posix_acl_access (version 2)."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident)
                                           for tag, perm, ident in entries)


def test_extract_keeps_acls_device_nodes_and_sparse_files(tmp_path: Path) -> None:
    acl = _acl((0x01, 6, 0xFFFFFFFF), (0x02, 4, 1234), (0x04, 4, 0xFFFFFFFF),
               (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF))
    with loop_device(tmp_path / "src.img", 96 * MiB) as src:
        (node,) = partition(src, "label: gpt\nsize=80M, type=L\n")
        subprocess.run(["mkfs.ext4", "-q", "-L", "data", node], check=True)
        with mounted(node, tmp_path / "m") as m:
            (m / "etc").mkdir()
            (m / "etc/os-release").write_text("ID=test\n")
            shared = m / "share"
            shared.mkdir()
            (shared / "report.txt").write_text("acl\n")
            os.setxattr(shared / "report.txt", "system.posix_acl_access", acl)
            os.mknod(shared / "null", 0o020666, os.makedev(1, 3))
            os.link(shared / "report.txt", shared / "report-link.txt")
            with open(shared / "holes.bin", "wb") as f:
                f.truncate(16 * MiB)
                f.seek(8 * MiB)
                f.write(b"x" * 4096)
            os.utime(shared, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
            want = tree_digest(m / "share")
        repo = tmp_path / "repo"
        rescue_cli("backup", "--disk", src, "--repo", str(repo), check=True)
    out = tmp_path / "out"
    res = rescue_cli("extract", "--repo", str(repo), "--path", "/share", "--to", str(out),
                     check=True)
    assert "from p1" in res.stdout
    got = out / "share"
    assert _meta(tree_digest(got)) == _meta(want)
    assert os.getxattr(got / "report.txt", "system.posix_acl_access") == acl
    assert os.stat(got / "null").st_rdev == os.makedev(1, 3)
    assert os.stat(got).st_mtime_ns == 1_500_000_000_000_000_000
    assert os.stat(got / "holes.bin").st_blocks * 512 <= 64 * 1024
