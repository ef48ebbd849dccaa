"""Signed images (issue 12, "Signed images: authenticity, not only integrity"), on real
disks: BLAKE3 names catch damage, not a forger who rewrites the manifest and recomputes
its hash. ``rescue backup --sign`` signs the manifest's bytes; list, inspect, verify,
restore and the wizard say who signed; with trusted keys present (``--trust``,
``/etc/rescue/trusted-keys``) only images they signed are restored, and a signature
that does not match is always refused: exit code 12, one sentence, before the first
write."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from httpserve import serve
from loopdev import MiB, loop_device
from realdisk import rescue_cli

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "wizard"))

from wizard_disks import build_source, check_restored  # noqa: E402
from wizard_helpers import press_button, run_async, to_target, wait_for  # noqa: E402

from rescue import i18n  # noqa: E402
from rescue.image.manifest import Manifest  # noqa: E402
from rescue.image.signature import TRUST_DIR_ENV  # noqa: E402
from rescue.runner import DryRunRunner  # noqa: E402
from rescue.wizard.app import RescueApp  # noqa: E402
from rescue.wizard.backend import EngineServices  # noqa: E402
from rescue.wizard.model import WizardState  # noqa: E402

pytestmark = pytest.mark.root
TARGET = 256 * MiB


@dataclass
class Signed:
    repo: Path
    keys: Path
    unsigned: str  # the older image, not signed
    signed: str  # the newest image, signed by it-dept
    fingerprint: str


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    tmp = tmp_path_factory.mktemp("signed")
    keys = tmp / "keys"
    made = rescue_cli("key", "create", "it-dept", "--dir", str(keys), check=True)
    rescue_cli("key", "create", "stranger", "--dir", str(keys), check=True)
    fingerprint = made.stdout.split("Fingerprint")[1].split()[0]
    repo = tmp / "repo"
    with loop_device(tmp / "source.img", 160 * MiB) as dev:
        build_source(dev, tmp)
        rescue_cli("backup", "--disk", dev, "--repo", str(repo), "--name", "plain",
                   check=True)
        [unsigned] = _ids(repo)
        out = rescue_cli("backup", "--disk", dev, "--repo", str(repo), "--name", "signed",
                         "--sign", str(keys / "it-dept.key"), check=True).stdout
        assert f"Signed with key it-dept ({fingerprint})" in out
        assert f"signed by it-dept ({fingerprint})" in out
    signed = next(i for i in _ids(repo) if i != unsigned)
    assert signed > unsigned
    yield Signed(repo, keys, unsigned, signed, fingerprint)


def _ids(repo: Path) -> list[str]:
    return [i["id"] for i in json.loads(
        rescue_cli("list", "--repo", str(repo), "--json", check=True).stdout)]


@pytest.fixture(autouse=True)
def trust_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The machine's default trust store (/etc/rescue/trusted-keys), empty to start."""
    folder = tmp_path / "trusted-keys"
    folder.mkdir()
    monkeypatch.setenv(TRUST_DIR_ENV, str(folder))
    return folder


