"""The boot fix-ups on a restored disk whose root holds absolute symlinks: /etc/fstab and
GRUB's grub.cfg are files of the restored system, but the fix-ups open them through the
host's "/" (pathlib on the mount point follows an absolute symlink out of it). An image of
a hostile (or just odd) disk then makes rescue, as root on the live system, rewrite a file
of the live system or of any mounted disk (the repository), and the root finder takes a
volume whose /etc/fstab exists only on the host for a Linux root."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from loopdev import MiB, loop_device, mounted, partition, sh
from realdisk import blkid

from rescue.engine.bootfix import FixupContext, FixupResult, run_fixups
from rescue.image.manifest import Disk, Manifest, Partition
from rescue.plan import fixups
from rescue.plan.fixups import FIXUP_NAMES, plan_fixups
from rescue.runner import RecordingRunner

pytestmark = pytest.mark.root
LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
SIZE = 64 * MiB


def _manifest() -> Manifest:
    parts = [Partition(1, 2048, (SIZE // 512) - 2048 - 34, LINUX, filesystem="ext4")]
    disk = Disk(SIZE, 512, 512, "gpt", "x", source_path="/dev/sda", partitions=parts)
    return Manifest(id="m", name="", created_utc="", created_local="", timezone="",
                    computer="pc", os_name="Debian", os_id="debian", os_version="12",
                    firmware="uefi", hardware={}, chunk_size=4 << 20, compression="zstd",
                    disks=[disk])


def test_fstab_check_does_not_write_through_an_absolute_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "outside" / "fstab"  # stands for the live system's /etc/fstab
    victim.parent.mkdir()
    original = "/dev/sda1 / ext4 defaults 0 1\n"
    victim.write_text(original)
    grub_victim = tmp_path / "outside" / "grub.cfg"
    grub_original = "menuentry x {\n linux /vmlinuz root=/dev/sda1 ro\n}\n"
    grub_victim.write_text(grub_original)
    with loop_device(tmp_path / "disk.img", SIZE) as dev:
        (node,) = partition(dev, f"label: gpt\ntype={LINUX}\n")
        sh("mkfs.ext4", "-q", "-F", node)
        with mounted(node, tmp_path / "m") as m:
            for d in ("etc", "usr/sbin", "boot/grub"):
                (m / d).mkdir(parents=True)
            (m / "usr/sbin/init").write_text("#!/bin/sh\n")
            os.symlink(str(victim), m / "etc/fstab")
            os.symlink(str(grub_victim), m / "boot/grub/grub.cfg")
        assert blkid(node)["TYPE"] == "ext4"
        steps = [s for s in plan_fixups(_manifest(), "uefi", [], set())
                 if s.name == "fstab-check"]
        ctx = FixupContext(disk=dev, partitions={1: node}, manifest=_manifest(),
                           firmware="uefi", runner=RecordingRunner(),
                           workdir=str(tmp_path / "work"))
        results = run_fixups(ctx, steps)
        try:
            assert victim.read_text() == original, (
                f"a file outside the restored disk was rewritten: {results}")
            assert grub_victim.read_text() == grub_original, (
                f"a file outside the restored disk was rewritten: {results}")
        finally:
            assert str(tmp_path / "work") not in Path("/proc/mounts").read_text()


# -- issue 12, finding 1: writes, new files and mount points of the fix-ups ---------------
#
# The chroot that rebuilds the initramfs binds the live system's /dev, /proc, /sys and /run
# into the restored root, and they stay bound until the fix-ups end (fstab-check runs
# after the initramfs step). From then on a link resolved inside the root with chroot rules
# (``etc/initramfs-tools -> /run/x``) leads into a folder of the live system. The scratch
# "host" folders these tests aim at are made by the tests themselves (under tmp_path, or
# under /run and /dev/shm where only the binds reach), never real system files.

KVER = "6.1.0-test"
BOOT_SIZE = 16 * MiB


class WatchingRunner(RecordingRunner):
    """Runs commands for real; after each one, notes whether *watched* became a mount
    point (a mount made through a link onto a folder of the live system)."""

    def __init__(self, watched: list[Path]) -> None:
        super().__init__()
        self.watched = watched
        self.mounted_over: list[Path] = []

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def]
        res = super().run(argv, **kwargs)
        self.mounted_over += [p for p in self.watched if os.path.ismount(p)]
        return res


@pytest.fixture
def host_scratch() -> Iterator[tuple[Path, Path]]:
    """Two scratch folders of the live system that only the chroot binds reach: one under
    /run, one under /dev (each made here, empty, removed afterwards)."""
    run = Path(tempfile.mkdtemp(prefix="rescue-test-", dir="/run"))
    shm = Path(tempfile.mkdtemp(prefix="rescue-test-", dir="/dev"))
    try:
        yield run, shm
    finally:
        for d in (run, shm):
            subprocess.run(["umount", "-l", str(d)], capture_output=True)
            shutil.rmtree(d, ignore_errors=True)


def _two_part_manifest(boot: bool) -> Manifest:
    root_end = (SIZE // 512) - 34 - (BOOT_SIZE // 512 if boot else 0)
    parts = [Partition(1, 2048, root_end - 2048, LINUX, filesystem="ext4")]
    if boot:
        parts.append(Partition(2, root_end, BOOT_SIZE // 512, LINUX, filesystem="ext4"))
    disk = Disk(SIZE, 512, 512, "gpt", "x", source_path="/dev/sda", partitions=parts)
    return Manifest(id="m", name="", created_utc="", created_local="", timezone="",
                    computer="pc", os_name="Debian", os_id="debian", os_version="12",
                    firmware="uefi", hardware={}, chunk_size=4 << 20, compression="zstd",
                    disks=[disk])


def _system(m: Path, fstab: str = "/dev/sda1 / ext4 defaults 0 1\n",
            initramfs_tools: bool = True) -> None:
    """A restored Debian-like root: an init, a kernel whose nvme driver is a module, and
    initramfs-tools (its update-initramfs cannot run: the rebuild fails after rescue has
    written its configuration and bound /dev, /proc, /sys and /run)."""
    for d in ("etc", "usr/sbin", "boot", f"lib/modules/{KVER}"):
        (m / d).mkdir(parents=True, exist_ok=True)
    (m / "usr/sbin/init").write_text("#!/bin/sh\n")
    (m / "usr/sbin/update-initramfs").write_text("#!/bin/sh\n")
    (m / f"boot/vmlinuz-{KVER}").write_text("kernel\n")
    (m / f"lib/modules/{KVER}/modules.dep").write_text("kernel/drivers/nvme/host/nvme.ko:\n")
    if initramfs_tools:
        (m / "etc/initramfs-tools").mkdir(exist_ok=True)
    if not (m / "etc/fstab").is_symlink():
        (m / "etc/fstab").write_text(fstab)


def _run(tmp_path: Path, build: Callable[[Path], None], names: tuple[str, ...],
         watched: tuple[Path, ...] = (), boot: bool = False,
         check: Callable[[Path], None] | None = None,
         ) -> tuple[dict[str, FixupResult], WatchingRunner]:
    """Make the disk, let *build* fill its root (and see the boot partition's UUID through
    the ``BOOT_UUID`` file it may read), run the fix-ups *names*, then let *check* look at
    the root again."""
    manifest = _two_part_manifest(boot)
    script = "label: gpt\n" + "".join(
        f"start={p.start}, size={p.size}, type={LINUX}\n"
        for p in manifest.disks[0].partitions)
    with loop_device(tmp_path / "disk.img", SIZE) as dev:
        nodes = partition(dev, script)
        assert len(nodes) == len(manifest.disks[0].partitions)
        for node in nodes:
            sh("mkfs.ext4", "-q", "-F", node)
        if boot:
            (tmp_path / "BOOT_UUID").write_text(blkid(nodes[1])["UUID"])
        with mounted(nodes[0], tmp_path / "m") as m:
            build(m)
        steps = [s for s in plan_fixups(manifest, "uefi", ["nvme"], set()) if s.name in names]
        assert [s.name for s in steps] == [n for n in FIXUP_NAMES if n in names]
        runner = WatchingRunner(list(watched))
        ctx = FixupContext(disk=dev, partitions=dict(enumerate(nodes, 1)), manifest=manifest,
                           firmware="uefi", runner=runner, workdir=str(tmp_path / "work"))
        results = {r.name: r for r in run_fixups(ctx, steps)}
        assert str(tmp_path / "work") not in Path("/proc/mounts").read_text()
        if check is not None:
            with mounted(nodes[0], tmp_path / "m") as m:
                check(m)
    return results, runner


@pytest.mark.parametrize("where", ["tmp", "run"])
def test_fstab_backup_link_is_replaced_not_written_through(
        tmp_path: Path, host_scratch: tuple[Path, Path], where: str) -> None:
    """``etc/fstab.rescue-backup -> /host/file``: the host file stays as it was, the backup
    is a regular file of the restored system. "run": the host file lies where only the
    /run bind (made by the initramfs step that runs before) reaches."""
    folder = tmp_path / "outside" if where == "tmp" else host_scratch[0]
    folder.mkdir(exist_ok=True)
    victim = folder / "profile.sh"
    victim.write_text("echo host\n")

    def build(m: Path) -> None:
        _system(m)
        os.symlink(str(victim), m / "etc/fstab.rescue-backup")

    seen: dict[str, object] = {}

    def check(m: Path) -> None:
        backup = m / "etc/fstab.rescue-backup"
        seen["backup"] = None if backup.is_symlink() else backup.read_text()
        seen["fstab"] = (m / "etc/fstab").read_text()

    results, _runner = _run(tmp_path, build, (fixups.INITRAMFS_DRIVERS, fixups.FSTAB_CHECK),
                            check=check)
    assert victim.read_text() == "echo host\n", results
    assert sorted(p.name for p in folder.iterdir()) == ["profile.sh"], results
    assert results[fixups.FSTAB_CHECK].status == "done", results
    assert seen["backup"] == "/dev/sda1 / ext4 defaults 0 1\n", seen
    assert str(seen["fstab"]).startswith("UUID="), seen


@pytest.mark.parametrize("link", ["dir", "file"])
def test_initramfs_configuration_is_not_written_on_the_host(
        tmp_path: Path, host_scratch: tuple[Path, Path], link: str) -> None:
    """``etc/initramfs-tools -> /run/x`` (the image holds a folder run/x too, so the tool
    is found before /run is bound) or ``etc/initramfs-tools/modules -> /run/x/modules``:
    after the binds both lead into the live system's /run; nothing is written there."""
    host = host_scratch[0]
    (host / "modules").write_text("# host\n")

    def build(m: Path) -> None:
        _system(m, initramfs_tools=link == "file")
        inner = m / host.relative_to("/")
        inner.mkdir(parents=True)
        (inner / "modules").write_text("# the image's own\n")
        if link == "dir":
            os.symlink(str(host), m / "etc/initramfs-tools")
        else:
            os.symlink(str(host / "modules"), m / "etc/initramfs-tools/modules")

    results, _runner = _run(tmp_path, build, (fixups.INITRAMFS_DRIVERS,))
    assert (host / "modules").read_text() == "# host\n", results
    assert sorted(p.name for p in host.iterdir()) == ["modules"], results
    detail = results[fixups.INITRAMFS_DRIVERS].detail
    assert results[fixups.INITRAMFS_DRIVERS].status == "failed"
    assert "leads out of it" in detail, detail


