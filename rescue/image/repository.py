"""A repository: a directory holding many images and one shared chunk store.

Layout (docs/FORMAT.md)::

    rescue-repository.json          magic + format version
    chunks/<2 hex>/<blake3>.zst     one zstd frame per chunk, shared by all images
    images/<id>/manifest.json       one image; it exists only once the image is complete
    seal.json                       which images were complete when a writer last left
    tmp/                            partial files; never read, cleaned on open for write

Every file stays far below 4 GiB (chunks are a few MiB), so any filesystem a USB stick
carries works (FAT32, exFAT, ext4, NTFS), as do NFS/SMB shares.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import stat
import threading
import time
import uuid
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import zstandard

from rescue.errors import (
    ImageCorruptError,
    ImageNotFoundError,
    RepositoryError,
    RepositoryLockedError,
    SignatureRefusedError,
    UnsupportedFormatError,
    from_oserror,
)
from rescue.i18n import _
from rescue.image import chunks as codec
from rescue.image.index import IndexPart
from rescue.image.manifest import Manifest
from rescue.image.seal import (
    CHUNK_FOLDERS,
    MAX_SEAL_FILE,
    OPEN,
    SEAL_FILE,
    SEALED,
    FolderStamps,
    Seal,
    parse_seal,
)
from rescue.image.signature import (
    BAD,
    MAX_SIGNATURE_FILE,
    SIGNATURE_FILE,
    SignatureVerdict,
    Signer,
    TrustStore,
)
from rescue.image.signature import check_signature as _check_signature
from rescue.image.validate import check_manifest

REPO_MAGIC = "rescue-repository"
REPO_FORMAT_VERSION = 1
REPO_FILE = "rescue-repository.json"
INDEX_FILE = "images/index.json"
IMAGE_ID_PATTERN = r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}"
_ID_RE = re.compile(f"^{IMAGE_ID_PATTERN}$")
_CHUNK_FILE = re.compile(r"[0-9a-f]{64}\.zst")
_TMP_FILE = re.compile(r"[\w.-]+\.[0-9]+\.[0-9a-f]{8}")  # what _atomic_write/put_chunk make
MAX_CHUNK_FILE = 80 << 20  # a zstd frame of a 64 MiB chunk, with room
MAX_MANIFEST_FILE = 1 << 30  # a format-1 manifest lists every chunk: ~110 MB per TB
MAX_CHUNK_RAW = 64 << 20  # the largest chunk (or index part) a frame may declare
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_BLOCK = 128 << 10  # the largest block of a zstd frame


@dataclass(frozen=True)
class ImageSummary:
    id: str
    name: str
    created_utc: str
    created_local: str
    computer: str
    os_name: str
    firmware: str
    data_bytes: int
    stored_bytes: int  # bytes of chunk files this image added when it was made
    disks: int

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "created": self.created_utc,
            "created_utc": self.created_utc,
            "created_local": self.created_local,
            "computer": self.computer,
            "os": self.os_name,
            "firmware": self.firmware,
            "data_bytes": self.data_bytes,
            "stored_bytes": self.stored_bytes,
            "disks": self.disks,
        }


def new_image_id(now: datetime | None = None, existing: Iterable[str] = ()) -> str:
    """``YYYYMMDDTHHMMSSZ-xxxxxx``: ids sort by age, so "latest" is the greatest. Two
    backups in the same second (*existing*: the ids already in the repository) get
    suffixes that sort in the order they were made."""
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ") + "-"
    same = [i[len(stamp):] for i in existing if i.startswith(stamp)]
    if same:
        last = int(max(same), 16)
        if last < 0xFFFFFF:
            return stamp + f"{last + 1:06x}"
    return stamp + uuid.uuid4().hex[:6]


def check_marker(raw: bytes, where: str) -> None:
    """Refuse anything but a rescue repository marker this version can read."""
    try:
        info = json.loads(raw)
    except ValueError as exc:
        raise RepositoryError(
            _("{where} is unreadable or damaged: {error}.").format(where=where, error=exc)
        ) from exc
    if not isinstance(info, dict) or info.get("magic") != REPO_MAGIC:
        raise RepositoryError(
            _("{where} is not a rescue repository (wrong magic).").format(where=where))
    if int(info.get("format_version", 0)) > REPO_FORMAT_VERSION:
        raise UnsupportedFormatError(
            _("The repository {where} uses format version {version}; this rescue reads up "
              "to {supported}. Use a newer rescue.").format(
                where=where, version=info.get("format_version"), supported=REPO_FORMAT_VERSION)
        )


class ChunkInventory:
    """The chunk files of a repository, read one chunk folder at a time (when a digest
    of that folder is first asked about) and kept as sorted 64-bit prefixes: 8 bytes per
    chunk file, so a repository of 14 million chunks takes about 110 MB. A prefix match
    counts as present; the full BLAKE3 is checked when the chunk is read."""

    def __init__(self, list_folder: Callable[[str], Iterable[str]]) -> None:
        self._list = list_folder
        self._folders: dict[str, array[int]] = {}

    def _compact(self, folder: str) -> array[int]:
        return array("Q", sorted(int(name[:16], 16) for name in self._list(folder)
                                 if _CHUNK_FILE.fullmatch(name)))

    def preload(self, folders: Iterable[str], workers: int) -> None:
        """List *folders* now, *workers* at a time (a web server's round trips)."""
        wanted = [f for f in folders if f not in self._folders]
        with ThreadPoolExecutor(workers) as pool:
            for folder, known in zip(wanted, pool.map(self._compact, wanted), strict=True):
                self._folders[folder] = known

    def __contains__(self, digest: str) -> bool:
        return self.has_key(int(digest[:16], 16))

    def has_key(self, key: int) -> bool:
        """Whether a chunk whose BLAKE3 starts with these 64 bits is there."""
        folder = f"{key >> 56:02x}"
        known = self._folders.get(folder)
        if known is None:
            known = self._folders[folder] = self._compact(folder)
        i = bisect_left(known, key)
        return i < len(known) and known[i] == key


class RepositoryReader:
    """What restoring, listing and verifying need from a repository: its images and
    chunks, read-only. :class:`Repository` (a folder) and
    :class:`~rescue.image.http_repository.HttpRepository` (a URL) provide it;
    ``rescue.repo.open_repository`` opens one from a location."""

    #: where the repository is, as the technician gave it (shown in messages; never a
    #: password)
    location: str
    #: the folder on this machine that holds it (a disk it lives on must not be written
    #: over); None when it lives elsewhere (a web server)
    local_folder: str | None = None
    #: how many chunk reads may run at once to keep the pipeline fed
    parallel_reads = 2

    def image_ids(self) -> list[str]:
        """Ids of every complete image, newest first."""
        raise NotImplementedError

    def manifest_bytes(self, image_id: str) -> bytes:
        raise NotImplementedError

    # -- signatures (rescue/image/signature.py) --
    def signature_bytes(self, image_id: str) -> bytes | None:
        """The image's ``signature.json``; None when the image is not signed."""
        raise NotImplementedError

    def load_signed(self, ref: str, trust: TrustStore) -> tuple[Manifest, SignatureVerdict]:
        """The manifest and the verdict on its signature, both from one read of the
        manifest's bytes (the bytes checked are the bytes used)."""
        image_id = self.resolve(ref)
        raw = self.manifest_bytes(image_id)
        manifest = self.manifest_from(image_id, raw)
        return manifest, self._verdict(image_id, raw, trust)

    def signature_verdict(self, image_id: str, trust: TrustStore) -> SignatureVerdict:
        """Who signed the image (for listings; a restore uses :meth:`load_signed`). The
        manifest is read again only when there is a signature to check it against."""
        return self._verdict(image_id, None, trust)

    def _verdict(self, image_id: str, raw: bytes | None,
                 trust: TrustStore) -> SignatureVerdict:
        where = _("signature of image {id}").format(id=image_id)
        try:
            signature = self.signature_bytes(image_id)
        except RepositoryError as exc:  # a link, a special file, too large: not a signature
            return SignatureVerdict(BAD, reason=str(exc), trusted_keys=len(trust))
        if signature is not None and raw is None:
            raw = self.manifest_bytes(image_id)
        return _check_signature(raw or b"", signature, trust, where)

    def read_chunk(self, digest: str, where: str) -> bytes:
        raise NotImplementedError

    def chunk_size_on_disk(self, digest: str) -> int:
        """Stored size of a chunk, -1 when it is missing."""
        raise NotImplementedError

    def missing_chunks(self, digests: list[str]) -> list[str]:
        """The chunks of *digests* that are absent or empty (one look each: for a few,
        such as an image's index parts)."""
        return [d for d in digests if self.chunk_size_on_disk(d) <= 0]

    def chunk_inventory(self) -> ChunkInventory | None:
        """Which chunks the repository holds, from one listing per chunk folder; None
        when the repository cannot list its folders (a web server without listings)."""
        return None

    def sealed_images(self) -> frozenset[str]:
        """The images the repository's presence seal (:mod:`rescue.image.seal`) vouches
        for now: every chunk of each was there when a rescue writer sealed it, and
        nothing was added or removed since. Empty without a (valid) seal."""
        return frozenset()

    def read_part(self, part: IndexPart, where: str) -> bytes:
        """The raw bytes of an index part, verified against its BLAKE3."""
        return codec.decode_chunk(part.blake3, self.read_chunk(part.blake3, where),
                                  part.size, where)

    def load_manifest(self, ref: str) -> Manifest:
        image_id = self.resolve(ref)
        return self.manifest_from(image_id, self.manifest_bytes(image_id))

    def manifest_from(self, image_id: str, raw: bytes) -> Manifest:
        """The manifest of image *image_id* stored as *raw*, checked."""
        where = _("manifest of image {id}").format(id=image_id)
        manifest = Manifest.from_json(raw, where=where)
        check_manifest(manifest, where)
        if manifest.id != image_id:
            raise ImageCorruptError(
                _("The manifest in images/{dir} names image {id}; the repository was edited "
                  "by hand.").format(dir=image_id, id=manifest.id)
            )
        return manifest

    def resolve(self, ref: str) -> str:
        """An image id from 'latest', a full id or a unique id prefix."""
        ids = self.image_ids()
        if not ids:
            raise ImageNotFoundError(
                _("The repository {where} holds no images.").format(where=self.location))
        if ref == "latest":
            # Ids start with the UTC creation time, so the greatest is the newest.
            return max(ids)
        if ref in ids:
            return ref
        matches = [i for i in ids if i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ImageNotFoundError(
                _("No image '{ref}' in {where}; 'rescue list --repo {where}' shows them.")
                .format(ref=ref, where=self.location)
            )
        raise ImageNotFoundError(
            _("'{ref}' matches {count} images in {where}; give more of the id.").format(
                ref=ref, count=len(matches), where=self.location)
        )

    def list_images(self, problems: list[str] | None = None) -> list[ImageSummary]:
        """Every complete image, newest first. A damaged, forged, newer or vanished
        manifest is skipped, and the sentence saying why is added to *problems*; the
        other images are listed."""
        out = []
        for image_id in self.image_ids():
            try:
                m = self.load_manifest(image_id)
            except (ImageCorruptError, UnsupportedFormatError, RepositoryError,
                    ImageNotFoundError) as exc:
                if problems is not None:
                    problems.append(_("Image {id} in {where} is skipped: {why}").format(
                        id=image_id, where=self.location, why=exc))
                continue
            out.append(summarize(m))
        out.sort(key=lambda s: s.created_utc, reverse=True)
        return out


class RepositoryWriter(Protocol):
    """What a backup needs from a repository it writes: its image ids (a new id sorts
    after them), chunks stored once, and the manifest published last, after every chunk
    is durable. :class:`Repository` (a folder, also a share's once mounted) provides it;
    ``rescue.repo.open_repository(location, write=True)`` opens one, creating it when
    missing."""

    location: str
    local_folder: str | None

    def image_ids(self) -> list[str]: ...
    def has_chunk(self, digest: str) -> bool: ...
    def put_chunk(self, digest: str, blob: bytes) -> bool: ...
    def sync(self) -> None: ...
    def write_manifest(self, manifest: Manifest, signer: Signer | None = None) -> object: ...
    def clean_tmp(self) -> None: ...
    def start_image(self) -> None: ...
    def seal_image(self, image_id: str) -> bool: ...


class Repository(RepositoryReader):
    """A repository in a folder: read and written. *shown*: how messages name it (the
    share it is in, say); the folder's path by default."""

    def __init__(self, root: Path, shown: str = "") -> None:
        self.root = root
        self.location = shown or str(root)
        self.local_folder = str(root)
        # chunk folders this writer renamed chunks into: their entries are made durable
        # (fsync of each folder) by sync(), before a manifest points at them
        self._dirty: set[str] = set()
        self._dirty_lock = threading.Lock()
        # the images this writer's seal keeps vouching for (start_image)
        self._seal_base: frozenset[str] = frozenset()

    # -- opening ---------------------------------------------------------------------

    @staticmethod
    def is_repository(path: str | os.PathLike[str]) -> bool:
        return (Path(path) / REPO_FILE).is_file()

    @classmethod
    def open(cls, path: str | os.PathLike[str], shown: str = "") -> Repository:
        root = Path(path)
        marker = root / REPO_FILE
        if not root.is_dir():
            raise RepositoryError(
                _("The repository {where} does not exist or is not a directory.").format(
                    where=root))
        try:
            raw = _read_inside(root, (REPO_FILE,), 1 << 20)
        except _NotAFile:
            raise RepositoryError(_(
                "{where} is a link, a special file or far too large; rescue does not follow "
                "links in a repository.").format(where=marker)) from None
        except FileNotFoundError:
            raise RepositoryError(
                _("{where} is not a rescue repository (no {marker}).").format(
                    where=root, marker=REPO_FILE)
            ) from None
        except OSError as exc:
            raise RepositoryError(
                _("{where} is unreadable or damaged: {error}.").format(where=marker, error=exc)
            ) from exc
        check_marker(raw, str(root))
        return cls(root, shown)

    @classmethod
    def create(cls, path: str | os.PathLike[str], shown: str = "") -> Repository:
        """Open the repository at *path*, creating it (and the directory) if needed."""
        root = Path(path)
        if cls.is_repository(root):
            repo = cls.open(root, shown)
            for sub in ("chunks", "images", "tmp"):
                if os.path.lexists(root / sub) and not _is_dir(root / sub):
                    raise RepositoryError(_(
                        "{path} in the repository is a link or not a folder; rescue writes "
                        "nothing through links in a repository. Remove it, or use another "
                        "repository.").format(path=root / sub))
            return repo
        if root.exists() and not root.is_dir():
            raise RepositoryError(
                _("The repository {where} does not exist or is not a directory.").format(
                    where=root))
        if root.exists() and any(root.iterdir()):
            raise RepositoryError(
                _("{where} is not empty and is not a rescue repository; choose an empty "
                  "directory or an existing repository.").format(where=root)
            )
        try:
            for sub in ("chunks", "images", "tmp"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            info = {
                "magic": REPO_MAGIC,
                "format_version": REPO_FORMAT_VERSION,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            _atomic_write(root / REPO_FILE, (json.dumps(info, indent=1) + "\n").encode(), root)
        except OSError as exc:
            raise from_oserror(exc, _("Creating the repository {path}").format(
                path=root)) from exc
        return cls(root, shown)

    # -- chunks ----------------------------------------------------------------------

    def chunk_path(self, digest: str) -> Path:
        return self.root / "chunks" / digest[:2] / f"{digest}.zst"

    def has_chunk(self, digest: str) -> bool:
        """Whether a complete chunk file is stored under *digest*, so a backup may reuse
        it. Not only its name: its size is plausible and it is one whole zstd frame (the
        frame header declares a sane size and the chain of block headers ends exactly at
        the end of the file; nothing is decompressed). An empty or torn file (a power cut
        on a filesystem that kept the name but not the data) counts as missing, and the
        backup writes the chunk again over it."""
        try:
            fd = _open_inside(self.root, ("chunks", digest[:2], f"{digest}.zst"))
        except OSError:
            return False
        try:
            return whole_frame(fd)
        except OSError:
            return False
        finally:
            os.close(fd)

    def put_chunk(self, digest: str, blob: bytes) -> bool:
        """Store a compressed chunk; False if it was already there. Never leaves a
        partial file under a chunk's name (write to tmp/, then rename)."""
        final = self.chunk_path(digest)
        if self.has_chunk(digest):
            return False
        tmp = self.root / "tmp" / f"{digest}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        try:
            final.parent.mkdir(exist_ok=True)
            if not _is_dir(final.parent):
                raise RepositoryError(_(
                    "{path} in the repository is a link or not a folder; rescue writes "
                    "nothing through links in a repository. Remove it, or use another "
                    "repository.").format(path=final.parent))
            with open(tmp, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())  # the name never points at data not yet on the disk
            os.replace(tmp, final)
            with self._dirty_lock:
                self._dirty.add(final.parent.name)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise from_oserror(exc, _("Writing to the repository {path}").format(
                path=self.root)) from exc
        return True

    def read_chunk(self, digest: str, where: str) -> bytes:
        try:
            return _read_inside(self.root, ("chunks", digest[:2], f"{digest}.zst"),
                                MAX_CHUNK_FILE)
        except _NotAFile:
            raise ImageCorruptError(_(
                "{where}: chunk {chunk} in {repo} is a link, a special file or far too "
                "large, not a chunk; rescue does not follow links in a repository."
            ).format(where=where, chunk=digest[:16], repo=self.location)) from None
        except FileNotFoundError:
            raise ImageCorruptError(
                _("{where}: chunk {chunk} is missing from the repository {repo}.").format(
                    where=where, chunk=digest[:16], repo=self.location)
            ) from None
        except OSError as exc:
            raise from_oserror(exc, _("{where}: reading chunk {chunk}").format(
                where=where, chunk=digest[:16])) from exc

    def chunk_size_on_disk(self, digest: str) -> int:
        """-1 when the chunk is missing, or is a link, a special file or inside a
        linked folder (never followed: it counts as missing)."""
        try:
            fd = _open_inside(self.root, ("chunks", digest[:2], f"{digest}.zst"))
        except OSError:
            return -1
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
        return info.st_size if stat.S_ISREG(info.st_mode) else -1

    def chunk_inventory(self) -> ChunkInventory:
        def listing(folder: str) -> list[str]:
            path = self.root / "chunks" / folder
            if not _is_dir(path):  # absent, or a link: holds nothing of this repository
                return []
            try:
                return os.listdir(path)
            except FileNotFoundError:
                return []
            except OSError as exc:
                raise from_oserror(exc, _("Listing the chunks of {path}").format(
                    path=self.location)) from exc

        return ChunkInventory(listing)

    # -- presence seal ---------------------------------------------------------------

    def folder_stamps(self) -> FolderStamps:
        """Each chunk folder's modification time (ns), None where there is no real
        folder: what a seal records and compares."""
        chunks = self.root / "chunks"
        stamps: FolderStamps = dict.fromkeys(CHUNK_FOLDERS)
        if not _is_dir(chunks):
            return stamps
        for name in CHUNK_FOLDERS:
            try:
                info = os.lstat(chunks / name)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stamps[name] = info.st_mtime_ns
        return stamps

    def read_seal(self) -> Seal | None:
        try:
            return parse_seal(_read_inside(self.root, (SEAL_FILE,), MAX_SEAL_FILE))
        except (OSError, _NotAFile):
            return None

    def sealed_images(self) -> frozenset[str]:
        seal = self.read_seal()
        return seal.vouches_now(self.folder_stamps()) if seal is not None else frozenset()

    def write_seal(self, state: str, images: Iterable[str]) -> bool:
        """Record a seal (*state* OPEN or SEALED). False when it could not be written:
        then restores look every chunk up, which is slower but as safe."""
        seal = Seal(state, frozenset(images),
                    self.folder_stamps() if state == SEALED else {},
                    datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        try:
            _atomic_write(self.root / SEAL_FILE, seal.to_json(), self.root)
        except OSError:
            return False
        return True

    def open_seal(self) -> frozenset[str]:
        """Before a writer changes a chunk folder (a backup adds chunks, a prune takes
        away chunks no image uses): mark the seal open, carrying over the images it
        vouched for; returns them."""
        seal = self.read_seal()
        base = seal.carried_over(self.folder_stamps()) if seal is not None else frozenset()
        base &= frozenset(self.image_ids())
        self.write_seal(OPEN, base)
        return base

    def start_image(self) -> None:
        """Before a writer's first chunk: clean up its leftovers and open the seal."""
        self.clean_tmp()
        self._seal_base = self.open_seal()

    def seal_image(self, image_id: str) -> bool:
        """After the manifest of *image_id* is published (its chunks durable): seal
        the repository with that image and those carried over by :meth:`start_image`."""
        images = (self._seal_base | {image_id}) & frozenset(self.image_ids())
        return self.write_seal(SEALED, images)

    # -- images ----------------------------------------------------------------------

    def image_ids(self) -> list[str]:
        images = self.root / "images"
        if not _is_dir(images):
            return []

        def published(folder: Path) -> bool:  # a real folder holding a real manifest
            try:
                return _is_dir(folder) and stat.S_ISREG(
                    os.lstat(folder / "manifest.json").st_mode)
            except OSError:
                return False

        return sorted((p.name for p in images.iterdir() if published(p)), reverse=True)

    def manifest_bytes(self, image_id: str) -> bytes:
        path = self.root / "images" / image_id / "manifest.json"
        try:
            return _read_inside(self.root, ("images", image_id, "manifest.json"),
                                MAX_MANIFEST_FILE)
        except _NotAFile:
            raise ImageCorruptError(_(
                "{path} is a link, a special file or far too large, not a manifest; rescue "
                "does not follow links in a repository.").format(path=path)) from None
        except FileNotFoundError:
            raise ImageNotFoundError(
                _("Image {id} is gone from {where}.").format(id=image_id, where=self.location)
            ) from None
        except OSError as exc:
            raise from_oserror(exc, _("Reading {path}").format(path=path)) from exc

    def signature_bytes(self, image_id: str) -> bytes | None:
        path = self.root / "images" / image_id / SIGNATURE_FILE
        try:
            return _read_inside(self.root, ("images", image_id, SIGNATURE_FILE),
                                MAX_SIGNATURE_FILE)
        except _NotAFile:
            raise SignatureRefusedError(_(
                "{path} is a link, a special file or far too large, not a signature; rescue "
                "does not follow links in a repository.").format(path=path)) from None
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise from_oserror(exc, _("Reading {path}").format(path=path)) from exc

    def write_manifest(self, manifest: Manifest, signer: Signer | None = None) -> Path:
        """Publish an image: after this the image is listed. Chunks must already be
        durable (see :meth:`sync`). With *signer*, the signature of the manifest's bytes
        is written first, so a listed image is never without it."""
        if not _ID_RE.match(manifest.id):
            raise ValueError(f"bad image id {manifest.id!r}")
        directory = self.root / "images" / manifest.id
        raw = manifest.to_json()
        try:
            directory.mkdir(parents=True, exist_ok=False)
            if signer is not None:
                _atomic_write(directory / SIGNATURE_FILE, signer.signature_file(raw),
                              self.root)
            _atomic_write(directory / "manifest.json", raw, self.root)
            _fsync_dir(directory.parent)  # the image's folder itself
        except OSError as exc:
            raise from_oserror(exc, _("Writing the manifest to {path}").format(
                path=directory)) from exc
        self.write_index()
        return directory / "manifest.json"

    def write_index(self) -> None:
        """Refresh ``images/index.json``, the list of image ids a reader over HTTP uses
        where the web server lists no directories. Advisory: a folder reader ignores it."""
        body = {"images": sorted(self.image_ids())}
        try:
            _atomic_write(self.root / INDEX_FILE,
                          (json.dumps(body, indent=1) + "\n").encode(), self.root)
        except OSError as exc:
            raise from_oserror(exc, _("Writing {path}").format(
                path=self.root / INDEX_FILE)) from exc

    def remove_image(self, image_id: str) -> int:
        """Take the image *image_id* away: its manifest first (from then on the image is
        not listed, whatever else an interruption leaves), then its folder, then the
        index. The bytes of files removed. Its chunks stay until a prune."""
        if not _ID_RE.match(image_id):
            raise ValueError(f"bad image id {image_id!r}")
        folder = self.root / "images" / image_id
        if not _is_dir(folder):
            raise ImageNotFoundError(
                _("Image {id} is gone from {where}.").format(id=image_id, where=self.location))
        freed = 0
        try:
            names = sorted(os.listdir(folder), key=lambda n: n != "manifest.json")
            for name in names:
                info = os.lstat(folder / name)
                if stat.S_ISDIR(info.st_mode):
                    continue  # not rescue's: left, and the folder with it
                (folder / name).unlink()
                freed += info.st_size
                if name == "manifest.json":
                    _fsync_dir(folder)
            with contextlib.suppress(OSError):
                folder.rmdir()
            _fsync_dir(folder.parent)
        except OSError as exc:
            raise from_oserror(exc, _("Deleting image {id} from {where}").format(
                id=image_id, where=self.location)) from exc
        self.write_index()
        return freed

    def chunk_folders(self) -> list[str]:
        """The chunk folders (``chunks/<2 hex>``) that are real folders, sorted."""
        chunks = self.root / "chunks"
        if not _is_dir(chunks):
            return []
        return sorted(n for n in os.listdir(chunks)
                      if re.fullmatch(r"[0-9a-f]{2}", n) and _is_dir(chunks / n))

    def sync(self) -> None:
        """Make every chunk written so far durable before a manifest points at it: each
        chunk file was fsynced before its rename; here the folders that got new names
        are fsynced, then everything else (os.sync)."""
        with self._dirty_lock:
            folders, self._dirty = sorted(self._dirty), set()
        try:
            for folder in folders:
                _fsync_dir(self.root / "chunks" / folder)
        except OSError as exc:
            raise from_oserror(exc, _("Writing to the repository {path}").format(
                path=self.root)) from exc
        os.sync()

    def clean_tmp(self) -> None:
        """Remove what an interrupted writer left in tmp/: its own temporary files only
        (``<name>.<pid>.<8 hex>``, regular files), never through a link."""
        tmp = self.root / "tmp"
        if not _is_dir(tmp):
            return
        for p in tmp.iterdir():
            try:
                if _TMP_FILE.fullmatch(p.name) and stat.S_ISREG(os.lstat(p).st_mode):
                    p.unlink()
            except OSError:
                continue


class _NotAFile(Exception):
    pass


def _open_inside(root: Path, rel: tuple[str, ...]) -> int:
    """A read-only descriptor of root/rel, opened without following any link inside the
    repository (each folder with O_NOFOLLOW, then the file; a FIFO does not block)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in rel[:-1]:
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(rel[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)


def _read_inside(root: Path, rel: tuple[str, ...], limit: int) -> bytes:
    """The bytes of the regular file root/rel, at most *limit* of them. Raises
    FileNotFoundError when it is absent and :class:`_NotAFile` when it (or a folder on
    the way) is a link, a FIFO, a device or larger than *limit*."""
    try:
        fd = _open_inside(root, rel)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
            raise _NotAFile("/".join(rel)) from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise _NotAFile("/".join(rel))
        # one read of exactly the file's size (no copy, no oversized buffer: this is the
        # restore's path for every chunk), then pieces only if it grew or came short
        data = os.read(fd, info.st_size)
        pieces = [data]
        total = len(data)
        while total <= limit:
            piece = os.read(fd, min(1 << 20, limit + 1 - total))
            if not piece:
                return data if len(pieces) == 1 else b"".join(pieces)
            pieces.append(piece)
            total += len(piece)
        raise _NotAFile("/".join(rel))
    finally:
        os.close(fd)


def _is_dir(path: Path) -> bool:
    """A real folder, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def summarize(m: Manifest) -> ImageSummary:
    return ImageSummary(
        id=m.id,
        name=m.name,
        created_utc=m.created_utc,
        created_local=m.created_local,
        computer=m.computer,
        os_name=m.os_name,
        firmware=m.firmware,
        data_bytes=m.data_bytes,
        stored_bytes=int(m.stats.get("new_stored_bytes", 0)),
        disks=len(m.disks),
    )


def _atomic_write(path: Path, data: bytes, root: Path) -> None:
    tmp = root / "tmp" / f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.parent.mkdir(exist_ok=True)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make the names in the folder *path* durable. A filesystem that cannot fsync a
    folder (some FAT and SMB drivers answer EINVAL) keeps its names durable by
    os.sync, which :meth:`Repository.sync` runs before a manifest is written."""
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(dfd)


def whole_frame(fd: int) -> bool:
    """Whether the open file *fd* is exactly one complete zstd frame of a chunk: a
    plausible size, the frame's magic, a declared content size of 1 byte to 64 MiB, and
    block headers that chain to the end of the file (plus the checksum when the frame
    has one). Reads the frame header and one 3-byte header per block (about 9 for a 1 MiB
    chunk), never the data."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or not 0 < info.st_size <= MAX_CHUNK_FILE:
        return False
    size = info.st_size
    head = os.pread(fd, 18, 0)  # the longest frame header
    if not head.startswith(_ZSTD_MAGIC):
        return False
    try:
        params = zstandard.get_frame_parameters(head)
        pos = zstandard.frame_header_size(head)
    except zstandard.ZstdError:
        return False
    declared = params.content_size
    if not 0 < declared <= MAX_CHUNK_RAW:  # unknown (a huge number) or empty
        return False
    # a block restores at most 128 KiB and zstd never writes an empty one; allow block
    # splitting at high levels many times over, but bound the walk
    for _block in range(64 * (declared // _ZSTD_BLOCK + 1) + 8):
        header = os.pread(fd, 3, pos)
        if len(header) != 3:
            return False
        value = int.from_bytes(header, "little")
        last, kind, length = value & 1, (value >> 1) & 3, value >> 3
        if kind == 3 or length > _ZSTD_BLOCK or (length == 0 and not last):
            return False  # reserved type, or zeros where a block should be
        pos += 3 + (1 if kind == 1 else length)  # an RLE block stores one byte
        if last:
            return pos + (4 if params.has_checksum else 0) == size
        if pos >= size:
            return False
    return False


# -- one writer at a time -------------------------------------------------------------

LOCK_FILE = "writer-lock.json"


#: how often the holder of a lock refreshes its time, and how long a lock of another
#: machine may go without that before it counts as left behind by a crash
LOCK_REFRESH_S = 60
LOCK_STALE_S = 30 * 60
_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def _boot_id() -> str:
    try:
        with open(_BOOT_ID) as f:
            return f.read().strip()
    except OSError:
        return ""


def _machine_id() -> str:
    try:
        with open("/etc/machine-id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class LockInfo:
    """What a writer lock says about its holder."""

    host: str
    pid: int
    boot_id: str
    machine_id: str
    started: str  # ISO 8601 UTC
    token: str
    age: float  # seconds since the holder last refreshed the lock (its mtime)

    @staticmethod
    def mine(token: str) -> dict[str, object]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "boot_id": _boot_id(),
                "machine_id": _machine_id(),
                "started": datetime.now(UTC).isoformat(timespec="seconds"), "token": token}

    def stale(self, limit: float = LOCK_STALE_S) -> bool:
        """Left behind by a writer that is gone: on this running system (same boot id)
        its process has ended; on this machine before a reboot (same machine id, another
        boot id); or, for another machine (which rescue cannot ask), not refreshed for
        *limit* seconds."""
        if self.boot_id and self.boot_id == _boot_id():
            return not _pid_alive(self.pid)
        here = _machine_id()
        if here and self.machine_id == here and self.host == socket.gethostname():
            return True  # this machine, an earlier boot
        return self.age > limit

    def holder(self) -> str:
        return _("process {pid} on {host}, since {started}").format(
            pid=self.pid, host=self.host or "?", started=self.started or "?")


class WriterLock:
    """One writer per repository: a lock file at the repository's top, created with
    O_CREAT|O_EXCL (atomic on local filesystems, FAT, SMB and NFS alike; no hard link or
    fcntl lock needed) and holding its holder's host, process, boot id and start time.
    The holder refreshes its time every :data:`LOCK_REFRESH_S` seconds; a lock left
    behind by a crash is recognised (see :meth:`LockInfo.stale`) and taken over. A lock
    held by a live writer is refused with a sentence naming the holder; *break_lock*
    removes it whatever it says (the technician knows the writer is gone)."""

    def __init__(self, root: Path, shown: str) -> None:
        self.root, self.shown = root, shown
        self.path = root / LOCK_FILE
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> LockInfo | None:
        """The lock's holder; None when there is no lock. An unreadable or half-written
        lock is reported with empty fields and its age."""
        try:
            age = time.time() - os.lstat(self.path).st_mtime
        except FileNotFoundError:
            return None
        info: dict[str, object] = {}
        with contextlib.suppress(OSError, ValueError, _NotAFile):
            loaded = json.loads(_read_inside(self.root, (LOCK_FILE,), 1 << 16))
            if isinstance(loaded, dict):
                info = loaded

        def text(key: str) -> str:
            value = info.get(key)
            return value if isinstance(value, str) else ""

        pid = info.get("pid")
        return LockInfo(text("host"), pid if isinstance(pid, int) else -1, text("boot_id"),
                        text("machine_id"), text("started"), text("token"), max(age, 0.0))

    def acquire(self, break_lock: bool = False) -> None:
        for _attempt in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o644)
            except FileExistsError:
                held = self.read()
                if held is None:
                    continue  # let go of in between
                if not (break_lock or held.stale()):
                    raise RepositoryLockedError(_(
                        "The repository {where} is in use by another backup, delete or prune "
                        "({holder}). Wait until it has finished; if that writer is gone (its "
                        "machine was switched off), run the command again with --break-lock, "
                        "or remove {lock}.").format(where=self.shown, holder=held.holder(),
                                                    lock=self.path)) from None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            except OSError as exc:
                raise from_oserror(exc, _("Locking the repository {where}").format(
                    where=self.shown)) from exc
            try:
                os.write(fd, (json.dumps(LockInfo.mine(self.token)) + "\n").encode())
                os.fsync(fd)
            except OSError as exc:
                os.close(fd)
                self.path.unlink(missing_ok=True)
                raise from_oserror(exc, _("Locking the repository {where}").format(
                    where=self.shown)) from exc
            os.close(fd)
            self._thread = threading.Thread(target=self._refresh, name="repository-lock",
                                            daemon=True)
            self._thread.start()
            return
        raise RepositoryLockedError(_(
            "The repository {where} could not be locked: another writer keeps taking it. "
            "Try again.").format(where=self.shown))

    def _refresh(self) -> None:
        while not self._stop.wait(LOCK_REFRESH_S):
            with contextlib.suppress(OSError):
                os.utime(self.path, follow_symlinks=False)

    def release(self) -> None:
        """Remove the lock, when it is still this writer's (one broken by another
        technician is left to its new holder). Once; later calls do nothing."""
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        held = self.read()
        if held is not None and held.token == self.token:
            with contextlib.suppress(OSError):
                self.path.unlink()


@contextlib.contextmanager
def writer_lock(root: Path, shown: str, break_lock: bool = False) -> Iterator[WriterLock]:
    """The repository at *root* locked for one writer for the block."""
    lock = WriterLock(root, shown)
    lock.acquire(break_lock)
    try:
        yield lock
    finally:
        lock.release()
