"""Passwords in what rescue writes down (issue 12, finding 7): a repository's login
reaches the crash log (the whole command line), the wizard log, the restore report and
the saved logs (the journal and dmesg carry the kernel command line,
``rescue.repo=smb://user:pw@...``). Each is written without the password, readable by
root only, never at a path in /tmp another user could have prepared. A ``#`` in a
password or a port out of range is a sentence, not an internal error."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from rescue import cli
from rescue.commands import image_commands
from rescue.runner import CommandRunner, Result
from rescue.wizard import backend
from rescue.wizard.backend import EngineServices

ROOT = Path(__file__).resolve().parents[2]
SECRET = "S3cr#t:pa@ss"  # typed as is; percent-encoded where a URL needs it
TYPED = "S3cr%23t%3Apa%40ss"


def _rescue(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANG", "LC_"))}
    return subprocess.run([sys.executable, "-m", "rescue", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=env | {"LANG": "C.UTF-8"})


@pytest.mark.parametrize(("repo", "password", "says"), [
    ("http://u:p#w@host:99999/x", "p#w", "%23"),
    ("smb://u:pa#ss@nas/share", "pa#ss", "%23"),
    ("http://u:pw@host:99999/x", ":pw", "port"),
    ("smb://u:pw@nas:70000/share", ":pw", "port"),
    ("nfs://server:0/export", None, "port"),
])
def test_a_hash_or_a_bad_port_is_one_sentence(repo: str, password: str | None,
                                              says: str) -> None:
    proc = _rescue("list", "--repo", repo)
    assert proc.returncode == 2, proc.stderr  # UsageError
    err = proc.stderr.strip()
    assert err.startswith("rescue: ") and "\n" not in err, err
    assert "internal error" not in err and "Traceback" not in err
    assert says in err, err
    if password:
        assert password not in err, err


def _crash(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """`rescue list` with a login in its command line, meeting a bug."""
    def bug(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug")

    argv = ["list", "--repo", f"smb://tech:{TYPED}@nas/backups"]
    monkeypatch.setattr(sys, "argv", ["rescue", *argv])
    monkeypatch.setattr(image_commands, "open_repository", bug)
    assert cli.main(argv) == 70
    err = capsys.readouterr().err
    assert "internal error" in err
    return Path(err.split("the details are in ")[1].split(". Nothing")[0])


def _private_file(path: Path) -> str:
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    return path.read_text()


def test_the_crash_log_holds_no_password_and_is_root_s_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "CRASH_LOG_DIR", str(tmp_path / "log"), raising=False)
    path = _crash(monkeypatch, capsys)
    text = _private_file(path)
    assert "smb://tech:***@nas/backups" in text and "a bug" in text
    assert TYPED not in text and "S3cr" not in text
    path.unlink()


def test_the_crash_log_falls_back_to_a_private_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("no folder can be made below a file")
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o1777)
    monkeypatch.setattr(cli, "CRASH_LOG_DIR", str(tmp_path / "file" / "log"), raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    # another user prepares the name the log would get: a link to a file of root's
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    path = _crash(monkeypatch, capsys)
    assert path.parent != tmp and path.parent.parent == tmp
    assert stat.S_IMODE(os.lstat(path.parent).st_mode) == 0o700
    assert "S3cr" not in _private_file(path)
    assert victim.read_text() == "keep\n"


class Machine(CommandRunner):
    """The real runner, except that the journal and the kernel's messages are the ones of
    a machine booted with a repository on its kernel command line."""

    CMDLINE = (f"BOOT_IMAGE=/live/vmlinuz boot=live rescue.repo=smb://tech:{TYPED}@nas/b "
               f"rescue.backup=//tech:{SECRET}@nas/b2 quiet")

    def run(self, argv, **kwargs) -> Result:  # type: ignore[override]
        args = [str(a) for a in argv]
        if args[0] == "journalctl":
            return Result(args, 0, f"Dec 03 kernel: Command line: {self.CMDLINE}\n", "")
        if args[0] == "dmesg":
            return Result(args, 0, f"[    0.000000] Command line: {self.CMDLINE}\n", "")
        return super().run(argv, **kwargs)


def test_the_wizard_log_and_the_saved_logs_hold_no_password(tmp_path: Path) -> None:
    log_file = tmp_path / "wizard.log"
    svc = EngineServices(runner=Machine(), log_file=log_file)
    svc._log(f"not searched: https://tech:{TYPED}@server/b/: no answer")
    svc._log(f"mount -t cifs //nas/b -o username=tech,password={SECRET},ro")
    assert "S3cr" not in _private_file(log_file)
    assert "https://tech:***@server/b/" in log_file.read_text()
    svc.report_file.write_text(f'{{"error": "smb://tech:{TYPED}@nas/b is gone"}}\n')
    stick = tmp_path / "stick"
    stick.mkdir()
    said = svc.save_logs(str(stick))
    [saved] = stick.glob("rescue-logs-*.txt")
    assert str(saved) in said
    text = _private_file(saved)
    assert "rescue.repo=smb://tech:***@nas/b" in text and "rescue.backup=//tech:***@nas/b2" in text
    assert "S3cr" not in text and "pa@ss" not in text and TYPED not in text


def test_the_wizard_log_follows_no_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / "wizard.log").symlink_to(victim)
    EngineServices(log_file=tmp_path / "wizard.log")._log("restore started")
    assert victim.read_text() == "keep\n"


def test_the_wizard_log_is_not_in_tmp_by_default() -> None:
    if "RESCUE_LOG" in os.environ:
        pytest.skip("RESCUE_LOG names the log")
    tmp = os.path.realpath(tempfile.gettempdir())
    assert not os.path.realpath(backend.LOG_FILE).startswith(tmp + os.sep)
