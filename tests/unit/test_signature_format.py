"""Signed images (issue 12, "Signed images"): key files, the signature file, the trust
store and the verdicts, on a real folder repository and a real web server; the parser
of signature files fed hostile bytes."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from httpserve import serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rescue import services
from rescue.errors import ImageCorruptError, KeyFileError, RescueError, SignatureRefusedError
from rescue.image import chunks as codec
from rescue.image import signature as sig
from rescue.image.manifest import ChunkedData, Disk, Manifest, Partition
from rescue.image.repository import Repository
from rescue.repo import open_repository

CHUNK = 1 << 20


def _image(repo: Repository, n: int, signer: sig.Signer | None) -> Manifest:
    block = os.urandom(CHUNK)
    digest = codec.chunk_hash(block)
    repo.put_chunk(digest, codec.compress(block))
    data = ChunkedData(length=CHUNK, chunk_size=CHUNK, chunks=[(0, digest)], zero=[])
    part = Partition(number=1, start=2048, size=8192,
                     type="0FC63DAF-8483-4772-8E79-3D69D8E47DE4", uuid="", filesystem="ext4",
                     fs_uuid="u", fs_label="root", method="used-blocks",
                     used_bytes=CHUNK, data=data)
    disk = Disk(size_bytes=64 * CHUNK, logical_sector_size=512, physical_sector_size=512,
                table="gpt", id="G", first_lba=34, last_lba=131038, partitions=[part])
    m = Manifest(id=f"2026010{n}T000000Z-abcde{n}", name=f"image {n}",
                 created_utc=f"2026-01-0{n}T00:00:00Z",
                 created_local=f"2026-01-0{n}T01:00:00+01:00", timezone="Europe/Berlin",
                 computer="pc", os_name="Debian", os_id="debian", os_version="12",
                 firmware="uefi", hardware={}, chunk_size=CHUNK, compression="zstd",
                 disks=[disk])
    repo.write_manifest(m, signer=signer)
    return m


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    folder.mkdir()
    sig.create_key("it-dept", folder)
    sig.create_key("stranger", folder)
    return folder


@pytest.fixture(autouse=True)
def no_default_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This machine's own /etc/rescue/trusted-keys plays no part."""
    empty = tmp_path / "default-trust"
    empty.mkdir()
    monkeypatch.setenv(sig.TRUST_DIR_ENV, str(empty))
    return empty


# -- keys -----------------------------------------------------------------------------

