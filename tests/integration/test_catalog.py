"""Image discovery across two repositories on two loop-backed ext4 filesystems, plus an
explicitly given repository (root)."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, mounted, partition, sh

from rescue.devices.catalog import discover_images, kernel_filesystems, open_catalog
from rescue.devices.inventory import Inventory, probe_inventory
from rescue.devices.mounts import current_mounts
from rescue.hardware.profile import HardwareProfile, collect_profile
from rescue.image.manifest import Disk, Manifest
from rescue.image.repository import Repository, new_image_id
from rescue.runner import RecordingRunner

pytestmark = pytest.mark.root

MACHINES = Path(__file__).parent.parent / "data" / "machines"


def _drop_partitions(dev: str) -> None:
    """Remove stale kernel partitions a previous user of the loop device left behind."""
    name = Path(dev).name
    for _ in range(50):
        if not list(Path(f"/sys/block/{name}").glob(f"{name}p*")):
            return
        subprocess.run(["partx", "-d", dev], capture_output=True)
        time.sleep(0.1)


def add_image(repo: Repository, when: str, computer: str, hardware: dict) -> str:
    created = datetime.fromisoformat(when).replace(tzinfo=UTC)
    m = Manifest(
        id=new_image_id(created),
        name=f"{computer} {when[:10]}",
        created_utc=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        created_local=created.isoformat(),
        timezone="Etc/UTC",
        computer=computer,
        os_name="Debian GNU/Linux 12 (bookworm)",
        os_id="debian",
        os_version="12",
        firmware=hardware.get("firmware", "bios"),
        hardware=hardware,
        chunk_size=4 * MiB,
        compression="zstd",
        disks=[Disk(size_bytes=1 << 30, logical_sector_size=512, physical_sector_size=512,
                    table="gpt", id="G")],
    )
    repo.write_manifest(m)
    return m.id


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def attached(path: Path, size: int) -> Iterator[str]:
    with loop_device(path, size) as dev:
        _drop_partitions(dev)
        try:
            yield dev
        finally:
            _drop_partitions(dev)


def our_mounts(root: str) -> list[str]:
    return [m.mountpoint for m in current_mounts() if m.mountpoint.startswith(root)]


def test_catalog_finds_images_on_two_loop_filesystems(tmp_path: Path) -> None:
    laptop = HardwareProfile.load(MACHINES / "laptop-nvme-usb.json").to_dict()
    desktop = HardwareProfile.load(MACHINES / "desktop-sata-raid.json").to_dict()
    ids: dict[str, str] = {}
    with attached(tmp_path / "a.img", 64 * MiB) as dev_a, attached(
        tmp_path / "b.img", 64 * MiB
    ) as dev_b:
        # A: ext4 on the whole disk, repository one level down, two images.
        sh("mkfs.ext4", "-q", "-F", "-L", "REPO-A", dev_a)
        with mounted(dev_a, tmp_path / "ma") as mp:
            repo = Repository.create(mp / "rescue")
            ids["a-jan"] = add_image(repo, "2026-01-10T08:00:00", "laptop", laptop)
            ids["a-mar"] = add_image(repo, "2026-03-05T17:30:00", "laptop", laptop)
        # B: GPT, ext4 partition with the repository two levels down, and a vfat one.
        parts = partition(dev_b, "label: gpt\nsize=40MiB\nsize=16MiB\n")
        assert len(parts) == 2
        sh("mkfs.ext4", "-q", "-F", "-L", "REPO-B", parts[0])
        sh("mkfs.vfat", "-n", "STICK", parts[1])
        with mounted(parts[0], tmp_path / "mb") as mp:
            repo = Repository.create(mp / "backups" / "rescue")
            ids["b-feb"] = add_image(repo, "2026-02-14T12:00:00", "desktop", desktop)
        # An explicit repository on the host's own filesystem.
        extra = Repository.create(tmp_path / "extra")
        ids["x-dec"] = add_image(extra, "2025-12-24T18:00:00", "server", desktop)

        before = {p: sha256(tmp_path / p) for p in ("a.img", "b.img")}
        probed = probe_inventory(include_loop=True)
        # Only our two loop disks: the host's other filesystems are not this test's business.
        inv = Inventory(disks=[d for d in probed.disks if d.path in (dev_a, dev_b)])
        assert len(inv.disks) == 2
        runner = RecordingRunner()
        with open_catalog(inv, [str(tmp_path / "extra")], runner) as catalog:
            got = [(i.id, i.computer, i.recommended) for i in catalog.images]
            assert got == [
                (ids["a-mar"], "laptop", True),
                (ids["b-feb"], "desktop", False),
                (ids["a-jan"], "laptop", False),
                (ids["x-dec"], "server", False),
            ]
            by_id = {i.id: i for i in catalog.images}
            a, b, x = by_id[ids["a-mar"]], by_id[ids["b-feb"]], by_id[ids["x-dec"]]
            assert a.device == dev_a and a.repo_subdir == "rescue" and "'REPO-A'" in a.location
            assert b.device == parts[0] and b.repo_subdir == "backups/rescue"
            assert "'REPO-B'" in b.location and b.location.endswith(": /backups/rescue")
            assert x.device == "" and x.location == str(tmp_path / "extra")
            assert a.created_utc == "2026-03-05T17:30:00Z" and a.os_name.startswith("Debian")
            # The repositories are usable while the catalog is open ...
            assert Repository.open(a.repo).load_manifest(a.id).hardware == laptop
            assert Repository.open(b.repo).load_manifest("latest").computer == "desktop"
            # ... mounted read-only, without journal replay, in a private directory.
            private = str(Path(catalog.mounts[0]).parent)
            assert (Path(private).stat().st_mode & 0o777) == 0o700
            mine = {m.mountpoint: m for m in current_mounts() if m.mountpoint.startswith(private)}
            assert len(mine) == 2
            assert all("ro" in m.options for m in mine.values())
            mount_cmds = [c for c in runner.log if c[0] == "mount"]
            assert len(mount_cmds) == 2
            assert all(c[1:5] == ["-t", "ext4", "-o", "ro,noload"] for c in mount_cmds)
            # The vfat partition: searched if the kernel can, else skipped with a reason.
            if "vfat" not in kernel_filesystems():
                # the catalog tried to load the driver first (it cannot on this kernel)
                assert ["modprobe", "-q", "fs-vfat"] in runner.log
                assert any(
                    s.what == parts[1] and "cannot mount vfat" in s.reason
                    for s in catalog.skipped
                )
        # Everything unmounted, the private directory gone, nothing written.
        assert our_mounts(private) == []
        assert not Path(private).exists()
        assert {p: sha256(tmp_path / p) for p in before} == before

        # The one-shot form gives the same list and leaves nothing mounted either.
        found = discover_images(inv, [str(tmp_path / "extra")])
        assert [i.id for i in found] == [ids[k] for k in ("a-mar", "b-feb", "a-jan", "x-dec")]
        assert sum(i.recommended for i in found) == 1
        assert all("rescue-catalog-" not in m.mountpoint for m in current_mounts())


def test_already_mounted_filesystem_is_searched_in_place(tmp_path: Path) -> None:
    with attached(tmp_path / "c.img", 32 * MiB) as dev:
        sh("mkfs.ext4", "-q", "-F", "-L", "MOUNTED", dev)
        with mounted(dev, tmp_path / "mc") as mp:
            add_image(Repository.create(mp / "repo"), "2026-04-01T09:00:00", "pc", {})
            inv = Inventory(
                disks=[d for d in probe_inventory(include_loop=True).disks if d.path == dev]
            )
            runner = RecordingRunner()
            images = discover_images(inv, runner=runner)
            assert [i.repo for i in images] == [str(mp / "repo")]
            assert images[0].recommended
            assert not [c for c in runner.log if c[0] in ("mount", "umount")]
            # Still mounted where the technician put it.
            assert str(mp) in [m.mountpoint for m in current_mounts()]


def test_unmountable_and_missing_sources_are_skipped_with_reasons(tmp_path: Path) -> None:
    with attached(tmp_path / "d.img", 32 * MiB) as dev:
        sh("mkswap", "-L", "SWAPPY", dev)
        inv = Inventory(
            disks=[d for d in probe_inventory(include_loop=True).disks if d.path == dev]
        )
        assert inv.disks and inv.disks[0].fstype == "swap"
        with open_catalog(inv, [str(tmp_path / "nothing-here")]) as catalog:
            assert catalog.images == []
            reasons = {s.what: s.reason for s in catalog.skipped}
            assert reasons[dev] == "it is swap space"
            assert reasons[str(tmp_path / "nothing-here")] == "it is not a rescue repository"


def test_real_backup_carries_the_profile_and_is_compatible_here(gpt_backup) -> None:  # type: ignore[no-untyped-def]
    """An image made by the backup engine on this machine: the catalog lists it, its
    manifest carries the full hardware profile, and `rescue compat` says compatible."""
    from realdisk import rescue_cli

    found = discover_images(Inventory(), [str(gpt_backup.repo)])
    assert [i.id for i in found] == [gpt_backup.image_id] and found[0].recommended
    manifest = Repository.open(gpt_backup.repo).load_manifest(gpt_backup.image_id)
    source = HardwareProfile.from_dict(manifest.hardware)
    here = collect_profile()
    assert source.cpu.model == here.cpu.model and source.cpu.cores == here.cpu.cores
    assert source.cpu.x86_64_level == here.cpu.x86_64_level
    assert [d.driver for d in source.storage] == [d.driver for d in here.storage]
    proc = rescue_cli("compat", "--repo", str(gpt_backup.repo), "--image", gpt_backup.image_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("Verdict: compatible")


@pytest.mark.parametrize(
    ("fstype", "mkfs", "size", "argv"),
    [
        ("ntfs", ["mkntfs", "-Q", "-F", "-L", "WINREPO"], 32 * MiB, ["ntfs-3g", "-o", "ro"]),
        ("xfs", ["mkfs.xfs", "-q", "-f", "-L", "XFSREPO"], 320 * MiB,
         ["mount", "-t", "xfs", "-o", "ro,norecovery,nouuid"]),
        ("btrfs", ["mkfs.btrfs", "-q", "-f", "-L", "BTRREPO"], 128 * MiB,
         ["mount", "-t", "btrfs", "-o", "ro,rescue=nologreplay"]),
    ],
)
def test_catalog_mounts_other_filesystems_without_writing(
    tmp_path: Path, fstype: str, mkfs: list[str], size: int, argv: list[str]
) -> None:
    if fstype == "ntfs" and not Path("/dev/fuse").exists():
        pytest.skip("no /dev/fuse for ntfs-3g")
    with attached(tmp_path / "fs.img", size) as dev:
        sh(*mkfs, dev)
        if fstype == "ntfs":
            (tmp_path / "m").mkdir()
            sh("ntfs-3g", dev, str(tmp_path / "m"))
            try:
                image_id = add_image(Repository.create(tmp_path / "m" / "Backups"),
                                     "2026-06-01T07:00:00", "win-pc", {})
            finally:
                sh("umount", str(tmp_path / "m"))
        else:
            with mounted(dev, tmp_path / "m") as mp:
                image_id = add_image(Repository.create(mp / "Backups"), "2026-06-01T07:00:00",
                                     "pc", {})
        before = sha256(tmp_path / "fs.img")
        inv = Inventory(disks=[d for d in probe_inventory(include_loop=True).disks
                               if d.path == dev])
        assert inv.disks[0].fstype == fstype
        runner = RecordingRunner()
        with open_catalog(inv, runner=runner) as catalog:
            assert [i.id for i in catalog.images] == [image_id]
            assert catalog.images[0].repo_subdir == "Backups"
            assert [c[: len(argv)] for c in runner.log if c[0] in ("mount", "ntfs-3g")] == [argv]
            private = str(Path(catalog.mounts[0]).parent)
        assert our_mounts(private) == []
        assert sha256(tmp_path / "fs.img") == before
