"""Signed images: who made an image, not only whether its bytes are whole.

BLAKE3 names catch damage; anyone who can write to a repository can also rewrite chunks
and manifest together and recompute every hash. An Ed25519 signature over the exact bytes
of ``images/<id>/manifest.json`` (which names every chunk and index part by its BLAKE3)
says that the holder of a private key published this image. The signature lives beside
the manifest in ``images/<id>/signature.json`` (docs/FORMAT.md).

Key files (docs/SECURITY.md):

- ``NAME.key``: ``rescue-ed25519-private <base64 of the 32-byte private key> NAME``
  (mode 0600); an OpenSSL PEM Ed25519 private key (``openssl genpkey -algorithm ed25519``)
  is read too, named after its file;
- ``NAME.pub``: ``rescue-ed25519 <base64 of the 32-byte public key> NAME``.

A trust store is a set of public keys: ``*.pub`` in :data:`DEFAULT_TRUST_DIR` (the live
image's, ``make iso TRUSTED_KEYS=DIR``) plus files or folders the technician names.
The library is pyca/cryptography (docs/SECURITY.md says why)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from rescue.errors import ImageCorruptError, KeyFileError
from rescue.i18n import _

SIGNATURE_FILE = "signature.json"
SIGNATURE_MAGIC = "rescue-signature"
SIGNATURE_VERSION = 1
ALGORITHM = "ed25519"
PUBLIC_PREFIX = "rescue-ed25519"
PRIVATE_PREFIX = "rescue-ed25519-private"
#: what is signed: this context, then the manifest's bytes exactly as stored (the context
#: keeps a rescue key's signature from meaning anything to another program, and back)
CONTEXT = b"rescue image manifest v1\n"
MAX_SIGNATURE_FILE = 64 << 10
MAX_KEY_FILE = 64 << 10
#: the trust store of a machine (of the live image: baked in by ``make iso TRUSTED_KEYS=``)
DEFAULT_TRUST_DIR = "/etc/rescue/trusted-keys"
#: names another folder as the default trust store (tests; an installed rescue)
TRUST_DIR_ENV = "RESCUE_TRUSTED_KEYS_DIR"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
_FIELDS = {"magic", "format_version", "algorithm", "signed_file", "signer", "public_key",
           "fingerprint", "signature"}

TRUSTED = "trusted"  # a good signature by a key of the trust store
UNKNOWN = "unknown"  # a good signature by a key the trust store does not hold
BAD = "bad"  # a signature file that does not match the manifest (or is no signature)
UNSIGNED = "unsigned"  # no signature file


def valid_name(name: str) -> bool:
    """A key's name: 1-64 letters, digits and ``. _ @ + -`` (it names files and is shown
    on the console: no spaces, no control characters, no markup)."""
    return bool(_NAME.fullmatch(name))


def fingerprint(raw_public: bytes) -> str:
    """16 hex digits: the start of the SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


def _b64(text: object, length: int) -> bytes | None:
    """Strict base64 of exactly *length* bytes, or None."""
    if not isinstance(text, str) or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == length else None


@dataclass(frozen=True)
class PublicKey:
    name: str
    raw: bytes  # 32 bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    def line(self) -> str:
        """The ``.pub`` file's one line."""
        return f"{PUBLIC_PREFIX} {base64.b64encode(self.raw).decode()} {self.name}\n"

    def verifies(self, signature: bytes, manifest_raw: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature,
                                                                CONTEXT + manifest_raw)
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def parse(cls, text: str, where: str) -> PublicKey:
        """A ``.pub`` file's text; :class:`KeyFileError` naming *where* otherwise."""
        words = text.strip().split()
        raw = _b64(words[1], 32) if len(words) == 3 and words[0] == PUBLIC_PREFIX else None
        if raw is None or not valid_name(words[2]):
            raise KeyFileError(_(
                "{path} is not a rescue public key (one line: 'rescue-ed25519 <key> NAME', "
                "as 'rescue key create' writes it).").format(path=where))
        return cls(words[2], raw)


