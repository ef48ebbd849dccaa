"""`make iso TRUSTED_KEYS=DIR`: image-build/trusted-keys.sh copies DIR/*.pub into the live
image's trust store (/etc/rescue/trusted-keys/), and refuses anything that is not a
public key before copying any (the ISO itself is not built here)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from rescue.image.signature import TrustStore, create_key

SCRIPT = Path(__file__).resolve().parents[2] / "image-build" / "trusted-keys.sh"


def _run(src: Path, includes: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), str(src), str(includes)],
                          capture_output=True, text=True)


def test_public_keys_are_copied_into_the_image_trust_store(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    _k1, _p1, one = create_key("it-dept", keys)
    _k2, _p2, two = create_key("branch-office", keys)
    includes = tmp_path / "includes.chroot"
    proc = _run(keys, includes)
    assert proc.returncode == 0, proc.stderr
    store = includes / "etc" / "rescue" / "trusted-keys"
    assert sorted(p.name for p in store.iterdir()) == ["branch-office.pub", "it-dept.pub"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in store.iterdir())
    # the private keys stay behind; the fingerprints printed are rescue's
    assert not list(store.glob("*.key"))
    assert f"it-dept: {one.fingerprint}" in proc.stdout
    assert f"branch-office: {two.fingerprint}" in proc.stdout
    loaded = TrustStore.load(default_dir=str(store))
    assert len(loaded) == 2 and loaded.find(one.raw) == one


@pytest.mark.parametrize("content", [
    "",
    "rescue-ed25519-private AAAA it\n",
    "rescue-ed25519 AAAA it\n",
    "rescue-ed25519 " + "A" * 43 + "= two words\n",
    "rescue-ed25519 " + "A" * 43 + "= it\nsecond line\n",
])
def test_anything_but_public_keys_stops_the_build(tmp_path: Path, content: str) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    create_key("good", keys)
    (keys / "bad.pub").write_text(content)
    includes = tmp_path / "includes.chroot"
    proc = _run(keys, includes)
    assert proc.returncode != 0 and "bad.pub is not a rescue public key" in proc.stderr
    assert not includes.exists()  # nothing copied, not even the good key


def test_a_missing_or_empty_folder_stops_the_build(tmp_path: Path) -> None:
    assert "is not a folder" in _run(tmp_path / "absent", tmp_path / "inc").stderr
    (tmp_path / "empty").mkdir()
    proc = _run(tmp_path / "empty", tmp_path / "inc")
    assert proc.returncode != 0 and "holds no public key" in proc.stderr
