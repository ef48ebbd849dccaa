"""Network shares as repository locations: what is recognised, what is mounted how, and
that a share that cannot be mounted gives a sentence and leaves nothing behind."""

from __future__ import annotations

import glob
import shutil

import pytest

from rescue.devices.netshare import (
    NFS,
    SMB,
    Share,
    is_share,
    location_display,
    mount_argv,
    parse_share,
    reachable,
)
from rescue.errors import RepositoryError, UsageError


@pytest.mark.parametrize(("text", "want"), [
    ("smb://nas/backups/rescue", Share(SMB, "nas", "backups", "rescue")),
    ("smb://tech:p%40ss@nas.local/backups", Share(SMB, "nas.local", "backups", "", "tech",
                                                  "p@ss")),
    ("cifs://10.0.0.5/data/a/b", Share(SMB, "10.0.0.5", "data", "a/b")),
    ("//nas/backups/rescue", Share(SMB, "nas", "backups", "rescue")),
    ("\\\\nas\\backups\\rescue", Share(SMB, "nas", "backups", "rescue")),
    ("nfs://server/export/rescue", Share(NFS, "server", "/export/rescue", "")),
    ("server:/export/rescue", Share(NFS, "server", "/export/rescue", "")),
    ("10.0.2.2:/srv", Share(NFS, "10.0.2.2", "/srv", "")),
    ("/media/usb/rescue", None),
    ("http://server/backups/", None),
    ("relative/folder", None),
])
def test_locations_are_recognised(text: str, want: Share | None) -> None:
    assert parse_share(text) == want
    assert is_share(text) == (want is not None)


def test_half_written_shares_say_what_is_missing() -> None:
    with pytest.raises(UsageError, match="needs a server and a share name"):
        parse_share("smb://nas")
    with pytest.raises(UsageError, match="exported path"):
        parse_share("nfs://server/")
    assert is_share("smb://nas")  # still a share: reachable() reports it


def test_password_never_shown() -> None:
    shown = location_display("smb://tech:s3cret@nas/backups/rescue")
    assert shown == "smb://tech@nas/backups/rescue" and "s3cret" not in shown
    assert location_display("/media/usb") == "/media/usb"
    web = location_display("https://tech:s3cret@server:8443/backups/")
    assert web == "https://tech@server:8443/backups/"
    assert location_display("http://server/backups/") == "http://server/backups/"


def test_mount_options() -> None:
    smb = Share(SMB, "nas", "backups", "rescue", "tech", "pw")
    argv = mount_argv(smb, "/run/x", write=False, credentials="/run/c")
    assert argv[:5] == ["mount", "-t", "cifs", "//nas/backups", "/run/x"]
    assert argv[6].startswith("ro,credentials=/run/c") and "pw" not in " ".join(argv)
    assert "guest" in mount_argv(Share(SMB, "nas", "b", ""), "/m", write=True)[6]
    assert mount_argv(Share(SMB, "nas", "b", ""), "/m", write=True)[6].startswith("rw,")
    nfs = mount_argv(Share(NFS, "srv", "/export", ""), "/m", write=False)
    assert nfs[2:5] == ["nfs", "srv:/export", "/m"] and nfs[6].startswith("ro,")


def test_a_folder_is_passed_through(tmp_path) -> None:
    with reachable(str(tmp_path)) as folder:
        assert folder == str(tmp_path)


@pytest.mark.root
@pytest.mark.skipif(shutil.which("mount.cifs") is None,
                    reason="cifs-utils is not installed (make setup installs it)")
def test_a_share_that_cannot_be_mounted_leaves_nothing(tmp_path) -> None:
    before = set(glob.glob("/run/rescue-share-*"))
    with pytest.raises(RepositoryError, match="could not be mounted") as failed, \
            reachable("smb://tech:s3cret@127.0.0.1/none/rescue"):
        pass
    assert "s3cret" not in str(failed.value) and "smb://tech@127.0.0.1/none" in str(
        failed.value)
    assert set(glob.glob("/run/rescue-share-*")) == before  # no mount point, no credentials
    with open("/proc/self/mountinfo") as f:
        assert "rescue-share-" not in f.read()
