"""rescue.sysmount: the command lines, the private mount points, the refusal of a
symlinked mount point, the cleanup after an error, real mounts of an ext4 image through a
loop device, and that no other module runs mount/umount itself."""

from __future__ import annotations

import ast
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from rescue import sysmount
from rescue.runner import CommandRunner, DryRunRunner, Result
from rescue.sysmount import RO, RW, MountError, mount_command, mounted, probed

RESCUE = Path(__file__).resolve().parents[2] / "rescue"
MiB = 1024 * 1024


# --------------------------------------------------------------------------- command lines


@pytest.mark.parametrize(("fstype", "mode", "options", "twin", "argv"), [
    ("ext4", RO, (), False, ["mount", "-t", "ext4", "-o", "ro,noload"]),
    ("ext2", RO, (), False, ["mount", "-t", "ext2", "-o", "ro"]),
    ("xfs", RO, (), False, ["mount", "-t", "xfs", "-o", "ro,norecovery"]),
    ("xfs", RO, (), True, ["mount", "-t", "xfs", "-o", "ro,norecovery,nouuid"]),
    ("btrfs", RO, ("subvolid=5",), True,
     ["mount", "-t", "btrfs", "-o", "ro,rescue=nologreplay,subvolid=5"]),
    ("ntfs", RO, (), False, ["ntfs-3g", "-o", "ro"]),
    ("vfat", RO, (), False, ["mount", "-t", "vfat", "-o", "ro"]),
    ("ext4", RW, (), False, ["mount", "-w", "-t", "ext4", "-o", "noatime"]),
    ("xfs", RW, (), True, ["mount", "-w", "-t", "xfs", "-o", "noatime,nouuid"]),
    ("btrfs", RW, ("subvol=@",), False, ["mount", "-w", "-t", "btrfs", "-o", "noatime,subvol=@"]),
    ("ntfs", RW, (), False, ["ntfs-3g", "-o", "rw"]),
    (None, RO, (), False, ["mount", "-o", "ro"]),
    ("reiserfs", RO, (), True, ["mount", "-o", "ro"]),
    ("", RW, ("subvol=x",), False, ["mount", "-w", "-o", "rw,subvol=x"]),
])
def test_command_lines(fstype: str | None, mode: str, options: tuple[str, ...], twin: bool,
                       argv: list[str]) -> None:
    assert mount_command(fstype, mode, options, twin) == argv


def test_types_rescue_does_not_mount_are_refused() -> None:
    with pytest.raises(MountError, match="f2fs"):
        mount_command("f2fs")
    with pytest.raises(MountError):
        mount_command("swap", RW)
    with pytest.raises(ValueError):
        mount_command("ext4", "probe")


# --------------------------------------------------------------------------- private dirs


class Scripted(DryRunRunner):
    """Records every argv; commands whose head is in *fail* return what is given."""

    def __init__(self, fail: dict[str, list[tuple[int, str]]] | None = None) -> None:
        super().__init__()
        self.fail = fail or {}

    def run(self, argv: Sequence[str], **kwargs) -> Result:  # type: ignore[override]
        args = [str(a) for a in argv]
        self.log.append(args)
        key = " ".join(args[:2]) if args[:2] == ["umount", "-l"] else args[0]
        script = self.fail.get(key)
        if script:
            code, err = script.pop(0)
            return Result(args, code, "", err)
        return Result(args, 0, "", "")


def test_private_mount_point_is_made_used_and_removed(tmp_path: Path) -> None:
    runner = Scripted()
    with mounted("/dev/sdz1", "ext4", runner=runner, purpose="test",
                 base=str(tmp_path)) as where:
        assert where.parent == tmp_path and where.name.startswith("rescue-test-")
        assert where.is_dir() and (where.stat().st_mode & 0o777) == 0o700
        assert runner.log == [["mount", "-t", "ext4", "-o", "ro,noload", "/dev/sdz1",
                               str(where)]]
    assert runner.log[-1] == ["umount", str(where)]
    assert not where.exists()