def test_key_create_writes_a_secret_private_key_and_refuses_to_overwrite(tmp_path: Path):
    key, pub, public = sig.create_key("tech", tmp_path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    words = pub.read_text().split()
    assert words[0] == "rescue-ed25519" and words[2] == "tech"
    assert base64.b64decode(words[1]) == public.raw and len(public.fingerprint) == 16
    assert sig.load_signer(key).public == public == sig.load_public_key(pub)
    before = key.read_bytes()
    with pytest.raises(KeyFileError, match="exists already"):
        sig.create_key("tech", tmp_path)
    assert key.read_bytes() == before
    # the public half alone in the way: nothing is made either
    (tmp_path / "other.pub").write_text("x")
    with pytest.raises(KeyFileError, match="exists already"):
        sig.create_key("other", tmp_path)
    assert not (tmp_path / "other.key").exists()
    for bad in ("", "../x", "a b", "x" * 65, "-x", "[b]red"):
        with pytest.raises(KeyFileError, match="cannot name a key"):
            sig.create_key(bad, tmp_path)


def test_key_create_never_writes_through_a_link(tmp_path: Path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "k.key").symlink_to(victim)
    with pytest.raises(KeyFileError):
        sig.create_key("k", tmp_path)
    assert victim.read_text() == "keep"


def test_unusable_key_files_are_refused_with_a_sentence(tmp_path: Path, keys: Path):
    cases = {
        "empty": b"",
        "garbage": os.urandom(200),
        "short": b"rescue-ed25519-private AAAA it\n",
        "noname": b"rescue-ed25519-private " + base64.b64encode(bytes(32)) + b"\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(KeyFileError):
            sig.load_signer(tmp_path / name)
    with pytest.raises(KeyFileError, match="not a rescue private key"):
        sig.load_signer(keys / "it-dept.pub")  # the public half cannot sign
    with pytest.raises(KeyFileError, match="cannot be read"):
        sig.load_signer(tmp_path / "absent.key")
    with pytest.raises(KeyFileError, match="not a key file"):
        sig.load_signer("/dev/zero")
    with pytest.raises(KeyFileError, match="not a key file"):
        sig.load_signer(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(KeyFileError, match="not a key file"):  # and does not hang
        sig.load_signer(tmp_path / "fifo")


def test_trust_store_default_folder_and_extra_keys(keys: Path, no_default_trust: Path):
    assert len(services.trust_store()) == 0
    (no_default_trust / "it-dept.pub").write_bytes((keys / "it-dept.pub").read_bytes())
    (no_default_trust / "README").write_text("not a key, not read")
    assert len(services.trust_store()) == 1
    store = services.trust_store([str(keys / "stranger.pub")])
    assert len(store) == 2 and no_default_trust.as_posix() in store.sources
    assert len(services.trust_store([str(keys)])) == 2  # a folder: its *.pub, once each
    with pytest.raises(KeyFileError, match="cannot be read"):
        services.trust_store([str(keys / "absent.pub")])
    # a default store that is no folder is an error too, not an empty store
    with pytest.raises(KeyFileError, match="not a folder"):
        sig.TrustStore.load(default_dir=str(keys / "it-dept.pub"))
    # a damaged trusted key is an error, not a smaller store that might let images in
    (no_default_trust / "broken.pub").write_text("rescue-ed25519 nope broken\n")
    with pytest.raises(KeyFileError, match="broken.pub is not a rescue public key"):
        services.trust_store()


# -- verdicts on a real repository ------------------------------------------------------

def test_verdicts_trusted_unknown_unsigned_and_forged(tmp_path: Path, keys: Path):
    repo = Repository.create(tmp_path / "repo")
    mine = sig.load_signer(keys / "it-dept.key")
    signed = _image(repo, 1, mine)
    unsigned = _image(repo, 2, None)
    assert (repo.root / "images" / signed.id / "signature.json").is_file()
    assert not (repo.root / "images" / unsigned.id / "signature.json").exists()
    trust = sig.TrustStore([sig.load_public_key(keys / "it-dept.pub")])
    other = sig.TrustStore([sig.load_public_key(keys / "stranger.pub")])

    m, v = repo.load_signed(signed.id, trust)
    assert m == signed and v.status == sig.TRUSTED and v.refusal(m.id) is None
    assert v.text() == f"Signed by it-dept ({mine.public.fingerprint})"
    v = repo.signature_verdict(signed.id, other)
    assert v.status == sig.UNKNOWN and "not trusted" in v.text()
    assert "does not trust" in (v.refusal(signed.id) or "")
    assert repo.signature_verdict(signed.id, sig.TrustStore()).refusal(signed.id) is None
    v = repo.signature_verdict(unsigned.id, trust)
    assert v.status == sig.UNSIGNED and v.text() == "Not signed"
    assert "not signed" in (v.refusal(unsigned.id) or "")
    assert repo.signature_verdict(unsigned.id, sig.TrustStore()).refusal(unsigned.id) is None

    # the forger rewrites a field and recomputes the manifest's own hash
    path = repo.root / "images" / signed.id / "manifest.json"
    forged = Manifest.from_json(path.read_bytes())
    forged.name = "forged"
    path.write_bytes(forged.to_json())
    m, v = repo.load_signed(signed.id, trust)
    assert m.name == "forged"  # a valid manifest by its hash...
    assert v.status == sig.BAD and "does not match" in (v.refusal(m.id) or "")
    # ...refused for restore even by a machine that trusts nobody
    assert repo.signature_verdict(signed.id, sig.TrustStore()).refusal(m.id)


def test_prepare_restore_refuses_before_looking_at_the_target(tmp_path: Path, keys: Path):
    repo = Repository.create(tmp_path / "repo")
    unsigned = _image(repo, 2, None)
    signed = _image(repo, 3, sig.load_signer(keys / "stranger.key"))
    trust = services.trust_store([str(keys / "it-dept.pub")])
    for image in (unsigned, signed):
        with pytest.raises(SignatureRefusedError) as refused:
            services.prepare_restore(repo, image.id, "/dev/does-not-exist", trust=trust)
        assert refused.value.exit_code == 12 and image.id in str(refused.value)


def test_a_linked_or_special_signature_file_is_a_bad_signature(tmp_path: Path, keys: Path):
    repo = Repository.create(tmp_path / "repo")
    m = _image(repo, 1, sig.load_signer(keys / "it-dept.key"))
    path = repo.root / "images" / m.id / "signature.json"
    good = path.read_bytes()
    (tmp_path / "elsewhere.json").write_bytes(good)
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    v = repo.signature_verdict(m.id, sig.TrustStore())
    assert v.status == sig.BAD and "link" in v.reason
    path.unlink()
    os.mkfifo(path)
    assert repo.signature_verdict(m.id, sig.TrustStore()).status == sig.BAD


def test_signatures_over_a_web_server(tmp_path: Path, keys: Path):
    repo = Repository.create(tmp_path / "repo")
    signed = _image(repo, 1, sig.load_signer(keys / "it-dept.key"))
    unsigned = _image(repo, 2, None)
    trust = sig.TrustStore([sig.load_public_key(keys / "it-dept.pub")])
    with serve(repo.root) as (url, _requests), open_repository(url) as remote:
        assert remote.signature_bytes(signed.id) == (
            repo.root / "images" / signed.id / "signature.json").read_bytes()
        assert remote.signature_bytes(unsigned.id) is None
        assert remote.load_signed(signed.id, trust)[1].status == sig.TRUSTED
        assert remote.signature_verdict(unsigned.id, trust).status == sig.UNSIGNED
        (repo.root / "images" / signed.id / "signature.json").write_bytes(b"x" * (70 << 10))
        assert remote.signature_verdict(signed.id, trust).status == sig.BAD  # too large


# -- hostile signature files --------------------------------------------------------------

def _good_body(tmp_path: Path) -> tuple[bytes, dict]:
    key, _pub, _public = sig.create_key("k", tmp_path)
    manifest = b'{"magic": "rescue-image"}\n'
    return manifest, json.loads(sig.load_signer(key).signature_file(manifest))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=600))
def test_garbage_is_only_ever_a_bad_signature(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(ImageCorruptError):
        sig.SignatureFile.parse(raw, "signature")
    v = sig.check_signature(b"{}", raw, sig.TrustStore())
    assert v.status == sig.BAD and v.refusal("x")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=90),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_fields_are_only_ever_a_bad_signature(tmp_path: Path, data) -> None:
    folder = tmp_path / f"k{os.urandom(4).hex()}"
    folder.mkdir()
    manifest, body = _good_body(folder)
    assert sig.SignatureFile.parse(json.dumps(body).encode(), "s").key.name == "k"
    field = data.draw(st.sampled_from(sorted(body) + ["extra"]))
    mutation = data.draw(st.sampled_from(["value", "drop", "b64"]))
    if mutation == "drop":
        body.pop(field, None)
    elif mutation == "b64":  # wrong lengths, bad alphabet, padding
        body[field] = data.draw(st.sampled_from([
            base64.b64encode(os.urandom(data.draw(st.integers(0, 80)))).decode(),
            "!!!!", "AAAA=", "A" * 43, "A" * 86 + "==", "\u00e9" * 44]))
    else:
        body[field] = data.draw(JSON_VALUES)
    raw = json.dumps(body).encode()
    try:
        parsed = sig.SignatureFile.parse(raw, "s")
    except ImageCorruptError:
        parsed = None
    v = sig.check_signature(manifest, raw, sig.TrustStore())
    assert v.status in (sig.BAD, sig.UNKNOWN)
    if v.status == sig.UNKNOWN:  # only a field that does not weaken the signature changed
        assert parsed is not None and parsed.key.verifies(parsed.signature, manifest)
    assert all(ord(c) >= 32 for c in v.text())


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_hostile_public_key_lines_are_refused_with_a_sentence(text: str) -> None:
    try:
        key = sig.PublicKey.parse(text, "x.pub")
    except KeyFileError:
        return
    assert len(key.raw) == 32 and sig.valid_name(key.name)


def test_errors_are_rescue_errors() -> None:
    assert issubclass(SignatureRefusedError, RescueError)
    assert SignatureRefusedError.exit_code == 12
