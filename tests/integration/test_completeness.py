"""Completeness, by difference against a raw copy (issue 9).

For every filesystem rescue copies the used blocks of: make a populated filesystem on a
GPT loop disk, take a `dd` copy of its partition, back the disk up, restore it onto a
blank disk of the same size, and compare the restored partition with the dd copy:

(a) the filesystem's own read-only check is clean;
(b) every file and its metadata is identical (both mounted read-only in turn);
(c) each region the filesystem keeps outside its allocation map, located here with the
    filesystem's own tools (not with rescue.fs.regions), is byte-identical, as are the
    first and the last 4 KiB of the partition.

The bytes that differ overall (free space only) are printed per filesystem."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from loopdev import loop_device, mounted, partition, sh
from realdisk import MiB, rescue_cli

from rescue.demo.sample_system import tree_digest
from rescue.fs import registry

pytestmark = pytest.mark.root

KiB = 1024
SECTOR = 512
START = 2048  # first partition sector (1 MiB)
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
TAIL_MARK = b"rescue-completeness: bytes after the filesystem's last block\n" * 60


@dataclass
class Fs:
    name: str
    blkid: str
    mkfs: list[str]
    sectors: int  # partition size in sectors: deliberately not a multiple of 4 KiB
    populate: str  # "mount", "mtools", "sload" or "fuse"
    mount: list[str] = field(default_factory=list)  # how to mount read-only
    tool: str = ""  # the program that must exist
    mkfs_after: list[str] = field(default_factory=list)  # mkfs arguments after the device
    # the check finds fault with the layout itself (the dd copy too): then the restored
    # partition must get the very same verdict
    check_as_copy: bool = False

    @property
    def check(self) -> list[str]:
        """The filesystem's own read-only check (rescue.fs.registry), the node appended."""
        argv = registry.check_command(self.blkid)
        assert argv is not None, self.blkid
        return argv

    @property
    def program(self) -> str:
        return self.tool or self.mkfs[0]


def _s(mib: int) -> int:
    return mib * 2048 + 7  # a few sectors beyond the last whole block


FILESYSTEMS = [
    Fs("ext2", "ext2", ["mkfs.ext2", "-q", "-F", "-E", "nodiscard"], _s(48),
       "mount", ["ro"]),
    Fs("ext3", "ext3", ["mkfs.ext3", "-q", "-F", "-E", "nodiscard"], _s(48),
       "mount", ["ro,noload"]),
    Fs("ext4", "ext4", ["mkfs.ext4", "-q", "-F", "-E", "nodiscard"], _s(64),
       "mount", ["ro,noload"]),
    Fs("fat16", "vfat", ["mkfs.fat", "-F", "16", "-n", "SRC16"], _s(48),
       "mtools"),
    Fs("fat32", "vfat", ["mkfs.fat", "-F", "32", "-s", "1", "-n", "SRC32"], _s(48),
       "mtools"),
    Fs("xfs", "xfs", ["mkfs.xfs", "-q", "-f", "-K"], _s(300),
       "mount", ["ro,norecovery"]),
    Fs("btrfs", "btrfs", ["mkfs.btrfs", "-q", "-f", "-K"], _s(160),
       "mount", ["ro"]),
    Fs("ntfs", "ntfs", ["mkfs.ntfs", "-Q", "-F", "-q"], _s(48),
       "fuse", ["ntfs-3g", "-o", "ro"]),
    # a volume smaller than its partition (shrunk, or a partition grown without
    # ntfsresize): the backup boot sector lies mid-partition, away from the partition's end
    Fs("ntfs-short", "ntfs", ["mkfs.ntfs", "-Q", "-F", "-q"], _s(48),
       "fuse", ["ntfs-3g", "-o", "ro"], mkfs_after=[str(32 * 2048 + 5)],
       check_as_copy=True),  # ntfsfix looks for the backup boot sector at the device's end
    Fs("exfat", "exfat", ["mkfs.exfat"], _s(48),
       "fuse", ["mount.exfat-fuse", "-o", "ro"]),
    Fs("f2fs", "f2fs", ["mkfs.f2fs", "-q", "-f", "-t", "0"], _s(128),  # 100 MiB at least
       "sload", tool="sload.f2fs"),
    Fs("hfsplus", "hfsplus", ["mkfs.hfsplus"], _s(48),
       "none"),
]


# --- populating ---------------------------------------------------------------------------