def test_cleanup_after_an_exception(tmp_path: Path) -> None:
    runner = Scripted()
    with pytest.raises(RuntimeError, match="boom"), \
            mounted("/dev/sdz1", "xfs", twin=True, runner=runner, base=str(tmp_path)) as where:
        raise RuntimeError("boom")
    assert runner.log[-1] == ["umount", str(where)]
    assert list(tmp_path.iterdir()) == []


def test_a_failing_mount_names_the_device_and_leaves_nothing(tmp_path: Path) -> None:
    runner = Scripted({"mount": [(32, "mount: /x: wrong fs type, bad option\n")]})
    with pytest.raises(MountError) as err, \
            mounted("/dev/sdz1", "ext4", runner=runner, base=str(tmp_path)):
        pytest.fail("not mounted, the block must not run")
    assert err.value.node == "/dev/sdz1"
    assert err.value.detail == "mount: /x: wrong fs type, bad option"
    assert str(err.value) == ("/dev/sdz1 could not be mounted: "
                              "mount: /x: wrong fs type, bad option")
    assert [c[0] for c in runner.log] == ["mount"]  # no umount of what is not mounted
    assert list(tmp_path.iterdir()) == []


def test_a_symlinked_mount_point_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    runner = Scripted()
    with pytest.raises(MountError, match="symbolic link"), \
            mounted("/dev/sdz1", "ext4", runner=runner, where=tmp_path / "link"):
        pytest.fail("refused")
    with pytest.raises(MountError, match="not a folder"), \
            mounted("/dev/sdz1", "ext4", runner=runner, where=tmp_path / "missing"):
        pytest.fail("refused")
    with pytest.raises(MountError, match="symbolic link"):
        sysmount.bind("/proc", tmp_path / "link", runner)
    assert runner.log == []
    assert (tmp_path / "link").is_symlink()  # a given mount point is left as it was


def test_a_given_mount_point_is_kept(tmp_path: Path) -> None:
    runner = Scripted()
    with mounted("/dev/sdz1", "ext4", mode=RW, runner=runner, where=tmp_path) as where:
        assert where == tmp_path
    assert runner.log == [["mount", "-w", "-t", "ext4", "-o", "noatime", "/dev/sdz1",
                           str(tmp_path)], ["umount", str(tmp_path)]]
    assert tmp_path.is_dir()


def test_a_busy_target_is_retried_then_detached_lazily(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(sysmount, "BUSY_RETRY_DELAY", 0)
    busy = (32, "umount: /x: target is busy.\n")
    runner = Scripted({"umount": [busy, busy]})
    assert sysmount.unmount(tmp_path, runner) is False
    assert runner.log == [["umount", str(tmp_path)]] * 2 + [["umount", "-l", str(tmp_path)]]
    assert "detaching it lazily" in caplog.text
    runner = Scripted({"umount": [busy]})
    assert sysmount.unmount(tmp_path, runner) is True  # free on the second try
    assert runner.log == [["umount", str(tmp_path)]] * 2


def test_probed_gives_none_when_it_does_not_mount(tmp_path: Path) -> None:
    runner = Scripted({"mount": [(32, "bad superblock")]})
    with probed("/dev/sdz1", "ext4", runner=runner, where=tmp_path) as where:
        assert where is None
    runner = Scripted()
    with probed("/dev/sdz1", "btrfs", runner=runner, where=tmp_path,
                options=("subvolid=5",)) as where:
        assert where == tmp_path
    assert runner.log[0][4] == "ro,rescue=nologreplay,subvolid=5"


def test_a_callers_own_command_line(tmp_path: Path) -> None:
    runner = Scripted()
    with mounted("//nas/b", runner=runner, purpose="share", base=str(tmp_path),
                 argv=lambda node, mp: ["mount", "-t", "cifs", node, mp, "-o", "ro,guest"]
                 ) as where:
        pass
    assert runner.log == [["mount", "-t", "cifs", "//nas/b", str(where), "-o", "ro,guest"],
                          ["umount", str(where)]]


def test_bind_makes_it_a_slave(tmp_path: Path) -> None:
    runner = Scripted()
    sysmount.bind("/dev", tmp_path, runner)
    assert runner.log == [["mount", "--bind", "/dev", str(tmp_path)],
                          ["mount", "--make-rslave", str(tmp_path)]]


# --------------------------------------------------------------------------- real mounts


@pytest.fixture
def ext4_loop(tmp_path: Path) -> Iterator[str]:
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(32 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "SYSMOUNT", str(image)], check=True)
    dev = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True,
                         text=True, check=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def _mount_options(where: Path) -> list[str] | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == str(where):
            return fields[3].split(",")
    return None