def test_boot_link_is_no_mount_point(tmp_path: Path) -> None:
    """``boot -> /etc`` with a separate /boot in fstab: the /boot partition is mounted
    nowhere (not over the host's /etc, not over the restored system's own /etc); every
    step that needs the root says why."""
    def build(m: Path) -> None:
        uuid = (tmp_path / "BOOT_UUID").read_text()
        _system(m, fstab=f"/dev/sda1 / ext4 defaults 0 1\nUUID={uuid} /boot ext4 defaults 0 2\n")
        shutil.rmtree(m / "boot")
        os.symlink("/etc", m / "boot")

    results, runner = _run(tmp_path, build, (fixups.INITRAMFS_DRIVERS, fixups.FSTAB_CHECK),
                           watched=(Path("/etc"),), boot=True)
    mounts = [a for a in runner.log if a[:1] == ["mount"]]
    assert not [a for a in mounts if a[-1].endswith("/etc")], mounts
    assert not runner.mounted_over
    for name in (fixups.INITRAMFS_DRIVERS, fixups.FSTAB_CHECK):
        assert results[name].status == "failed", results
        assert "symbolic link" in results[name].detail, results


@pytest.mark.parametrize("link", ["dev", "run"])
def test_chroot_bind_targets_that_are_links_are_refused(
        tmp_path: Path, host_scratch: tuple[Path, Path], link: str) -> None:
    """``dev -> /srv/elsewhere`` (a bind elsewhere in the restored tree) and
    ``run -> /dev/x`` (after /dev is bound, a folder of the live system: /run would be
    bound over it): refused, nothing bound anywhere but on the root's real folders."""
    shm = host_scratch[1]
    target = "/srv/elsewhere" if link == "dev" else str(shm)

    def build(m: Path) -> None:
        _system(m)
        (m / target.lstrip("/")).mkdir(parents=True)
        os.symlink(target, m / link)

    results, runner = _run(tmp_path, build, (fixups.INITRAMFS_DRIVERS,), watched=(shm,))
    assert not runner.mounted_over, runner.log
    assert not list(shm.iterdir())
    binds = [a[-1] for a in runner.log if a[:2] == ["mount", "--bind"]]
    assert not [b for b in binds if b.endswith(target)], binds
    detail = results[fixups.INITRAMFS_DRIVERS].detail
    assert results[fixups.INITRAMFS_DRIVERS].status == "failed"
    assert "symbolic link" in detail, detail
