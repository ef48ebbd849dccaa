"""A repository: a directory holding many images and one shared chunk store.

Layout (docs/FORMAT.md)::

    rescue-repository.json          magic + format version
    chunks/<2 hex>/<blake3>.zst     one zstd frame per chunk, shared by all images
    images/<id>/manifest.json       one image; it exists only once the image is complete
    tmp/                            partial files; never read, cleaned on open for write

Every file stays far below 4 GiB (chunks are a few MiB), so any filesystem a USB stick
carries works (FAT32, exFAT, ext4, NTFS), as do NFS/SMB shares.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rescue.errors import (
    ImageCorruptError,
    ImageNotFoundError,
    RepositoryError,
    UnsupportedFormatError,
    from_oserror,
)
from rescue.image.manifest import Manifest

REPO_MAGIC = "rescue-repository"
REPO_FORMAT_VERSION = 1
REPO_FILE = "rescue-repository.json"
_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


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


def new_image_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


class Repository:
    def __init__(self, root: Path) -> None:
        self.root = root

    # -- opening ---------------------------------------------------------------------

    @staticmethod
    def is_repository(path: str | os.PathLike[str]) -> bool:
        return (Path(path) / REPO_FILE).is_file()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Repository:
        root = Path(path)
        marker = root / REPO_FILE
        if not root.is_dir():
            raise RepositoryError(f"The repository {root} does not exist or is not a directory.")
        try:
            info = json.loads(marker.read_text())
        except FileNotFoundError:
            raise RepositoryError(
                f"{root} is not a rescue repository (no {REPO_FILE})."
            ) from None
        except (OSError, ValueError) as exc:
            raise RepositoryError(f"{marker} is unreadable or damaged: {exc}.") from exc
        if info.get("magic") != REPO_MAGIC:
            raise RepositoryError(f"{root} is not a rescue repository (wrong magic).")
        if int(info.get("format_version", 0)) > REPO_FORMAT_VERSION:
            raise UnsupportedFormatError(
                f"The repository {root} uses format version {info.get('format_version')}; "
                f"this rescue reads up to {REPO_FORMAT_VERSION}. Use a newer rescue."
            )
        return cls(root)

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> Repository:
        """Open the repository at *path*, creating it (and the directory) if needed."""
        root = Path(path)
        if cls.is_repository(root):
            return cls.open(root)
        if root.exists() and any(root.iterdir()):
            raise RepositoryError(
                f"{root} is not empty and is not a rescue repository; choose an empty "
                "directory or an existing repository."
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
            raise from_oserror(exc, f"Creating the repository {root}") from exc
        return cls(root)

    # -- chunks ----------------------------------------------------------------------

    def chunk_path(self, digest: str) -> Path:
        return self.root / "chunks" / digest[:2] / f"{digest}.zst"

    def has_chunk(self, digest: str) -> bool:
        return self.chunk_path(digest).exists()

    def put_chunk(self, digest: str, blob: bytes) -> bool:
        """Store a compressed chunk; False if it was already there. Never leaves a
        partial file under a chunk's name (write to tmp/, then rename)."""
        final = self.chunk_path(digest)
        if final.exists():
            return False
        tmp = self.root / "tmp" / f"{digest}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        try:
            final.parent.mkdir(exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(blob)
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise from_oserror(exc, f"Writing to the repository {self.root}") from exc
        return True

    def read_chunk(self, digest: str, where: str) -> bytes:
        try:
            with open(self.chunk_path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ImageCorruptError(
                f"{where}: chunk {digest[:16]} is missing from the repository {self.root}."
            ) from None
        except OSError as exc:
            raise from_oserror(exc, f"{where}: reading chunk {digest[:16]}") from exc

    def chunk_size_on_disk(self, digest: str) -> int:
        try:
            return self.chunk_path(digest).stat().st_size
        except FileNotFoundError:
            return -1

    # -- images ----------------------------------------------------------------------

    def image_ids(self) -> list[str]:
        images = self.root / "images"
        if not images.is_dir():
            return []
        return sorted(
            (p.name for p in images.iterdir() if (p / "manifest.json").is_file()),
            reverse=True,
        )

    def load_manifest(self, ref: str) -> Manifest:
        image_id = self.resolve(ref)
        path = self.root / "images" / image_id / "manifest.json"
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise from_oserror(exc, f"Reading {path}") from exc
        manifest = Manifest.from_json(raw, where=f"manifest of image {image_id}")
        if manifest.id != image_id:
            raise ImageCorruptError(
                f"The manifest in images/{image_id} names image {manifest.id}; "
                "the repository was edited by hand."
            )
        return manifest

    def resolve(self, ref: str) -> str:
        """An image id from 'latest', a full id or a unique id prefix."""
        ids = self.image_ids()
        if not ids:
            raise ImageNotFoundError(f"The repository {self.root} holds no images.")
        if ref == "latest":
            return self._latest(ids)
        if ref in ids:
            return ref
        matches = [i for i in ids if i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ImageNotFoundError(
                f"No image '{ref}' in {self.root}; 'rescue list --repo {self.root}' shows them."
            )
        raise ImageNotFoundError(
            f"'{ref}' matches {len(matches)} images in {self.root}; give more of the id."
        )

    def _latest(self, ids: list[str]) -> str:
        # Ids start with the UTC creation time, so the greatest is the newest.
        return max(ids)

    def list_images(self) -> list[ImageSummary]:
        """Every complete image, newest first. Damaged manifests are skipped here;
        `rescue verify` reports them."""
        out = []
        for image_id in self.image_ids():
            try:
                m = self.load_manifest(image_id)
            except (ImageCorruptError, UnsupportedFormatError, RepositoryError):
                continue
            out.append(summarize(m))
        out.sort(key=lambda s: s.created_utc, reverse=True)
        return out

    def write_manifest(self, manifest: Manifest) -> Path:
        """Publish an image: after this the image is listed. Chunks must already be
        durable (see :meth:`sync`)."""
        if not _ID_RE.match(manifest.id):
            raise ValueError(f"bad image id {manifest.id!r}")
        directory = self.root / "images" / manifest.id
        try:
            directory.mkdir(parents=True, exist_ok=False)
            _atomic_write(directory / "manifest.json", manifest.to_json(), self.root)
        except OSError as exc:
            raise from_oserror(exc, f"Writing the manifest to {directory}") from exc
        return directory / "manifest.json"

    def sync(self) -> None:
        """Make every chunk written so far durable before a manifest points at it."""
        os.sync()

    def clean_tmp(self) -> None:
        tmp = self.root / "tmp"
        if tmp.is_dir():
            for p in tmp.iterdir():
                p.unlink(missing_ok=True)


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
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
