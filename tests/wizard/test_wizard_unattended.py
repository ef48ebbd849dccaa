# ruff: noqa: F811  (pytest fixtures imported from wizard_fixtures shadow as parameters)
"""Unattended mode: answers from a kernel command line or a job file; the real engine
runs a restore from each onto a loop device; missing or ambiguous answers stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from loopdev import MiB
from wizard_disks import check_restored
from wizard_fakes import IMAGES, FixtureServices
from wizard_fixtures import english, loops, real_backup  # noqa: F401 (fixtures)

from rescue.errors import ImageNotFoundError, TargetRefusedError, UsageError
from rescue.unattended import load_job, parse_cmdline, parse_job, validate
from rescue.wizard import headless

CMDLINE = ("BOOT_IMAGE=/live/vmlinuz boot=live quiet rescue.lang=de rescue.keymap=de "
           "rescue.image=latest rescue.target=/dev/disk/by-id/ata-X rescue.action=restore "
           "rescue.confirm=yes rescue.repo=/media/a rescue.repo=/media/b rescue.after=reboot")


def test_kernel_command_line_is_parsed():
    a = parse_cmdline(CMDLINE)
    assert a is not None
    assert (a.lang, a.keymap, a.image, a.target, a.action, a.confirm, a.after) == (
        "de", "de", "latest", "/dev/disk/by-id/ata-X", "restore", True, "reboot")
    assert a.repos == ["/media/a", "/media/b"]
    assert validate(a) is a
    assert parse_cmdline("BOOT_IMAGE=/vmlinuz quiet splash") is None
    assert parse_cmdline('rescue.action=backup rescue.name="before upgrade"').name == \
        "before upgrade"


def test_job_file_is_parsed(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('[rescue]\naction = "restore"\nlang = "fr"\nrepo = ["/mnt/r"]\n'
                   'target = "/dev/sdb"\nconfirm = true\nverify = false\nafter = "poweroff"\n')
    a = load_job(job)
    assert (a.action, a.lang, a.repos, a.target, a.confirm, a.verify, a.after) == (
        "restore", "fr", ["/mnt/r"], "/dev/sdb", True, False, "poweroff")
    assert str(job) in a.origin


@pytest.mark.parametrize("text,message", [
    ('action = "restore"\nconfirm = true', "never picks a disk"),
    ('target = "/dev/sdb"', "action=restore or"),
    ('action = "restore"\ntarget = "/dev/sdb"\ncolour = "blue"', "unknown answer 'colour'"),
    ('action = "restore"\ntarget = "/dev/sdb"\nconfirm = "maybe"', "is not yes or no"),
    ('action = "restore"\ntarget = "/dev/sdb"\nlang = "xx"', "lang=xx is not available"),
    ('action = "restore"\ntarget = "/dev/sdb"\nafter = "dance"', "after=dance is unknown"),
    ('action = "backup"\nrepo = "/r"', "no disk to back up"),
    ("action = [", "not valid TOML"),
])
def test_missing_or_wrong_answers_stop_with_a_sentence(text, message):
    with pytest.raises(UsageError, match=message):
        validate(parse_job(text))


def test_cmdline_messages_name_the_kernel_parameter():
    with pytest.raises(UsageError, match=r"rescue\.target="):
        validate(parse_cmdline("rescue.action=restore"))


def test_latest_is_ambiguous_across_computers():
    with pytest.raises(UsageError, match="ambiguous.*office-pc, web01"):
        headless.pick_image(IMAGES, "latest", "test")
    assert headless.pick_image(IMAGES[:2], "latest", "test") == IMAGES[0]
    assert headless.pick_image(IMAGES, "77aa", "test") == IMAGES[2]
    with pytest.raises(ImageNotFoundError):
        headless.pick_image([], "latest", "test")


def test_never_guesses_or_takes_a_protected_target():
    svc = FixtureServices()
    answers = parse_job('action = "restore"\ntarget = "/dev/sdb"\nconfirm = true\n'
                        'image = "3f9a"')
    with pytest.raises(TargetRefusedError, match="image repository"):
        headless.run(answers, svc, out=open("/dev/null", "w"))  # noqa: SIM115
    answers.target = "/dev/sdz"
    with pytest.raises(UsageError, match="not found"):
        headless.run(answers, svc, out=open("/dev/null", "w"))  # noqa: SIM115
    assert not [c for c in svc.calls if c[0] == "run_restore"]


def test_target_with_data_needs_confirm():
    svc = FixtureServices()
    answers = parse_job('action = "restore"\ntarget = "/dev/sda"\nimage = "3f9a"')
    with pytest.raises(UsageError, match="confirm"):
        headless.run(answers, svc, out=open("/dev/null", "w"))  # noqa: SIM115
    assert not [c for c in svc.calls if c[0] == "run_restore"]


def rescue_wizard(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "rescue", "wizard", *args],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.root
def test_unattended_restore_from_a_job_file(real_backup, loops, tmp_path: Path):
    target = loops(256 * MiB, "target")
    job = tmp_path / "job.toml"
    job.write_text(f'action = "restore"\nlang = "de"\nrepo = "{real_backup.repo}"\n'
                   f'image = "latest"\ntarget = "{target}"\nafter = "poweroff"\n')
    proc = rescue_wizard("--job", str(job), "--include-loop", "--disk", target,
                         "--no-media-search", "--simulate-power", "--log",
                         str(tmp_path / "log"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Abbild: demo-pc" in proc.stdout  # German, as asked
    assert "Jedes wiederhergestellte Byte" in proc.stdout
    assert "(simulated) systemctl poweroff" in proc.stderr
    check_restored(target, tmp_path)


@pytest.mark.root
def test_unattended_restore_from_a_kernel_command_line(real_backup, loops, tmp_path: Path):
    target = loops(256 * MiB, "target")
    from loopdev import partition

    partition(target, "label: gpt\nsize=32MiB\n")  # old data: needs rescue.confirm=yes
    base = (f"quiet rescue.action=restore rescue.repo={real_backup.repo} "
            f"rescue.target={target} rescue.after=reboot")
    common = ("--include-loop", "--disk", target, "--no-media-search", "--simulate-power",
              "--log", str(tmp_path / "log"))
    refused = rescue_wizard("--cmdline", base, *common)
    assert refused.returncode == 2 and "rescue.confirm=yes" in refused.stderr
    proc = rescue_wizard("--cmdline", base + " rescue.confirm=yes", *common)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(simulated) systemctl reboot" in proc.stderr
    check_restored(target, tmp_path)


@pytest.mark.root
def test_unattended_restore_waits_for_the_web_server(real_backup, loops, tmp_path: Path):
    """rescue.repo=http://...: the network (here: the server) comes up after the live
    system started; the run waits for it, then restores from it."""
    import threading

    from httpserve import free_port, serve

    target = loops(256 * MiB, "target")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    stop = threading.Event()
    served: list[str] = []

    def late_server() -> None:
        stop.wait(4)  # not there when the search starts
        with serve(real_backup.repo, port=port) as (_, requests):
            while not stop.wait(0.2):
                pass
            served.extend(requests)

    server = threading.Thread(target=late_server)
    server.start()
    try:
        proc = rescue_wizard(
            "--cmdline", f"rescue.action=restore rescue.repo={url} rescue.target={target} "
            "rescue.after=poweroff", "--include-loop", "--disk", target, "--no-media-search",
            "--simulate-power", "--log", str(tmp_path / "log"))
    finally:
        stop.set()
        server.join()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Waiting for the network" in proc.stdout and "did not answer" in proc.stdout
    assert any(r.startswith("GET /chunks/") for r in served)
    check_restored(target, tmp_path)


def test_boot_command_line_without_action_only_presets_the_wizard():
    from rescue.commands.wizard import boot_answers

    assert boot_answers("quiet splash") == (None, None)
    unattended, presets = boot_answers("quiet rescue.lang=fr rescue.keymap=fr")
    assert unattended is None and presets is not None and presets.lang == "fr"
    unattended, presets = boot_answers("rescue.action=restore rescue.target=/dev/sda")
    assert unattended is not None and unattended.target == "/dev/sda" and presets is None


def test_the_answer_checks_speak_the_language_asked_for():
    from rescue import i18n

    svc = FixtureServices()
    try:
        with pytest.raises(UsageError, match="kein Zieldatenträger angegeben") as stop:
            headless.run(parse_cmdline("rescue.lang=de rescue.action=restore"), svc,
                         out=open("/dev/null", "w"))  # noqa: SIM115
        assert "rescue.target=/dev/disk/by-id/" in str(stop.value)
    finally:
        i18n.set_language("en")
    assert not any(c[0] == "prepare_restore" for c in svc.calls)