@dataclass(frozen=True)
class Signer:
    """A private key, ready to sign manifests (``rescue backup --sign``)."""

    name: str
    key: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.name, self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    def signature_file(self, manifest_raw: bytes) -> bytes:
        """The bytes of ``signature.json`` for a manifest stored as *manifest_raw*."""
        pub = self.public
        body = {
            "magic": SIGNATURE_MAGIC,
            "format_version": SIGNATURE_VERSION,
            "algorithm": ALGORITHM,
            "signed_file": "manifest.json",
            "signer": self.name,
            "public_key": base64.b64encode(pub.raw).decode(),
            "fingerprint": pub.fingerprint,
            "signature": base64.b64encode(self.key.sign(CONTEXT + manifest_raw)).decode(),
        }
        return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class SignatureFile:
    """A parsed ``signature.json``: the key it names and the signature bytes."""

    key: PublicKey  # with the name the file claims
    signature: bytes  # 64 bytes

    @classmethod
    def parse(cls, raw: bytes, where: str) -> SignatureFile:
        """Only :class:`ImageCorruptError` for anything that is not a signature file."""
        def bad(why: str) -> ImageCorruptError:
            return ImageCorruptError(_("The {where} is not a rescue signature: {why}.").format(
                where=where, why=why))

        if len(raw) > MAX_SIGNATURE_FILE:
            raise bad(_("it is far too large"))
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise bad(_("it is not valid JSON")) from None
        if not isinstance(body, dict) or body.get("magic") != SIGNATURE_MAGIC:
            raise bad(_("its magic is wrong"))
        version = body.get("format_version")
        if type(version) is not int or version != SIGNATURE_VERSION:
            # nothing of a hostile file is repeated in a sentence shown on the console
            raise bad(_("its format version is not one this rescue reads"))
        if set(body) != _FIELDS:
            raise bad(_("its fields are not those of format version 1"))
        if body["algorithm"] != ALGORITHM or body["signed_file"] != "manifest.json":
            raise bad(_("it is not an Ed25519 signature of manifest.json"))
        signer = body["signer"]
        if not isinstance(signer, str) or not valid_name(signer):
            raise bad(_("the signer's name is not a key name"))
        public = _b64(body["public_key"], 32)
        signature = _b64(body["signature"], 64)
        if public is None or signature is None:
            raise bad(_("the key or the signature is not base64 of the right length"))
        fp = body["fingerprint"]
        if not isinstance(fp, str) or not _FINGERPRINT.fullmatch(fp) or \
                fp != fingerprint(public):
            raise bad(_("the fingerprint does not belong to the key"))
        return cls(PublicKey(signer, public), signature)


class TrustStore:
    """The public keys whose signatures this system accepts. Empty: any image may be
    restored (a good signature is still shown, a bad one still refused)."""

    def __init__(self, keys: Iterable[PublicKey] = (), sources: Iterable[str] = ()) -> None:
        self.keys: dict[bytes, PublicKey] = {}
        for key in keys:
            self.keys.setdefault(key.raw, key)
        self.sources = tuple(sources)

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, raw: bytes) -> PublicKey | None:
        return self.keys.get(raw)

    @staticmethod
    def default_dir() -> str:
        return os.environ.get(TRUST_DIR_ENV) or DEFAULT_TRUST_DIR

    @classmethod
    def load(cls, extra: Sequence[str] = (), default_dir: str | None = None) -> TrustStore:
        """``*.pub`` of the default folder (absent: none), then each of *extra*: a
        ``.pub`` file or a folder of them. A named file or folder that is missing, and any
        key file that cannot be read, is refused (a store that silently lost a key could
        let an unsigned image through)."""
        folder = default_dir if default_dir is not None else cls.default_dir()
        keys: list[PublicKey] = []
        sources: list[str] = []
        if os.path.isdir(folder):
            keys += _keys_in(folder)
            sources.append(folder)
        elif os.path.lexists(folder):  # not "no store": a store that cannot be read
            raise KeyFileError(_("The trusted keys in {path} cannot be read: {reason}.")
                               .format(path=folder, reason=_("it is not a folder")))
        for path in extra:
            if os.path.isdir(path):
                keys += _keys_in(path)
            else:
                keys.append(load_public_key(path))
            sources.append(path)
        return cls(keys, sources)


def _keys_in(folder: str) -> list[PublicKey]:
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".pub"))
    except OSError as exc:
        raise KeyFileError(_("The trusted keys in {path} cannot be read: {reason}.").format(
            path=folder, reason=exc.strerror or exc)) from None
    return [load_public_key(os.path.join(folder, n)) for n in names]