def populate(root: Path, seed: int) -> None:
    """Directories, files of many sizes, symlinks, a hard link, modes, owners, mtimes and
    xattrs: whatever the filesystem supports (an OSError is a feature it lacks: symlinks
    and modes on exfat, user xattrs on ntfs-3g...)."""
    rng = random.Random(seed)
    dirs = [root / d for d in ("docs", "docs/old", "bin", "media/photos", "empty")]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(40):
        size = rng.choice([0, 1, 511, 4096, 5000, 70_000, 300_000, 1_200_000])
        p = rng.choice(dirs[:4]) / f"file{i:02d}.dat"
        p.write_bytes(rng.randbytes(size))
        mode = rng.choice([0o644, 0o755, 0o600])
        with contextlib.suppress(OSError):
            os.chmod(p, mode)
        if i % 5 == 0:
            with contextlib.suppress(OSError):
                os.chown(p, 1000, 1000)
        if i % 4 == 0:
            with contextlib.suppress(OSError):
                os.setxattr(p, "user.rescue", f"value {i}".encode())
        mtime = 1_600_000_000_000_000_000 + i * 10**9
        os.utime(p, ns=(mtime, mtime + 123_000_000))
        files.append(p)
    for link, target in (("docs/link", "old"), ("bin/abs", "/docs/file00.dat"),
                         ("dangling", "/nowhere/at/all")):
        with contextlib.suppress(OSError):
            (root / link).symlink_to(target)
    with contextlib.suppress(OSError):
        os.link(files[1], root / "hardlink")
    # a deleted file leaves old data in free space (the dd copy keeps it, rescue does not)
    junk = root / "deleted.bin"
    junk.write_bytes(rng.randbytes(2 * MiB))
    os.sync()
    junk.unlink()


def _fill_tail(node: str) -> None:
    """Bytes after the filesystem's end, as a previous owner of the disk leaves them."""
    size = int(sh("blockdev", "--getsize64", node))
    with open(node, "r+b") as f:
        f.seek(size - len(TAIL_MARK))
        f.write(TAIL_MARK)


def make_source(fs: Fs, node: str, tmp: Path) -> None:
    _fill_tail(node)
    sh(*fs.mkfs, node, *fs.mkfs_after)
    if fs.populate == "mount":
        with mounted(node, tmp / "src-mnt") as m:
            populate(m, seed=9)
    elif fs.populate == "fuse":
        mnt = tmp / "src-mnt"
        mnt.mkdir()
        sh(fs.mount[0], node, mnt)
        try:
            populate(mnt, seed=9)
        finally:
            sh("umount", mnt)
    elif fs.populate in ("mtools", "sload"):
        stage = tmp / "stage"
        stage.mkdir()
        populate(stage, seed=9)
        if fs.populate == "mtools":
            for link in [p for p in stage.rglob("*") if p.is_symlink()] + [stage / "hardlink"]:
                link.unlink(missing_ok=True)
            (stage / "deleted.bin").write_bytes(random.Random(3).randbytes(2 * MiB))
            sh("mcopy", "-s", "-m", "-i", node, *sorted(stage.iterdir()), "::/",
               env=MTOOLS_ENV)
            sh("mdel", "-i", node, "::/deleted.bin", env=MTOOLS_ENV)  # data in free space
        else:
            sh("sload.f2fs", "-f", stage, node)
    os.sync()


# --- reading back -------------------------------------------------------------------------

@contextmanager
def mounted_ro(fs: Fs, node: str, where: Path) -> Iterator[Path]:
    if fs.populate == "fuse":
        where.mkdir(parents=True, exist_ok=True)
        sh(*fs.mount, node, where)
        try:
            yield where
        finally:
            subprocess.run(["umount", str(where)], capture_output=True)
    else:
        with mounted(node, where, fs.mount[0]) as m:
            yield m
        if fs.name == "btrfs":  # two devices with one fsid: let the next mount pick anew
            subprocess.run(["btrfs", "device", "scan", "--forget"], capture_output=True)


def files_view(fs: Fs, node: str, where: Path) -> object:
    """Every file and its metadata, as the filesystem presents them."""
    if fs.populate in ("mount", "fuse"):
        with mounted_ro(fs, node, where) as m:
            return tree_digest(m)
    if fs.populate == "mtools":
        listing = sh("mdir", "-/", "-a", "-i", node, "::/", env=MTOOLS_ENV)
        out = where / "copy"
        out.mkdir(parents=True)
        sh("mcopy", "-s", "-m", "-n", "-i", node, "::/*", out, env=MTOOLS_ENV)
        hashes = {str(p.relative_to(out)): hashlib.blake2b(p.read_bytes()).hexdigest()
                  for p in sorted(out.rglob("*")) if p.is_file()}
        return listing, hashes
    # f2fs without a kernel driver: the directory tree fsck.f2fs walks (names, inodes)
    return _f2fs_tree(node)


