"""Build a small but realistic source disk: a partition table, an ESP (vfat, files put
with mtools since some kernels cannot mount vfat), an ext4 root with a tree of text,
binaries, already-compressed data, symlinks, hard links, xattrs and sparse files, and a
swap partition. Deterministic for a given seed."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rescue import sysmount
from rescue.runner import CommandRunner

MiB = 1024 * 1024
WORDS = [
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "backup", "restore",
    "disk", "partition", "image", "chunk", "kernel", "module", "initramfs", "grub", "boot",
    "loader", "volume", "filesystem", "journal", "inode", "block", "network", "driver",
    "firmware", "config", "service", "daemon", "user", "password", "shadow", "cron", "log",
]


def _run(argv: list[str], input: str | None = None) -> str:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _text(rng: random.Random, size: int) -> bytes:
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def _binary(rng: random.Random, size: int) -> bytes:
    # Executable-like: structured, partly compressible (repeated tables + noise).
    block = rng.randbytes(4096)
    table = bytes(range(256)) * 16
    parts: list[bytes] = []
    total = 0
    while total < size:
        part = block if rng.random() < 0.3 else table if rng.random() < 0.5 \
            else rng.randbytes(4096)
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


def populate_tree(root: Path, files: int = 3000, data_bytes: int = 40 * MiB,
                  seed: int = 1) -> None:
    """Write a realistic tree under *root* (a mounted filesystem)."""
    rng = random.Random(seed)
    dirs = [root / d for d in ("usr/bin", "usr/lib", "usr/share/doc", "etc", "var/log",
                               "home/user/docs", "home/user/photos", "opt/app")]
    for i in range(40):
        dirs.append(root / "usr/share/doc" / f"pkg{i:03d}")
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    budget = data_bytes
    written: list[Path] = []
    for i in range(files):
        kind = rng.random()
        d = rng.choice(dirs)
        if kind < 0.70:
            path, data = d / f"file{i:05d}.txt", _text(rng, rng.randint(200, 16384))
        elif kind < 0.90:
            path, data = d / f"prog{i:05d}", _binary(rng, rng.randint(8192, 262144))
        else:
            path, data = d / f"media{i:05d}.jpg", rng.randbytes(rng.randint(16384, 524288))
        if budget <= 0:
            data = data[:256]
        budget -= len(data)
        path.write_bytes(data)
        os.chmod(path, rng.choice([0o644, 0o755, 0o600, 0o640]))
        if rng.random() < 0.1:
            os.chown(path, 1000, 1000)
        os.utime(path, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + i * 7))
        written.append(path)
    # Big files until the data budget is used: compressed media and binaries.
    big = 0
    while budget > 0:
        size = min(budget, rng.randint(4, 24) * MiB)
        target = root / "home/user/photos" / f"video{big:03d}.mkv"
        with open(target, "wb") as f:
            for _ in range(size // MiB):
                f.write(rng.randbytes(MiB) if big % 3 else _binary(rng, MiB))
        budget -= size
        big += 1
    # Symlinks (relative, absolute, dangling, to a directory).
    for i, p in enumerate(written[:200]):
        link = p.parent / f"link{i:04d}"
        link.symlink_to(p.name if i % 3 else str(Path("/") / p.relative_to(root)))
    (root / "etc/dangling").symlink_to("/nonexistent/target")
    (root / "usr/lib/docs").symlink_to("../share/doc")
    # Hard links.
    for i, p in enumerate(written[200:300]):
        os.link(p, p.parent / f"hard{i:04d}")
    # Extended attributes.
    for i, p in enumerate(written[300:400]):
        os.setxattr(p, "user.rescue.test", f"value-{i}".encode())
    # Sparse files: holes between written islands.
    sparse = root / "var/log/sparse.img"
    with open(sparse, "wb") as f:
        f.truncate(64 * MiB)
        for off in (0, 5 * MiB + 123, 40 * MiB, 64 * MiB - 4096):
            f.seek(off)
            f.write(rng.randbytes(4096))
    # Empty files, a fifo, deep nesting.
    (root / "etc/empty").write_bytes(b"")
    os.mkfifo(root / "var/log/fifo")
    deep = root / "opt/app"
    for i in range(12):
        deep = deep / f"level{i}"
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_text("deep\n")


def write_identity(root: Path, hostname: str) -> None:
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/hostname").write_text(hostname + "\n")
    (root / "usr/lib").mkdir(parents=True, exist_ok=True)
    (root / "usr/lib/os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n'
    )
    os.symlink("../usr/lib/os-release", root / "etc/os-release")
    (root / "etc/timezone").write_text("Europe/Berlin\n")


def partition_nodes(dev: str) -> list[str]:
    # partx -u misses logical partitions when the extended one is new; -a adds them.
    _run(["partx", "-u", dev])
    subprocess.run(["partx", "-a", dev], capture_output=True)
    subprocess.run(["udevadm", "settle", "--timeout=10"], capture_output=True)
    name = Path(dev).name
    nodes = sorted(Path("/sys/class/block").glob(f"{name}p*"),
                   key=lambda p: int(p.name[len(name) + 1:]))
    return [f"/dev/{n.name}" for n in nodes]


@dataclass
class SampleSystem:
    dev: str
    table: str
    nodes: dict[str, str]  # role -> partition node ("esp", "root", "swap", "boot")
    esp_files: dict[str, bytes]


def esp_put(node: str, files: dict[str, bytes]) -> None:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            parts = name.split("/")
            for i in range(1, len(parts)):
                subprocess.run(["mmd", "-i", node, "::/" + "/".join(parts[:i])],
                               capture_output=True, env=env)
            local = Path(tmp) / parts[-1]
            local.write_bytes(data)
            proc = subprocess.run(["mcopy", "-o", "-i", node, str(local), "::/" + name],
                                  capture_output=True, text=True, env=env)
            if proc.returncode:
                raise RuntimeError(f"mcopy {name}: {proc.stderr}")


def esp_get(node: str, name: str) -> bytes:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    proc = subprocess.run(["mcopy", "-n", "-i", node, "::/" + name, "-"],
                          capture_output=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"mcopy {name}: {proc.stderr.decode()}")
    return proc.stdout


def build_gpt_system(dev: str, hostname: str = "demo-pc", files: int = 3000,
                     data_bytes: int = 40 * MiB, root_size: str = "300M",
                     seed: int = 1, root_last: bool = False) -> SampleSystem:
    """GPT: ESP (vfat), ext4 root, swap — the layout Debian's installer makes — or, with
    *root_last*, ESP, swap, root."""
    esp_line = "size=64M, type=U, name=EFI\n"
    root_line = f"size={root_size}, type=L, name=root\n"
    swap_line = "size=32M, type=S, name=swap\n"
    body = esp_line + (swap_line + root_line if root_last else root_line + swap_line)
    _run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", dev], input="label: gpt\n" + body)
    nodes = partition_nodes(dev)
    esp, root, swap = (nodes[0], nodes[2], nodes[1]) if root_last else nodes
    _run(["mkfs.vfat", "-F", "32", "-n", "ESP", esp])
    _run(["mkfs.ext4", "-q", "-L", "rootfs", root])
    _run(["mkswap", "-L", "swap0", swap])
    with sysmount.mounted(root, "ext4", mode=sysmount.RW, runner=CommandRunner(),
                          purpose="sample") as mnt:
        write_identity(mnt, hostname)
        populate_tree(mnt, files=files, data_bytes=data_bytes, seed=seed)
    rng = random.Random(seed + 7)
    esp_files = {
        "EFI/debian/grubx64.efi": rng.randbytes(900_000),
        "EFI/debian/grub.cfg": b"search.fs_uuid 1234 root\nconfigfile $prefix/grub.cfg\n",
        "EFI/BOOT/BOOTX64.EFI": rng.randbytes(950_000),
    }
    esp_put(esp, esp_files)
    return SampleSystem(dev, "gpt", {"esp": esp, "root": root, "swap": swap}, esp_files)


def build_mbr_system(dev: str, hostname: str = "old-pc", seed: int = 2) -> SampleSystem:
    """MBR: boot code in sector 0, a GRUB-like core image in the post-MBR gap, an ext4
    /boot, and an extended partition with a logical ext4 root and swap."""
    _run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", dev],
         input="label: dos\n,64M,L,*\n,,E\n,120M,L\n,16M,S\n")
    nodes = partition_nodes(dev)
    boot, root, swap = nodes[0], nodes[2], nodes[3]
    _run(["mkfs.ext4", "-q", "-L", "boot", boot])
    _run(["mkfs.ext4", "-q", "-L", "root", root])
    _run(["mkswap", "-L", "swap1", swap])
    with sysmount.mounted(root, "ext4", mode=sysmount.RW, runner=CommandRunner(),
                          purpose="sample") as mnt:
        write_identity(mnt, hostname)
        populate_tree(mnt, files=300, data_bytes=4 * MiB, seed=seed)
    rng = random.Random(seed)
    fd = os.open(dev, os.O_WRONLY)
    try:
        os.pwrite(fd, rng.randbytes(440), 0)  # boot code (not the signature or table)
        os.pwrite(fd, rng.randbytes(30 * 1024), 512)  # "core.img" in the gap
        os.fsync(fd)
    finally:
        os.close(fd)
    return SampleSystem(dev, "dos", {"boot": boot, "root": root, "swap": swap}, {})


def tree_digest(root: Path) -> dict[str, tuple]:
    """Everything a restore must preserve about each path, for comparisons."""
    out: dict[str, tuple] = {}
    inode_groups: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel == "lost+found" or rel.startswith("lost+found/"):
                continue
            st = os.lstat(p)
            first = inode_groups.setdefault(st.st_ino, rel)
            try:
                xattrs = tuple(sorted((k, os.getxattr(p, k, follow_symlinks=False))
                                      for k in os.listxattr(p, follow_symlinks=False)))
            except OSError:
                xattrs = ()
            if p.is_symlink():
                content: object = ("link", os.readlink(p))
            elif p.is_file():
                content = hashlib.blake2b(p.read_bytes()).hexdigest()
            else:
                content = None
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
                        st.st_nlink, st.st_blocks, first, xattrs, content)
    return out