def _read_key_file(path: str | os.PathLike[str]) -> bytes:
    """A key file's bytes: a regular file (a link to one is fine: the technician names
    it) of at most :data:`MAX_KEY_FILE` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise KeyFileError(_("The key file {path} cannot be read: {reason}.").format(
            path=path, reason=exc.strerror or exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_KEY_FILE:
            raise KeyFileError(_("{path} is not a key file (a special file or far too "
                                 "large).").format(path=path))
        return os.read(fd, MAX_KEY_FILE + 1)
    finally:
        os.close(fd)


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    raw = _read_key_file(path)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    return PublicKey.parse(text, str(path))


def load_signer(path: str | os.PathLike[str]) -> Signer:
    """The private key in *path* (``rescue key create``'s ``NAME.key``, or an OpenSSL PEM
    Ed25519 key named after its file); :class:`KeyFileError` with a sentence otherwise."""
    raw = _read_key_file(path)
    refused = KeyFileError(_(
        "{path} is not a rescue private key ('rescue key create NAME' makes one; the "
        ".pub file is the public half, not for signing).").format(path=path))
    if raw.lstrip().startswith(b"-----BEGIN"):
        name = Path(path).stem
        try:
            key = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError):
            raise refused from None
        if not isinstance(key, Ed25519PrivateKey) or not valid_name(name):
            raise refused
        return Signer(name, key)
    try:
        words = raw.decode("ascii").strip().split()
    except UnicodeDecodeError:
        raise refused from None
    seed = _b64(words[1], 32) if len(words) == 3 and words[0] == PRIVATE_PREFIX else None
    if seed is None or not valid_name(words[2]):
        raise refused
    return Signer(words[2], Ed25519PrivateKey.from_private_bytes(seed))


def create_key(name: str, folder: str | os.PathLike[str]) -> tuple[Path, Path, PublicKey]:
    """Make a new key pair: ``folder/NAME.key`` (0600, a new file: an existing one is
    never overwritten) and ``folder/NAME.pub``."""
    if not valid_name(name):
        raise KeyFileError(_(
            "'{name}' cannot name a key: use 1 to 64 letters, digits and . _ @ + - "
            "(starting with a letter or digit).").format(name=name))
    key_path = Path(folder) / f"{name}.key"
    pub_path = Path(folder) / f"{name}.pub"
    for path in (key_path, pub_path):
        if os.path.lexists(path):
            raise KeyFileError(_("{path} exists already; rescue never overwrites a key "
                                 "(choose another name or folder).").format(path=path))
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    signer = Signer(name, key)
    secret = f"{PRIVATE_PREFIX} {base64.b64encode(seed).decode()} {name}\n".encode()
    _write_new(key_path, secret, 0o600)
    try:
        _write_new(pub_path, signer.public.line().encode(), 0o644)
    except BaseException:
        key_path.unlink(missing_ok=True)
        raise
    return key_path, pub_path, signer.public


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode)
    except FileExistsError:
        raise KeyFileError(_("{path} exists already; rescue never overwrites a key "
                             "(choose another name or folder).").format(path=path)) from None
    except OSError as exc:
        raise KeyFileError(_("{path} cannot be written: {reason}.").format(
            path=path, reason=exc.strerror or exc)) from None
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class SignatureVerdict:
    """Who signed an image, as far as this system can tell."""

    status: str  # TRUSTED | UNKNOWN | BAD | UNSIGNED
    signer: str = ""  # trusted: the name in the trust store; unknown: the name claimed
    fingerprint: str = ""
    reason: str = ""  # BAD: why
    trusted_keys: int = 0  # keys in the trust store it was checked against

    def text(self) -> str:
        """One line for people: "Signed by NAME (fingerprint)", "Not signed", ..."""
        if self.status == TRUSTED:
            return _("Signed by {name} ({fingerprint})").format(
                name=self.signer, fingerprint=self.fingerprint)
        if self.status == UNKNOWN:
            return _("Signed by {name} ({fingerprint}), a key that is not trusted here"
                     ).format(name=self.signer, fingerprint=self.fingerprint)
        if self.status == BAD:
            return _("Bad signature: {reason}").format(reason=self.reason)
        return _("Not signed")

    def refusal(self, image_id: str) -> str | None:
        """Why a restore of the image is refused, or None. A bad signature always is;
        with a non-empty trust store, anything but a trusted signature is."""
        if self.status == BAD:
            return _("Image {id} is refused: its signature does not match it ({reason}); "
                     "it was changed after it was signed, nothing was written.").format(
                id=image_id, reason=self.reason)
        if self.trusted_keys and self.status == UNSIGNED:
            return _("Image {id} is refused: it is not signed, and this system restores "
                     "only images signed by one of its {count} trusted key(s); nothing was "
                     "written.").format(id=image_id, count=self.trusted_keys)
        if self.trusted_keys and self.status == UNKNOWN:
            return _("Image {id} is refused: it is signed by '{name}' ({fingerprint}), a "
                     "key this system does not trust; nothing was written.").format(
                id=image_id, name=self.signer, fingerprint=self.fingerprint)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "signer": self.signer,
                "fingerprint": self.fingerprint, "reason": self.reason,
                "trusted_keys": self.trusted_keys}


def check_signature(manifest_raw: bytes, signature_raw: bytes | None, trust: TrustStore,
                    where: str = "") -> SignatureVerdict:
    """The verdict on a manifest stored as *manifest_raw* and its ``signature.json``
    (None: there is none)."""
    count = len(trust)
    if signature_raw is None:
        return SignatureVerdict(UNSIGNED, trusted_keys=count)
    try:
        sig = SignatureFile.parse(signature_raw, where or _("signature file"))
    except ImageCorruptError as exc:
        return SignatureVerdict(BAD, reason=str(exc), trusted_keys=count)
    if not sig.key.verifies(sig.signature, manifest_raw):
        return SignatureVerdict(BAD, sig.key.name, sig.key.fingerprint,
                                _("the manifest is not what key {fingerprint} signed").format(
                                    fingerprint=sig.key.fingerprint), count)
    known = trust.find(sig.key.raw)
    if known is not None:
        return SignatureVerdict(TRUSTED, known.name, known.fingerprint, trusted_keys=count)
    return SignatureVerdict(UNKNOWN, sig.key.name, sig.key.fingerprint, trusted_keys=count)
