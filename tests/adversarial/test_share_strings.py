"""Hostile share strings against the one door (issue 12, finding 9): what a technician
(or a kernel command line written by someone else) gives as a repository reaches
mount(8) and the SMB credentials file. A comma in an SMB share adds mount options, a
newline in the login adds a line to the credentials file, a host starting with ``-``
becomes an option, ``..`` leaves the share, a NUL breaks every system call. Each is
refused when the location is parsed, with a sentence, before any mount command runs."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from rescue.errors import RepositoryError, UsageError
from rescue.image.repository import REPO_FILE
from rescue.repo import Location, open_repository
from rescue.runner import DryRunRunner, Result

HOSTILE = [
    # commas: mount.cifs hands the share to the kernel inside its option string
    ("smb://nas/backups,uid=0,file_mode=0777/rescue", "comma"),
    ("//nas/backups,vers=1.0/rescue", "comma"),
    ("\\\\nas\\backups,sec=none", "comma"),
    ("smb://nas/backups/pc1,x", "comma"),
    ("smb://nas,port=4455/backups", "comma"),
    # a line more in the credentials file (username=...\npassword=...)
    ("smb://tech%0Adomain=EVIL:pw@nas/backups", "control character"),
    ("smb://tech:pw%0Ausername=root@nas/backups", "control character"),
    ("smb://tech:p\nw@nas/backups", "control character"),
    ("smb://tech:p\rw@nas/backups", "control character"),
    ("smb://te\tch:pw@nas/backups", "control character"),
    # a host that is an option
    ("nfs://-oremount/export", "cannot start with"),
    ("smb://-oguest/backups", "cannot start with"),
    ("//-o/backups", "cannot start with"),
    # out of the share
    ("smb://nas/backups/../../../etc", ".."),
    ("smb://nas/backups/%2e%2e/%2E%2E/etc", ".."),
    ("smb://nas/../backups", ".."),
    ("//nas/backups/./../x", ".."),
    ("nfs://server/export/../../etc", ".."),
    ("server:/export/../etc", ".."),
    # NUL anywhere
    ("smb://nas/back%00ups", "control character"),
    ("smb://tech:p%00w@nas/backups", "control character"),
    ("smb://nas/backups\x00/x", "control character"),
    ("nfs://server/exp\x00ort", "control character"),
    ("/media/usb\x00/rescue", "control character"),
    ("http://server/back\x00ups/", "control character"),
]


@pytest.mark.parametrize(("text", "says"), HOSTILE)
def test_parse_refuses_with_a_sentence(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says.replace(".", r"\.")) as err:
        Location.parse(text)
    message = str(err.value)
    assert message.endswith(".") and "Traceback" not in message
    assert "\x00" not in message and "\n" not in message  # shown as it can be read
    assert "pw" not in message.replace("pw@", "")  # never the password


class NoMount(DryRunRunner):
    """Records commands and runs none; a mount fails, so that code that does mount
    (a regression) writes nothing anywhere (the first version of this test, run against
    the unfixed code, made a repository in /run/etc through smb://nas/b/%2e%2e/%2e%2e/etc)."""

    def run(self, argv: Sequence[str], **kwargs: object) -> Result:
        done = super().run(argv, **kwargs)
        if done.argv[:1] == ["mount"]:
            return Result(done.argv, 32, "", "mount: refused by the test")
        return done


@pytest.mark.parametrize(("text", "says"), HOSTILE)
@pytest.mark.parametrize("write", [False, True])
def test_no_mount_runs(text: str, says: str, write: bool) -> None:
    runner = NoMount()
    with pytest.raises(UsageError), open_repository(text, write=write, runner=runner):
        pass
    assert not [argv for argv in runner.log if "mount" in argv[0]], runner.log


@pytest.mark.parametrize("text", [
    "smb://tech:pa%2Css@nas/backups/pc1",  # a comma in a password goes to the file only
    "smb://tech:p%40ss@nas/backups",
    "smb://nas/backups/pc.1/..rescue",  # dots inside a name are no segment ..
    "nfs://server-1/export/rescue",
    "nfs://[fd00::1]/export",
    "//nas_2/backups",
])
def test_ordinary_shares_still_parse(text: str) -> None:
    assert Location.parse(text).share is not None


class LinkingServer(DryRunRunner):
    """No real mount: the "server" shows the repository's folder as a link to *outside*
    (what a hostile SMB server with unix extensions can do)."""

    def __init__(self, outside: Path) -> None:
        super().__init__()
        self.outside = outside

    def run(self, argv: Sequence[str], **kwargs: object) -> Result:
        args = [str(a) for a in argv]
        if args[:3] == ["mount", "-t", "cifs"]:
            os.symlink(self.outside, Path(args[4]) / "pc1")
        elif args[:1] == ["umount"]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(Path(args[-1]) / "pc1")
        return super().run(argv, **kwargs)


@pytest.mark.skipif(shutil.which("mount.cifs") is None, reason="needs cifs-utils")
@pytest.mark.parametrize("write", [True, False])
def test_a_link_on_the_server_leads_nowhere_else(tmp_path: Path, write: bool) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    if not write:
        (outside / REPO_FILE).write_text("{}")
    runner = LinkingServer(outside)
    with pytest.raises(RepositoryError, match="leads out of the share"), \
            open_repository("smb://nas/backups/pc1", write=write, runner=runner):
        pass
    assert sorted(p.name for p in outside.iterdir()) == ([] if write else [REPO_FILE])
    assert [a[0] for a in runner.log] == ["mount", "umount"]  # and unmounted again