@pytest.mark.root
def test_real_ext4_mounts_rw_then_ro_and_cleans_up(ext4_loop: str) -> None:
    runner = CommandRunner()
    with mounted(ext4_loop, "ext4", mode=RW, runner=runner, purpose="test") as where:
        opts = _mount_options(where)
        assert opts is not None and "rw" in opts and "noatime" in opts
        (where / "hello.txt").write_text("written through sysmount\n")
    assert _mount_options(where) is None and not where.exists()
    with mounted(ext4_loop, "ext4", runner=runner, purpose="test") as where:
        opts = _mount_options(where)
        assert opts is not None and "ro" in opts
        assert (where / "hello.txt").read_text() == "written through sysmount\n"
        with pytest.raises(OSError):
            (where / "other.txt").write_text("no")
    assert _mount_options(where) is None and not where.exists()


@pytest.mark.root
def test_real_mount_is_undone_after_an_exception_even_when_busy(
        ext4_loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sysmount, "BUSY_RETRY_DELAY", 0)
    with pytest.raises(RuntimeError), \
            mounted(ext4_loop, "ext4", mode=RW, runner=CommandRunner()) as where:
        held = os.open(where / "held.txt", os.O_CREAT | os.O_WRONLY, 0o600)  # busy: umount -l
        raise RuntimeError("boom")
    os.close(held)
    assert _mount_options(where) is None and not where.exists()


@pytest.mark.root
def test_real_failure_is_a_sentence(tmp_path: Path, ext4_loop: str) -> None:
    base = tmp_path / "base"
    base.mkdir()
    with pytest.raises(MountError) as err, \
            mounted(ext4_loop, "xfs", runner=CommandRunner(), base=str(base)):
        pytest.fail("an ext4 does not mount as xfs")
    assert str(err.value).startswith(f"{ext4_loop} could not be mounted: ")
    assert list(base.iterdir()) == []


# --------------------------------------------------------------------------- the one door

MOUNT_PROGRAMS = {"mount", "umount", "ntfs-3g", "mount.cifs", "mount.nfs", "fusermount",
                  "fusermount3"}
# Modules that may spell a mount command line, and why; none of them runs it:
ALLOWED = {
    # the per-type command heads sysmount.mount_command asks for (data, nothing run)
    "fs/registry.py",
    # the cifs/nfs command line of a share (its protocol options), run only through
    # sysmount.mounted(argv=...)
    "repo/share.py",
}


def _mount_argvs(path: Path) -> list[int]:
    """Lines of list/tuple literals whose first element names a mount program."""
    tree = ast.parse(path.read_text(), str(path))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.List | ast.Tuple) and node.elts
            and isinstance(node.elts[0], ast.Constant)
            and node.elts[0].value in MOUNT_PROGRAMS]


def test_no_module_but_sysmount_runs_mount_itself() -> None:
    offenders = {}
    for path in sorted(RESCUE.rglob("*.py")):
        rel = path.relative_to(RESCUE).as_posix()
        if rel == "sysmount.py" or rel in ALLOWED:
            continue
        lines = _mount_argvs(path)
        if lines:
            offenders[rel] = lines
    assert offenders == {}, "mount/umount outside rescue/sysmount.py: " + repr(offenders)
    assert _mount_argvs(RESCUE / "sysmount.py")  # the scan does see a mount argv
    for rel in ALLOWED:
        assert (RESCUE / rel).is_file()
    assert os.path.basename(sysmount.__file__) == "sysmount.py"
