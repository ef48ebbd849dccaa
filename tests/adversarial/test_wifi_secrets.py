"""A Wi-Fi passphrase never reaches what rescue writes down or shows other users: not a
command line (``ps``: every argv the runner was given), not a program's stdin, not the
wizard log, not a file in /run, not an error's sentence, not the CLI's output. It goes to
wpa_supplicant over its control socket only (the stand-in here records what it got:
this machine has no radio, see tests/wifi_fakes.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from textual.app import App
from wifi_fakes import AccessPoint, fake_wifi

from rescue import cli, services
from rescue.net.wifi import WifiError
from rescue.wizard.backend import EngineServices
from rescue.wizard.screens.dialogs import WifiDialog

SECRET = 'S3cr#t "pa$$ word'
WRONG = "wr0ng-but-s3cret"
ROOT = Path(__file__).resolve().parents[2]


def _nowhere(wifi, runner, log_file: Path | None, *words: str) -> None:
    for word in words:
        for argv, stdin in zip(runner.log, runner.inputs, strict=True):
            assert not any(word in arg for arg in argv), argv
            assert stdin is None or word not in stdin
        for path in wifi.run_dir.rglob("*"):
            if path.is_file():
                assert word not in path.read_text(errors="replace"), path
        if log_file is not None:
            assert word not in log_file.read_text()


def test_the_wizard_services_log_the_join_but_not_the_passphrase(tmp_path: Path) -> None:
    log_file = tmp_path / "wizard.log"
    with fake_wifi([AccessPoint(b"rescue-test", SECRET)]) as (wifi, supplicant, runner):
        svc = EngineServices(runner=runner, log_file=log_file)
        svc.wifi = wifi
        with pytest.raises(WifiError) as err:
            svc.wifi_join("wlan0", b"rescue-test", WRONG)
        assert WRONG not in str(err.value)
        result = svc.wifi_join("wlan0", b"rescue-test", SECRET)
        assert SECRET not in result.message
        assert f'SET_NETWORK 0 psk "{SECRET}"' in supplicant.requests  # the socket got it
        _nowhere(wifi, runner, log_file, SECRET, WRONG)
    log = log_file.read_text()
    assert "joining rescue-test with a passphrase" in log
    assert "not joined: The passphrase was not accepted" in log
    assert "Connected to the Wi-Fi network rescue-test" in log
    assert oct(os.stat(log_file).st_mode & 0o777) == "0o600"


def test_the_wizard_dialog_keeps_no_passphrase(tmp_path: Path) -> None:
    log_file = tmp_path / "wizard.log"

    with fake_wifi([AccessPoint(b"rescue-test", SECRET)]) as (wifi, supplicant, runner):
        svc = EngineServices(runner=runner, log_file=log_file)
        svc.wifi = wifi

        class OneDialog(App[None]):
            def on_mount(self) -> None:
                self.push_screen(WifiDialog(svc, "wlan0"))

        async def run() -> None:
            app = OneDialog()
            async with app.run_test(size=(80, 24)) as pilot:
                dialog = app.screen
                for _ in range(100):
                    if dialog.networks:
                        break
                    await pilot.pause(0.05)
                await pilot.press("enter", *WRONG, "enter")
                for _ in range(200):
                    if "not accepted" in str(dialog.query_one("#wifi-said").render()):
                        break
                    await pilot.pause(0.05)
                await pilot.press(*SECRET, "enter")
                for _ in range(200):
                    if dialog.joined:
                        break
                    await pilot.pause(0.05)
                assert dialog.joined and SECRET not in dialog.joined
                assert dialog.query_one("#passphrase").value == ""
                for worker in app.workers:  # what Textual's debug output shows
                    assert SECRET not in repr(worker) and WRONG not in repr(worker)

        import asyncio
        asyncio.run(run())
        assert f'SET_NETWORK 0 psk "{SECRET}"' in supplicant.requests
        _nowhere(wifi, runner, log_file, SECRET, WRONG)


def test_the_cli_reads_the_passphrase_from_a_file_and_never_shows_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    secret_file = tmp_path / "wifi.txt"
    secret_file.write_text(SECRET + "\n")
    wrong_file = tmp_path / "wrong.txt"
    wrong_file.write_text(WRONG + "\n")
    with fake_wifi([AccessPoint(b"rescue-test", SECRET)], address="") as (
            wifi, supplicant, runner):
        monkeypatch.setattr(services, "wifi", lambda runner=None: wifi)
        argv = ["wifi", "join", "rescue-test", "--passphrase-file", str(wrong_file)]
        monkeypatch.setattr(sys, "argv", ["rescue", *argv])
        assert cli.main(argv) == 30
        out = capsys.readouterr()
        assert "rescue: The passphrase was not accepted" in out.err
        argv = ["wifi", "join", "rescue-test", "--passphrase-file", str(secret_file)]
        assert cli.main(argv) == 0
        out = capsys.readouterr()
        assert "Connected to the Wi-Fi network rescue-test (wlan0), but no network address" \
            in out.out
        assert SECRET not in out.out + out.err and WRONG not in out.out + out.err
        assert f'SET_NETWORK 0 psk "{SECRET}"' in supplicant.requests
        _nowhere(wifi, runner, None, SECRET, WRONG)


def test_a_passphrase_on_the_command_line_is_refused_unrepeated(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["wifi", "join", "x", "--passphrase", SECRET])
    err = capsys.readouterr().err
    assert SECRET not in err and "not taken on the command line" in err
    # and no abbreviation of --passphrase-file takes the words as a file name (whose
    # "cannot be read" would repeat them)
    with pytest.raises(SystemExit):
        cli.main(["wifi", "join", "x", "--passphrase-f", SECRET])
    assert "cannot be read" not in capsys.readouterr().err
