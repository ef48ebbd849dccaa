"""A repository on a real SMB share (smbd on 127.0.0.1): `rescue backup` writes into it
through the one door (mounted read-write for the backup, the folder made in the share),
`list`, `verify` and a dry-run `restore` read it (mounted read-only), and nothing stays
mounted after any of them."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from realdisk import BackedUp, rescue_cli

from rescue import services
from rescue.errors import RepositoryError
from rescue.repo import Share
from rescue.repo import share as share_backend
from rescue.runner import CommandRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "iso"))
from sambaserve import samba  # noqa: E402

pytestmark = pytest.mark.root


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _kernel_mounts_cifs() -> bool:
    subprocess.run(["modprobe", "-q", "cifs"], check=False)
    with open("/proc/filesystems") as f:
        return any(line.split()[-1] == "cifs" for line in f if line.strip())


def _nothing_mounted() -> bool:
    with open("/proc/self/mountinfo") as f:
        return "rescue-share-" not in f.read()


@pytest.mark.skipif(shutil.which("smbd") is None or shutil.which("mount.cifs") is None,
                    reason="needs samba and cifs-utils")
def test_backup_to_and_restore_from_an_smb_share(gpt_backup: BackedUp, blank_disk,
                                                 tmp_path: Path) -> None:
    if not _kernel_mounts_cifs():
        pytest.skip("this kernel cannot mount SMB shares (no cifs module)")
    if not _port_free(445):
        pytest.skip("something else listens on port 445")
    share = tmp_path / "share"
    share.mkdir()
    location = "smb://127.0.0.1/backups/pc1/rescue"
    with samba(share, tmp_path / "samba", writable=True):
        proc = rescue_cli("backup", "--disk", gpt_backup.system.dev, "--repo", location,
                          "--name", "on the share", check=True)
        assert f"written to {location}" in proc.stdout
        assert f"Repository {location}" in proc.stdout  # the share, not the private mount
        assert (share / "pc1" / "rescue" / "rescue-repository.json").is_file()
        assert _nothing_mounted()

        listed = json.loads(rescue_cli("list", "--repo", location, "--json",
                                       check=True).stdout)
        assert [i["name"] for i in listed] == ["on the share"]
        verify = rescue_cli("verify", "--repo", location, "--image", listed[0]["id"],
                            check=True)
        assert "is intact" in verify.stdout
        target = blank_disk(gpt_backup.source_file.stat().st_size)
        plan = rescue_cli("restore", "--repo", location, "--disk", target, "--dry-run",
                          check=True)
        assert "nothing was written" in plan.stdout
        missing = rescue_cli("list", "--repo", "smb://127.0.0.1/backups/nothing-here")
        assert missing.returncode != 0 and "no folder nothing-here" in missing.stderr
        assert _nothing_mounted()


def test_backup_through_the_share_backend_with_its_mount_faked(
        gpt_backup: BackedUp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel has no cifs: the same path through the facade and the engine,
    the mount replaced by a folder."""
    events: list[str] = []
    folder = tmp_path / "mounted"

    @contextlib.contextmanager
    def mounted_share(share: Share, runner: object, write: bool) -> Iterator[str]:
        events.append(f"mount {'rw' if write else 'ro'} {share.source}")
        path = folder / share.subpath
        path.mkdir(parents=True, exist_ok=True)
        try:
            yield str(path)
        finally:
            events.append("unmount")

    monkeypatch.setattr(share_backend, "mounted_share", mounted_share)
    location = "smb://tech:s3cret@nas/backups/pc1"
    prepared = services.prepare_backup(gpt_backup.system.dev, location,
                                       services.BackupOptions(name="faked share"))
    assert events == ["mount rw //nas/backups"]
    assert "Repository smb://tech@nas/backups/pc1" in prepared.summary_lines()
    result = services.run_backup(prepared)
    assert events == ["mount rw //nas/backups", "unmount"]
    with services.open_repository(location) as repo:
        assert repo.load_manifest("latest").id == result.manifest.id
    assert (folder / "pc1" / "images" / result.manifest.id / "manifest.json").is_file()


class _BindMountRunner(CommandRunner):
    """The share's server stood in for by a local folder: `mount -t cifs //nas/share MP`
    becomes a real bind mount of that folder on MP (the kernel here has no cifs); every
    other command (umount among them) runs as it is."""

    def __init__(self, served: Path) -> None:
        self.served = served

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def]
        args = [str(a) for a in argv]
        if args[:3] in (["mount", "-t", "cifs"], ["mount", "-t", "nfs"]):
            mode = "ro" if args[6].startswith("ro,") else "rw"
            result = super().run(["mount", "--bind", str(self.served), args[4]], **kwargs)
            if mode == "ro":
                super().run(["mount", "-o", "remount,bind,ro", args[4]], **kwargs)
            return result
        return super().run(argv, **kwargs)


@pytest.mark.parametrize("command", ["prune", "delete"])
def test_delete_and_prune_leave_no_folder_behind_in_a_share(tmp_path: Path,
                                                           command: str) -> None:
    """A delete or prune names an existing repository: a wrong folder in a share is
    refused with a sentence and not created (a backup would create it)."""
    served = tmp_path / "served"
    served.mkdir()
    runner = _BindMountRunner(served)
    location = "smb://nas/backups/no-such-folder"
    with pytest.raises(RepositoryError, match="no folder no-such-folder"):
        if command == "prune":
            services.prune(location, runner=runner)
        else:
            services.delete_image(location, "20260101T000000Z-abcdef", runner=runner)
    assert list(served.iterdir()) == []
    assert _nothing_mounted()
    with services.open_writer(location, runner) as repo:  # a backup's writer makes it
        assert repo.image_ids() == []
    assert (served / "no-such-folder" / "rescue-repository.json").is_file()
    assert _nothing_mounted()


@pytest.mark.parametrize("share", ["smb://nas/backups/pc1", "nfs://nas/srv/backups/pc1"])
def test_extract_from_a_repository_in_a_share(gpt_backup: BackedUp, tmp_path: Path,
                                              share: str) -> None:
    """Issue 13 on a share: the repository is reached through the share backend (a real
    mount: a bind mount standing in for the SMB or NFS server, as above), the image
    mounted through FUSE, a file copied out with its metadata; nothing stays mounted."""
    served = tmp_path / "served"
    # SMB mounts the share and finds the folder in it; NFS mounts the whole path
    shutil.copytree(gpt_backup.repo, served / "pc1" if share.startswith("smb") else served,
                    symlinks=True)
    runner = _BindMountRunner(served)
    to = tmp_path / "out"
    with services.opened_image(share, "latest", runner) as (repo, m):
        result = services.extract_files(repo, m, "/etc/hostname", to, runner=runner)
        image = m.id
    assert result is not None
    assert (to / "hostname").read_text().strip() == "demo-pc"
    assert _nothing_mounted()
    with open("/proc/self/mountinfo") as f:
        assert f"rescue:{image}" not in f.read()  # no FUSE image left behind