def _f2fs_tree(node: str) -> list[str]:
    proc = subprocess.run(["fsck.f2fs", "--dry-run", "-t", node], capture_output=True,
                          text=True)
    return [line for line in proc.stdout.splitlines() if "|--" in line or "`--" in line]


def check(fs: Fs, node: str) -> tuple[int, str]:
    proc = subprocess.run([*fs.check, node], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def check_is_clean(fs: Fs, rc: int, out: str) -> bool:
    if rc != 0:
        return False
    if fs.blkid == "ntfs":
        return "BAD" not in out and "corrupt" not in out.lower()
    if fs.name == "f2fs":
        return "[Fail]" not in out
    return True


# --- regions outside the allocation map, located with the filesystem's own tools ---------

def fs_regions(fs: Fs, node: str, length: int) -> dict[str, tuple[int, int]]:
    regions = {"partition first 4 KiB": (0, 4 * KiB),
               "partition last 4 KiB": (length - 4 * KiB, length)}
    if fs.name.startswith("ext"):
        out = sh("dumpe2fs", node)
        bs = int(re.search(r"^Block size:\s+(\d+)", out, re.M).group(1))  # type: ignore[union-attr]
        regions["superblock"] = (1024, 2048)
        for blk in re.findall(r"Backup superblock at (\d+)", out):
            regions[f"backup superblock @{blk}"] = (int(blk) * bs, int(blk) * bs + bs)
    elif fs.blkid == "vfat":
        info = sh("minfo", "-i", node, "::", env=MTOOLS_ENV)
        ss = int(re.search(r"sector size: (\d+)", info).group(1))  # type: ignore[union-attr]
        res = int(re.search(r"reserved \(boot\) sectors: (\d+)", info).group(1))  # type: ignore[union-attr]
        regions["reserved region (boot sector, FSInfo, backup boot sector)"] = (0, res * ss)
        backup = re.search(r"backup boot sector=(\d+)", info)
        if backup and int(backup.group(1)):
            b = int(backup.group(1))
            regions["FAT32 backup boot sector"] = (b * ss, b * ss + ss)
    elif fs.name == "xfs":
        out = sh("xfs_db", "-r", "-c", "sb 0", "-c", "p agcount agblocks blocksize sectsize",
                 node)
        v = dict(re.findall(r"^(\w+) = (\d+)$", out, re.M))
        ag_bytes = int(v["agblocks"]) * int(v["blocksize"])
        for ag in range(int(v["agcount"])):
            regions[f"AG {ag} headers (sb, agf, agi, agfl)"] = (
                ag * ag_bytes, ag * ag_bytes + 4 * int(v["sectsize"]))
    elif fs.name == "btrfs":
        out = sh("btrfs", "inspect-internal", "dump-super", "-a", node)
        for at in re.findall(r"^superblock: bytenr=(\d+)", out, re.M):
            regions[f"superblock copy @{at}"] = (int(at), int(at) + 4 * KiB)
        assert len(regions) >= 4, out  # 64 KiB and the 64 MiB mirror at least
    elif fs.blkid == "ntfs":
        out = sh("ntfsinfo", "-m", node)
        csize = int(re.search(r"Cluster Size:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
        clusters = int(re.search(r"Volume Size in Clusters:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
        total = struct.unpack_from("<Q", read(node, 0, SECTOR), 0x28)[0]  # boot sector
        assert clusters * csize <= total * SECTOR < length
        regions["boot sector"] = (0, SECTOR)
        regions["after the last cluster, through the backup boot sector"] = (
            clusters * csize, (total + 1) * SECTOR)
    elif fs.name == "exfat":
        regions["main and backup boot regions (sectors 0-23)"] = (0, 24 * SECTOR)
    elif fs.name == "f2fs":
        out = subprocess.run(["dump.f2fs", "-d", "1", node], capture_output=True,
                             text=True).stdout
        main = re.search(r"main_blkaddr\s+\[0x\s*[0-9a-f]+ : (\d+)\]", out)
        regions["superblocks (blocks 0 and 1)"] = (0, 8 * KiB)
        if main:
            regions["metadata area (cp, sit, nat, ssa)"] = (0, int(main.group(1)) * 4 * KiB)
    elif fs.name == "hfsplus":
        regions["volume header"] = (1024, 1536)
        regions["alternate volume header"] = (length - 1024, length - 512)
    return regions


def read(path: str | Path, start: int, end: int) -> bytes:
    with open(path, "rb") as f:
        return os.pread(f.fileno(), end - start, start)


def differing_bytes(copy: str | Path, restored: str | Path, length: int) -> tuple[int, int]:
    """(bytes that differ, of which the restored partition holds a non-zero value): a
    used-blocks restore may blank free space, never write something else."""
    n = written = 0
    with open(copy, "rb") as fa, open(restored, "rb") as fb:
        for off in range(0, length, 4 * MiB):
            x, y = os.pread(fa.fileno(), 4 * MiB, off), os.pread(fb.fileno(), 4 * MiB, off)
            if x == y:
                continue
            for s in range(0, len(x), 4096):
                u, v = x[s:s + 4096], y[s:s + 4096]
                if u != v:
                    pairs = [(i, j) for i, j in zip(u, v, strict=True) if i != j]
                    n += len(pairs)
                    written += sum(1 for _, j in pairs if j)
    return n, written


def dd_copy(node: str, dest: Path, length: int) -> None:
    """A sparse raw copy of the partition."""
    with open(node, "rb") as src, open(dest, "wb") as out:
        out.truncate(length)
        for off in range(0, length, 4 * MiB):
            block = os.pread(src.fileno(), 4 * MiB, off)
            if block.count(0) != len(block):
                os.pwrite(out.fileno(), block, off)


# --- the test -----------------------------------------------------------------------------

@pytest.mark.parametrize("fs", FILESYSTEMS, ids=[f.name for f in FILESYSTEMS])
def test_restore_equals_a_raw_copy(fs: Fs, tmp_path: Path) -> None:
    if shutil.which(fs.program) is None:
        pytest.skip(f"{fs.program} is not installed (no {fs.name} tools on this system)")
    length = fs.sectors * SECTOR
    disk_size = (START + fs.sectors) * SECTOR + 1 * MiB
    table = f"label: gpt\nstart={START}, size={fs.sectors}\n"
    raw = tmp_path / "dd.img"
    repo = tmp_path / "repo"
    with loop_device(tmp_path / "src.img", disk_size) as src:
        [node] = partition(src, table)
        make_source(fs, node, tmp_path)
        assert sh("blkid", "-p", "-o", "value", "-s", "TYPE", node).strip() == fs.blkid
        dd_copy(node, raw, length)
        rescue_cli("backup", "--disk", src, "--repo", str(repo), check=True)
    with loop_device(tmp_path / "target.img", disk_size) as target, \
            loop_device(raw) as copy:
        # The fix-ups look for a root on every volume (a read-only mount that replays no
        # log: a plain "-o ro" of an xfs writes its superblock); they must change nothing.
        rescue_cli("restore", "--repo", str(repo), "--disk", target, "--yes", check=True)
        restored = f"{target}p1"
        assert int(sh("blockdev", "--getsize64", restored)) == length

        # (c) regions outside the allocation map, and the overall difference
        regions = fs_regions(fs, copy, length)
        missing = {name: r for name, r in regions.items()
                   if read(copy, *r) != read(restored, *r)}
        diff, not_blank = differing_bytes(copy, restored, length)
        print(f"\n{fs.name}: {diff} bytes differ from the dd copy of {length} bytes; "
              f"{len(regions)} regions checked; missing: {sorted(missing)}")

        # (a) the filesystem's own read-only check
        rc, out = check(fs, restored)
        ref_rc, ref_out = check(fs, copy)
        if not fs.check_as_copy:
            assert check_is_clean(fs, ref_rc, ref_out), f"the dd copy itself: {ref_out}"

        # (b) every file and its metadata
        same_files = files_view(fs, copy, tmp_path / "v-copy") == \
            files_view(fs, restored, tmp_path / "v-restored")

        failures = []
        if missing:
            failures.append(f"regions not restored: {sorted(missing)}")
        if fs.check_as_copy and (rc, out) != (ref_rc, ref_out):
            failures.append(f"{' '.join(fs.check)}: the restored partition gets\n{out}\n"
                            f"the dd copy gets\n{ref_out}")
        elif not fs.check_as_copy and not check_is_clean(fs, rc, out):
            failures.append(f"{' '.join(fs.check)} of the restored partition:\n{out}")
        if not same_files:
            failures.append("files or their metadata differ from the dd copy")
        if not_blank:
            failures.append(f"{not_blank} restored bytes are neither the source's nor zero")
        # free space only: the deleted 2 MiB file and stale metadata (ext journal log, old
        # btrfs tree blocks)
        if diff > 3 * MiB:
            failures.append(f"{diff} bytes differ: more than the free space written to")
        assert not failures, f"{fs.name}: " + "\n".join(failures)