@pytest.fixture
def target(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A loop disk whose first MiB holds random bytes (so a write shows)."""
    with loop_device(tmp_path / "target.img", TARGET) as dev:
        first = os.urandom(MiB)
        with open(dev, "r+b") as f:
            f.write(first)
        yield dev, first


def _first_mib(dev: str) -> bytes:
    with open(dev, "rb") as f:
        return f.read(MiB)


def _forge(repo: Path, image_id: str) -> None:
    """What a forger with write access does: change a field and recompute the manifest's
    own BLAKE3 (it is valid by its hash), leaving the signature as it was."""
    path = repo / "images" / image_id / "manifest.json"
    m = Manifest.from_json(path.read_bytes())
    m.name = "forged"
    m.computer = "evil-pc"
    path.write_bytes(m.to_json())


def _copy(images: Signed, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(images.repo, repo, symlinks=True)
    return repo


def _restore(repo: str, image: str, dev: str, *extra: str) -> subprocess.CompletedProcess:
    return rescue_cli("restore", "--repo", repo, "--image", image, "--disk", dev, "--yes",
                      "--firmware", "uefi", *extra)


def test_key_create_from_the_command_line(tmp_path: Path) -> None:
    out = rescue_cli("key", "create", "tech", "--dir", str(tmp_path), check=True).stdout
    key = tmp_path / "tech.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "Fingerprint" in out
    before = key.read_bytes()
    again = rescue_cli("key", "create", "tech", "--dir", str(tmp_path))
    assert again.returncode == 2 and "exists already" in again.stderr
    assert key.read_bytes() == before
    shown = rescue_cli("key", "show", str(tmp_path / "tech.pub"), check=True).stdout
    assert out.split("Fingerprint")[1].split()[0] in shown


def test_a_bad_signing_key_is_refused_before_the_disk_is_read(tmp_path: Path,
                                                               images: Signed) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    repo = tmp_path / "new-repo"
    for key in (bad, images.keys / "it-dept.pub", tmp_path / "absent.key"):
        proc = rescue_cli("backup", "--disk", "/dev/does-not-exist", "--repo", str(repo),
                          "--sign", str(key))
        assert proc.returncode == 2, proc.stderr
        assert str(key) in proc.stderr and proc.stderr.count("\n") == 1
        assert not repo.exists()  # not even the repository was made


def test_list_inspect_and_verify_show_who_signed(images: Signed) -> None:
    pub = str(images.keys / "it-dept.pub")
    signed_by = f"Signed by it-dept ({images.fingerprint})"
    listed = json.loads(rescue_cli("list", "--repo", str(images.repo), "--json",
                                   "--trust", pub, check=True).stdout)
    verdicts = {i["id"]: i["signature"] for i in listed}
    assert verdicts[images.signed]["status"] == "trusted"
    assert verdicts[images.signed]["fingerprint"] == images.fingerprint
    assert verdicts[images.unsigned]["status"] == "unsigned"
    text = rescue_cli("list", "--repo", str(images.repo), "--trust", pub, check=True).stdout
    assert signed_by in text and "Not signed" in text
    # without trusting it: still shown, as a key not trusted here
    text = rescue_cli("list", "--repo", str(images.repo), check=True).stdout
    assert f"{signed_by}, a key that is not trusted here" in text

    # several locations (and attached disks): the catalog's listing says it too
    listed = json.loads(rescue_cli("list", "--repo", str(images.repo), "--repo",
                                   str(images.repo), "--json", "--trust", pub,
                                   check=True).stdout)
    assert {i["id"]: i["signature"]["status"] for i in listed
            if i["repo"] == str(images.repo)} == {images.signed: "trusted",
                                                  images.unsigned: "unsigned"}
    text = rescue_cli("list", "--repo", str(images.repo), "--repo", str(images.repo),
                      "--trust", pub, check=True).stdout
    assert f"    {signed_by}\n" in text and "    Not signed\n" in text

    shown = rescue_cli("inspect", "--repo", str(images.repo), "--trust", pub,
                       check=True).stdout
    assert f"Signature  {signed_by}" in shown
    body = json.loads(rescue_cli("inspect", "--repo", str(images.repo), "--json", "--trust",
                                 pub, check=True).stdout)
    assert body["signature"]["status"] == "trusted" and body["id"] == images.signed
    body = json.loads(rescue_cli("inspect", "--repo", str(images.repo), "--json", "--image",
                                 images.unsigned, check=True).stdout)
    assert body["signature"]["status"] == "unsigned"

    verified = rescue_cli("verify", "--repo", str(images.repo), "--trust", pub,
                          check=True).stdout
    assert "is intact" in verified and signed_by in verified


def test_a_forged_manifest_is_refused_before_anything_is_written(
        images: Signed, tmp_path: Path, target: tuple[str, bytes]) -> None:
    repo = _copy(images, tmp_path)
    _forge(repo, images.signed)
    dev, first = target
    # a valid manifest by its own hash: listed and inspected, flagged
    assert "Bad signature" in rescue_cli("list", "--repo", str(repo), check=True).stdout
    # no trust store at all: a signature that does not match is still refused
    proc = _restore(str(repo), images.signed, dev)
    assert proc.returncode == 12, proc.stdout + proc.stderr
    assert "signature does not match" in proc.stderr and proc.stderr.count("\n") == 1
    assert _first_mib(dev) == first
    proc = _restore(str(repo), images.signed, dev, "--trust",
                    str(images.keys / "it-dept.pub"), "--dry-run")
    assert proc.returncode == 12 and "nothing was written" in proc.stderr
    proc = rescue_cli("verify", "--repo", str(repo), "--image", images.signed)
    assert proc.returncode == 12 and "Bad signature" in proc.stdout, proc.stdout
    # the forger also swaps in a signature of their own key: not trusted, refused
    own = tmp_path / "own"
    rescue_cli("key", "create", "it-dept", "--dir", str(own), check=True)
    _resign(repo, images.signed, own / "it-dept.key")
    proc = _restore(str(repo), images.signed, dev, "--trust", str(images.keys / "it-dept.pub"))
    assert proc.returncode == 12 and "does not trust" in proc.stderr, proc.stderr
    assert _first_mib(dev) == first


def _resign(repo: Path, image_id: str, key: Path) -> None:
    from rescue.image.signature import load_signer

    folder = repo / "images" / image_id
    (folder / "signature.json").write_bytes(
        load_signer(key).signature_file((folder / "manifest.json").read_bytes()))


def test_an_unsigned_image_is_refused_when_keys_are_trusted(
        images: Signed, trust_dir: Path, target: tuple[str, bytes]) -> None:
    dev, first = target
    shutil.copy(images.keys / "it-dept.pub", trust_dir)  # /etc/rescue/trusted-keys
    proc = _restore(str(images.repo), images.unsigned, dev)
    assert proc.returncode == 12, proc.stdout + proc.stderr
    assert "is not signed" in proc.stderr and "1 trusted key" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert _first_mib(dev) == first


def test_an_image_signed_by_an_unknown_key_is_refused(
        images: Signed, target: tuple[str, bytes]) -> None:
    dev, first = target
    proc = _restore(str(images.repo), images.signed, dev, "--trust",
                    str(images.keys / "stranger.pub"))
    assert proc.returncode == 12, proc.stdout + proc.stderr
    assert f"signed by 'it-dept' ({images.fingerprint}), a key this system does not " \
           "trust" in proc.stderr
    assert _first_mib(dev) == first


def test_a_trusted_image_is_restored(images: Signed, trust_dir: Path, tmp_path: Path,
                                     target: tuple[str, bytes]) -> None:
    dev, _first = target
    shutil.copy(images.keys / "it-dept.pub", trust_dir)
    # (the sample system has an ESP without a boot loader: that fix-up has nothing to do)
    proc = _restore(str(images.repo), images.signed, dev, "--skip-fixup",
                    "uefi-fallback-loader")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Signed by it-dept ({images.fingerprint})" in proc.stdout
    check_restored(dev, tmp_path)


def test_signatures_over_a_web_server(images: Signed, tmp_path: Path,
                                      target: tuple[str, bytes]) -> None:
    dev, first = target
    pub = str(images.keys / "it-dept.pub")
    with serve(images.repo, listing=False) as (url, requests):
        listed = json.loads(rescue_cli("list", "--repo", url, "--json", "--trust", pub,
                                       check=True).stdout)
        assert {i["id"]: i["signature"]["status"] for i in listed} == {
            images.signed: "trusted", images.unsigned: "unsigned"}
        proc = _restore(url, images.signed, dev, "--trust", pub, "--dry-run")
        assert proc.returncode == 0 and "Signed by it-dept" in proc.stdout, proc.stderr
        proc = _restore(url, images.unsigned, dev, "--trust", pub)
        assert proc.returncode == 12 and "is not signed" in proc.stderr
    assert any(r.endswith(f"/images/{images.signed}/signature.json") for r in requests)
    repo = _copy(images, tmp_path)
    _forge(repo, images.signed)
    with serve(repo) as (url, _requests):
        proc = _restore(url, images.signed, dev)
        assert proc.returncode == 12 and "signature does not match" in proc.stderr
    assert _first_mib(dev) == first


def _wizard(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "rescue", "wizard", *args],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_unattended_restores_accept_only_signed_images(
        images: Signed, trust_dir: Path, tmp_path: Path, target: tuple[str, bytes]) -> None:
    dev, first = target
    shutil.copy(images.keys / "it-dept.pub", trust_dir)
    job = tmp_path / "job.toml"
    common = ["--include-loop", "--disk", dev, "--no-media-search", "--simulate-power",
              "--log", str(tmp_path / "log")]
    job.write_text(f'action = "restore"\nrepo = "{images.repo}"\n'
                   f'image = "{images.unsigned}"\ntarget = "{dev}"\nconfirm = true\n')
    proc = _wizard("--job", str(job), *common)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "is not signed" in proc.stdout + proc.stderr
    assert _first_mib(dev) == first
    job.write_text(f'action = "restore"\nrepo = "{images.repo}"\nimage = "latest"\n'
                   f'target = "{dev}"\nconfirm = true\n')
    proc = _wizard("--job", str(job), *common)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_restored(dev, tmp_path)


def _summary(repo: Path, dev: str, tmp_path: Path, trusted: list[str]) -> dict[str, str]:
    services = EngineServices(include_loop=True, disk_filter=lambda p: p == dev,
                              scan_media=False, power_runner=DryRunRunner(),
                              log_file=tmp_path / "wizard.log", trusted_keys=trusted)
    app = RescueApp(services, WizardState(locations=[str(repo)]), restart_countdown=0)
    found: dict[str, str] = {}

    async def walk() -> None:
        async with app.run_test(size=(100, 40)) as pilot:
            await to_target(pilot)
            await press_button(pilot, "#next")
            await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "SummaryScreen")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.prepared is not None or screen.error,
                           what="plan")
            found["summary"] = str(screen.query_one("#summary").render())
            found["status"] = str(screen.query_one("#status").render())
            found["error"] = screen.error
            found["finish"] = str(screen.query_one("#finish").disabled)

    i18n.set_language("en")
    try:
        run_async(walk())
    finally:
        services.close()
    return found


def test_the_wizard_summary_says_who_signed(images: Signed, tmp_path: Path,
                                            target: tuple[str, bytes]) -> None:
    dev, first = target
    pub = str(images.keys / "it-dept.pub")
    seen = _summary(images.repo, dev, tmp_path, [pub])
    assert f"Signature: Signed by it-dept ({images.fingerprint})" in seen["summary"]
    assert not seen["error"] and seen["finish"] == "False"
    # an unknown key: shown, and (keys being trusted) refused
    seen = _summary(images.repo, dev, tmp_path, [str(images.keys / "stranger.pub")])
    assert "a key that is not trusted here" in seen["summary"]
    assert "does not trust" in seen["error"] and seen["finish"] == "True"
    # the newest image not signed: "Not signed", refused with trusted keys
    repo = _copy(images, tmp_path)
    (repo / "images" / images.signed / "signature.json").unlink()
    seen = _summary(repo, dev, tmp_path, [])
    assert "Signature: Not signed" in seen["summary"] and not seen["error"]
    seen = _summary(repo, dev, tmp_path, [pub])
    assert "is not signed" in seen["error"] and seen["finish"] == "True"
    assert _first_mib(dev) == first
