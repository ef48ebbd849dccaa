"""Location: parsed once, shown without a password; open_repository: one door, the
backend chosen by the location's kind."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rescue.repo
from rescue import services
from rescue.devices.sysinfo import SourceIdentity
from rescue.errors import RepositoryError, RescueError, UsageError
from rescue.image.repository import REPO_FILE, Repository, RepositoryWriter
from rescue.repo import FOLDER, HTTP, KINDS, NFS, OPENERS, SMB, Location, open_repository
from rescue.repo import share as share_backend
from rescue.repo.location import redact


@pytest.mark.parametrize(("text", "kind", "shown"), [
    ("/media/usb/rescue", FOLDER, "/media/usb/rescue"),
    ("  /media/usb/rescue ", FOLDER, "/media/usb/rescue"),
    ("relative/folder", FOLDER, "relative/folder"),
    ("http://server/backups/", HTTP, "http://server/backups/"),
    ("HTTPS://tech:pw@server:8443/b/", HTTP, "https://tech@server:8443/b/"),
    ("smb://tech:pw@nas/backups/rescue", SMB, "smb://tech@nas/backups/rescue"),
    ("\\\\nas\\backups", SMB, "smb://nas/backups"),
    ("server:/export/rescue", NFS, "nfs://server/export/rescue"),
])
def test_kinds(text: str, kind: str, shown: str) -> None:
    where = Location.parse(text)
    assert (where.kind, where.display, str(where)) == (kind, shown, shown)
    assert Location.parse(where) is where
    assert "pw" not in repr(where)


def test_a_path_object_is_a_folder(tmp_path: Path) -> None:
    assert Location.parse(tmp_path) == Location(FOLDER, str(tmp_path), str(tmp_path))


@pytest.mark.parametrize(("text", "says"), [
    ("", "No repository was given"),
    ("   ", "No repository was given"),
    ("ftp://tech:s3cret@server/backups", "an http:// or https:// address"),
    ("s3://bucket/rescue", "an SMB or NFS share"),
    ("smb://nas", "needs a server and a share name"),
    ("nfs://server", "exported path"),
    ("smb://[nas/backups", "needs a server and a share name"),
    ("http://server:port/backups/", "the port must be a number from 1 to 65535"),
    ("http://tech:s3cret@server:99999/backups/", "the port must be a number"),
    ("smb://tech:s3cret@nas:0/backups", "the port must be a number"),
    ("https://tech:s3#cret@server/backups/", "write it as %23"),
    ("smb://tech:s3cret?@nas/backups", "write it as %3F"),
    ("smb://tech:s3cret%0A@nas/backups", "control character"),
    ("https://", "not a web address rescue can read"),
])
def test_what_is_no_location_says_what_to_type(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as err:
        Location.parse(text)
    assert "s3cret" not in str(err.value)


# -- passwords --------------------------------------------------------------------------

HOSTS = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z]{2,4})?", fullmatch=True)
NAMES = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
FOLDERS = st.lists(NAMES, max_size=3).map("/".join)
# a password cannot hide inside the rest of the address: it carries a mark the rest lacks
# (no control characters: a share refuses them, tests/adversarial/test_share_strings.py)
PASSWORDS = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
                    max_size=12).map(lambda p: "PW!" + p)


@st.composite
def with_login(draw: st.DrawFn) -> tuple[str, str, str]:
    """(text, user, password) of a share or web address with a login."""
    user, password = draw(NAMES), draw(PASSWORDS)
    host, share, folder = draw(HOSTS), draw(NAMES), draw(FOLDERS)
    login = f"{user}:{quote(password, safe='')}@"
    scheme = draw(st.sampled_from(["smb", "cifs", "http", "https"]))
    port = draw(st.sampled_from(["", ":8443"])) if scheme.startswith("http") else ""
    text = f"{scheme}://{login}{host}{port}/{share}" + (f"/{folder}" if folder else "")
    return text, user, password


@given(with_login())
def test_display_never_holds_the_password(case: tuple[str, str, str]) -> None:
    text, user, password = case
    where = Location.parse(text)
    for shown in (where.display, str(where), repr(where), rescue.repo.display(text)):
        assert password not in shown and quote(password, safe="") not in shown
        assert "PW!" not in shown and "PW%21" not in shown
    assert user in where.display


@given(with_login(), st.sampled_from(["", "rescue.repo=", "see ", "(", '"']),
       st.sampled_from(["", " quiet", ": no answer", '"']))
def test_redact_hides_the_password_in_free_text(case: tuple[str, str, str], head: str,
                                                tail: str) -> None:
    text, user, password = case
    typed = [text]  # and as typed, when a URL could hold it so (no space, no slash)
    if not any(c.isspace() or c in "/\\\"" for c in password):
        typed.append(text.replace(quote(password, safe=""), password))
    for written in typed:
        hidden = redact(f"log line {head}{written}{tail}\nnext line")
        assert "PW!" not in hidden and "PW%21" not in hidden, hidden
        assert f"{user}:***@" in hidden and hidden.endswith(f"{tail}\nnext line")


@pytest.mark.parametrize(("text", "hidden"), [
    ("rescue.repo=//tech:pw@nas/b quiet", "rescue.repo=//tech:***@nas/b quiet"),
    ("rescue.repo=tech:p@w@nas:/export", "rescue.repo=tech:***@nas:/export"),
    ("\\\\tech:pw@nas\\b", "\\\\tech:***@nas\\b"),
    ("-o username=tech,password=pw,ro", "-o username=tech,password=***,ro"),
    ("smb://tech@nas/b and http://server:8080/x at 12:30", None),
    ("image 2026-01-01T10:00:00Z, 12:30:45", None),
])
def test_redact_in_free_text(text: str, hidden: str | None) -> None:
    assert redact(text) == (hidden or text)


@given(with_login())
def test_display_is_a_location_again(case: tuple[str, str, str]) -> None:
    """What is shown can be typed back: the same place, the login without a password."""
    where = Location.parse(case[0])
    again = Location.parse(where.display)
    assert (again.kind, again.display) == (where.kind, where.display)
    if where.share is not None:
        assert again.share is not None
        assert again.share.source == where.share.source
        assert again.share.subpath == where.share.subpath
        assert again.share.user == where.share.user and again.share.password == ""


@given(st.sampled_from(["/srv/rescue", "/media/usb", "backups/rescue"]),
       st.sampled_from(["", "/"]))
def test_a_folder_is_kept_as_typed(path: str, tail: str) -> None:
    where = Location.parse(path + tail)
    assert (where.kind, where.address, where.display) == (FOLDER, path + tail, path + tail)


@given(st.sampled_from(["", "http://", "https://", "smb://", "cifs://", "nfs://", "//",
                        "\\\\", "x:", "ftp://"]),
       st.text(alphabet="ab1:/@[]%\\. ", max_size=20) | st.text(max_size=20))
def test_any_text_parses_or_says_why(head: str, tail: str) -> None:
    try:
        where = Location.parse(head + tail)
    except UsageError as exc:
        assert str(exc)
    else:
        assert where.kind in KINDS
        assert where.kind == FOLDER or where.display


# -- the one door -----------------------------------------------------------------------

def test_every_kind_has_an_opener() -> None:
    assert set(OPENERS) == set(KINDS)


def test_the_kind_chooses_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str, bool]] = []

    def fake(kind: str) -> rescue.repo.Opener:
        @contextlib.contextmanager
        def opened(location: Location, write: bool, runner: object) -> Iterator[str]:
            seen.append((kind, location.address, write))
            yield kind
        return opened

    for kind in KINDS:
        monkeypatch.setitem(OPENERS, kind, fake(kind))
    for text, kind in [("/srv/r", FOLDER), ("https://h/r/", HTTP), ("//nas/s", SMB),
                       ("h:/export", NFS)]:
        with open_repository(text, write=kind != HTTP) as opened:
            assert opened == kind
    assert seen == [(FOLDER, "/srv/r", True), (HTTP, "https://h/r/", False),
                    (SMB, "//nas/s", True), (NFS, "h:/export", True)]


def test_a_folder_is_created_for_writing_and_read_back(tmp_path: Path) -> None:
    where = tmp_path / "new" / "rescue"
    with pytest.raises(RepositoryError, match="does not exist"), open_repository(where):
        pass
    with open_repository(str(where), write=True) as writer:
        assert writer.local_folder == str(where) and writer.location == str(where)
        assert writer.image_ids() == []
    assert (where / REPO_FILE).is_file()
    with open_repository(where) as reader:
        assert isinstance(reader, Repository) and reader.image_ids() == []


def test_a_folder_that_holds_other_things_is_refused(tmp_path: Path) -> None:
    (tmp_path / "letter.txt").write_text("not a repository")
    with pytest.raises(RepositoryError, match="not empty"), \
            open_repository(tmp_path, write=True):
        pass


def test_a_web_server_is_never_written_to() -> None:
    # refused before any request: nothing listens on port 9
    with pytest.raises(UsageError, match="read-only") as err, \
            open_repository("http://tech:s3cret@127.0.0.1:9/backups/", write=True):
        pass
    assert "s3cret" not in str(err.value) and "tech@127.0.0.1:9" in str(err.value)


@pytest.fixture
def fake_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """The share backend with its mount replaced by a folder."""
    mounts: list[tuple[str, bool]] = []

    @contextlib.contextmanager
    def mounted_share(share: object, runner: object, write: bool) -> Iterator[str]:
        mounts.append((getattr(share, "source", ""), write))
        folder = tmp_path / "share"
        folder.mkdir(exist_ok=True)
        yield str(folder)

    monkeypatch.setattr(share_backend, "mounted_share", mounted_share)
    return mounts


def test_a_share_is_mounted_and_opened_as_a_folder(fake_mount: list[tuple[str, bool]],
                                                   tmp_path: Path) -> None:
    text = "smb://tech:s3cret@nas/backups"
    with pytest.raises(RepositoryError, match="not a rescue repository") as err, \
            open_repository(text):
        pass
    assert "smb://tech@nas/backups" in str(err.value) and "s3cret" not in str(err.value)
    with open_repository(text, write=True) as writer:
        assert writer.location == "smb://tech@nas/backups"  # messages name the share
        assert writer.local_folder == str(tmp_path / "share")
    with open_repository(text) as reader:
        assert reader.location == "smb://tech@nas/backups"
    assert fake_mount == [("//nas/backups", False), ("//nas/backups", True),
                          ("//nas/backups", False)]


# -- the facade keeps a share mounted from prepare to run -------------------------------

@pytest.fixture
def mount_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    log: list[str] = []

    @contextlib.contextmanager
    def mounted_share(share: object, runner: object, write: bool) -> Iterator[str]:
        log.append("mount rw" if write else "mount ro")
        folder = tmp_path / "share"
        folder.mkdir(exist_ok=True)
        try:
            yield str(folder)
        finally:
            log.append("unmount")

    monkeypatch.setattr(share_backend, "mounted_share", mounted_share)
    return log


def test_a_backup_share_stays_mounted_until_the_backup_has_run(
        mount_log: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def prepare(disks: object, repo: RepositoryWriter, options: object,
                runner: object) -> services.PreparedBackup:
        assert repo.location == "smb://nas/backups/pc1"
        return services.PreparedBackup([], repo, SourceIdentity(), services.BackupOptions())

    monkeypatch.setattr(services, "_prepare_backup", prepare)
    def run(prepared: object, sink: object, cancel: object) -> str:
        mount_log.append("backup")
        return "result"

    monkeypatch.setattr(services, "_run_backup", run)
    prepared = services.prepare_backup("/dev/sdz", "smb://nas/backups/pc1")
    assert mount_log == ["mount rw"]
    assert services.run_backup(prepared) == "result"
    assert mount_log == ["mount rw", "backup", "unmount"]

    def refuse(*args: object) -> services.PreparedBackup:
        raise UsageError("refused")

    monkeypatch.setattr(services, "_prepare_backup", refuse)
    with pytest.raises(UsageError, match="refused"):
        services.prepare_backup("/dev/sdz", "smb://nas/backups/pc1")
    assert mount_log[-2:] == ["mount rw", "unmount"]  # a refusal leaves nothing mounted


def test_a_prepared_restore_closed_unmounts(mount_log: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with open_repository("//nas/backups", write=True):  # an empty repository to read
        pass
    monkeypatch.setattr(services, "hardware_verdict", lambda *a: pytest.fail("planned"))
    with pytest.raises(RepositoryError, match="holds no images"):
        services.prepare_restore("//nas/backups", "latest", "/dev/sdz")
    assert mount_log == ["mount rw", "unmount", "mount ro", "unmount"]


def test_a_file_is_no_folder_to_write_to(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RepositoryError, match="is not a directory"), \
            open_repository(tmp_path / "file", write=True):
        pass


def test_a_refused_backup_leaves_no_repository_behind(tmp_path: Path) -> None:
    """The repository is opened (created) before the source is checked; a refusal takes
    away what that created, and an existing repository is left as it was."""
    source = tmp_path / "not-a-disk"
    source.write_bytes(b"x" * 4096)
    new = tmp_path / "new" / "repo"
    with pytest.raises(RescueError):
        services.prepare_backup(str(source), str(new))
    assert not new.exists() and (tmp_path / "new").is_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RescueError):
        services.prepare_backup(str(source), str(empty))
    assert empty.is_dir() and list(empty.iterdir()) == []
    Repository.create(tmp_path / "old")
    before = sorted(p.name for p in (tmp_path / "old").iterdir())
    with pytest.raises(RescueError):
        services.prepare_backup(str(source), str(tmp_path / "old"))
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == before
