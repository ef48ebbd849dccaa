"""Network shares as repository locations: what is recognised, what is mounted how, and
that a share that cannot be mounted gives a sentence and leaves nothing behind."""

from __future__ import annotations

import glob
import shutil

import pytest

from rescue.errors import RepositoryError, UsageError
from rescue.repo import NFS, SMB, Location, Share, display, open_repository
from rescue.repo.location import parse_share
from rescue.repo.share import mount_argv


@pytest.mark.parametrize(("text", "want"), [
    ("smb://nas/backups/rescue", Share(SMB, "nas", "backups", "rescue")),
    ("smb://tech:p%40ss@nas.local/backups", Share(SMB, "nas.local", "backups", "", "tech",
                                                  "p@ss")),
    ("cifs://10.0.0.5/data/a/b", Share(SMB, "10.0.0.5", "data", "a/b")),
    ("SMB://nas/backups", Share(SMB, "nas", "backups", "")),
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
    where = Location.parse(text)
    assert where.share == want
    assert (where.kind in (SMB, NFS)) == (want is not None)


def test_half_written_shares_say_what_is_missing() -> None:
    with pytest.raises(UsageError, match="needs a server and a share name"):
        Location.parse("smb://nas")
    with pytest.raises(UsageError, match="exported path") as err:
        Location.parse("nfs://server/")
    assert str(err.value).startswith("nfs://server/:")
    with pytest.raises(UsageError, match="share name") as err:
        Location.parse("smb://tech:s3cret@nas")
    assert "s3cret" not in str(err.value)


def test_password_never_shown() -> None:
    shown = display("smb://tech:s3cret@nas/backups/rescue")
    assert shown == "smb://tech@nas/backups/rescue" and "s3cret" not in shown
    assert display("/media/usb") == "/media/usb"
    web = display("https://tech:s3cret@server:8443/backups/")
    assert web == "https://tech@server:8443/backups/"
    assert display("http://server/backups/") == "http://server/backups/"
    assert "s3cret" not in display("smb://tech:s3cret@nas")  # unusable, still hidden
    assert "s3cret" not in repr(Location.parse("smb://tech:s3cret@nas/backups"))


def test_mount_options() -> None:
    smb = Share(SMB, "nas", "backups", "rescue", "tech", "pw")
    argv = mount_argv(smb, "/run/x", write=False, credentials="/run/c")
    assert argv[:5] == ["mount", "-t", "cifs", "//nas/backups", "/run/x"]
    assert argv[6].startswith("ro,credentials=/run/c") and "pw" not in " ".join(argv)
    assert "guest" in mount_argv(Share(SMB, "nas", "b", ""), "/m", write=True)[6]
    assert mount_argv(Share(SMB, "nas", "b", ""), "/m", write=True)[6].startswith("rw,")
    nfs = mount_argv(Share(NFS, "srv", "/export", ""), "/m", write=False)
    assert nfs[2:5] == ["nfs", "srv:/export", "/m"] and nfs[6].startswith("ro,")


@pytest.mark.root
@pytest.mark.skipif(shutil.which("mount.cifs") is None,
                    reason="cifs-utils is not installed (make setup installs it)")
@pytest.mark.parametrize("write", [False, True])
def test_a_share_that_cannot_be_mounted_leaves_nothing(write: bool) -> None:
    before = set(glob.glob("/run/rescue-share-*"))
    with pytest.raises(RepositoryError, match="could not be mounted") as failed, \
            open_repository("smb://tech:s3cret@127.0.0.1/none/rescue", write=write):
        pass
    assert "s3cret" not in str(failed.value) and "smb://tech@127.0.0.1/none" in str(
        failed.value)
    assert set(glob.glob("/run/rescue-share-*")) == before  # no mount point, no credentials
    with open("/proc/self/mountinfo") as f:
        assert "rescue-share-" not in f.read()
