"""Taking images and unused chunks out of a folder repository: ``rescue delete`` and
``rescue prune``. Both run with the repository's writer lock held (the caller opened it
for writing: :func:`rescue.services.delete_image`, :func:`rescue.services.prune`), so no
backup adds a chunk or an image meanwhile.

A prune keeps every chunk a complete image refers to: its index parts and every chunk
they (or a format-1 manifest) list. What it knows is kept as the first 64 bits of each
referenced BLAKE3, sorted, one array per chunk folder (8 bytes per chunk, however many
images share it); a chunk file whose name starts with a referenced prefix is kept, so a
collision can only keep a chunk, never remove one. An image that cannot be read stops
the prune before anything is removed. A chunk file changed after the prune started is
kept. Files are removed one at a time: an interrupted prune leaves a smaller repository
that is as valid as before.

A prune also finds out which images are complete (every referenced chunk file there)
and seals the repository with them (:mod:`rescue.image.seal`): run on a copied
repository, it is what lets restores from the copy skip the chunk-by-chunk lookup."""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rescue.errors import (
    Cancelled,
    ImageCorruptError,
    ImageNotFoundError,
    RepositoryError,
    UnsupportedFormatError,
    UsageError,
    from_oserror,
)
from rescue.i18n import _
from rescue.image.index import IndexPart
from rescue.image.repository import IMAGE_ID_PATTERN, Repository
from rescue.image.seal import CHUNK_FOLDERS, SEALED

_CHUNK_FILE = re.compile(r"[0-9a-f]{64}\.zst")
_TMP_FILE = re.compile(r"[\w.-]+\.[0-9]+\.[0-9a-f]{8}")  # what a writer leaves in tmp/
_IMAGE_ID = re.compile(f"^{IMAGE_ID_PATTERN}$")

#: called with each file removed (or, in a dry run, that would be): its path inside the
#: repository and its size
OnRemove = Callable[[str, int], None]


@dataclass
class DeleteResult:
    image_id: str
    name: str
    created_local: str
    bytes_freed: int  # the image's own files (its chunks are a prune's)
    dry_run: bool


@dataclass
class PruneResult:
    dry_run: bool
    images: int = 0  # complete images whose chunks were kept
    chunks_kept: int = 0
    chunks_removed: int = 0
    chunk_bytes: int = 0
    leftovers_removed: int = 0  # interrupted writers' files in tmp/, empty image folders
    leftover_bytes: int = 0
    leftovers: list[str] = field(default_factory=list)
    missing_chunks: int = 0  # referenced chunk files that are not there
    incomplete: list[str] = field(default_factory=list)  # images missing some of them
    sealed: bool = False  # the seal was written (not in a dry run)

    @property
    def bytes_freed(self) -> int:
        return self.chunk_bytes + self.leftover_bytes


def delete_image(repo: Repository, image_ref: str, dry_run: bool = False) -> DeleteResult:
    """Take one image out of *repo* (its id or a unique prefix of it; never 'latest':
    the technician names what is deleted)."""
    if image_ref == "latest":
        raise UsageError(_("Name the image to delete by its id ('rescue list --repo {where}' "
                           "shows them), not as 'latest'.").format(where=repo.location))
    image_id = repo.resolve(image_ref)
    name = created = ""
    try:
        manifest = repo.load_manifest(image_id)
        name, created = manifest.name, manifest.created_local
    except (ImageCorruptError, UnsupportedFormatError):
        pass  # a damaged image can be deleted too
    if dry_run:
        folder = repo.root / "images" / image_id
        size = sum(os.lstat(p).st_size for p in folder.iterdir() if p.is_file()
                   and not p.is_symlink())
        return DeleteResult(image_id, name, created, size, True)
    return DeleteResult(image_id, name, created, repo.remove_image(image_id), False)


def _image_keys(repo: Repository, image_id: str) -> Iterator[list[int]]:
    """The 64-bit prefixes of the index parts and stored chunks of one image, a batch
    at a time."""
    manifest = repo.load_manifest(image_id)
    where = _("Image {image}, chunk index").format(image=image_id)

    def fetch(part: IndexPart) -> bytes:
        return repo.read_part(part, where)

    yield [int(part.blake3[:16], 16) for part in manifest.index_parts()]
    for _place, data in manifest.ranges():
        yield from data.stored_key_batches(fetch)


def _referenced(repo: Repository, ids: list[str], cancel: threading.Event | None
                ) -> dict[int, array[int]]:
    """Per chunk folder (its number 0-255): the sorted 64-bit prefixes of every chunk a
    complete image of *ids* refers to."""
    found: dict[int, array[int]] = {n: array("Q") for n in range(256)}
    for image_id in ids:
        if cancel is not None and cancel.is_set():
            raise Cancelled(_("Prune cancelled; nothing was removed."))
        try:
            for batch in _image_keys(repo, image_id):
                for key in batch:
                    found[key >> 56].append(key)
        except (ImageCorruptError, ImageNotFoundError, UnsupportedFormatError,
                RepositoryError) as exc:
            raise RepositoryError(_(
                "Prune removes nothing: image {id} in {where} cannot be read, so which chunks "
                "it needs is unknown ({why}). If it is beyond repair, take it out with "
                "'rescue delete --repo {where} --image {id}', then prune again."
            ).format(id=image_id, where=repo.location, why=exc)) from exc
        for n, keys in found.items():  # one image at a time: shared chunks counted once
            if keys:
                found[n] = array("Q", sorted(set(keys)))
    return found


def _incomplete(repo: Repository, ids: list[str], missing: set[int]) -> list[str]:
    """The images of *ids* that refer to a chunk of *missing* (a second reading of
    their indexes; only when some chunk is missing)."""
    return [image_id for image_id in ids
            if any(key in missing for batch in _image_keys(repo, image_id) for key in batch)]


def prune(repo: Repository, dry_run: bool = False, on_remove: OnRemove | None = None,
          cancel: threading.Event | None = None) -> PruneResult:
    """Remove the chunk files no complete image refers to, and what interrupted writers
    left (their files in tmp/, image folders without a manifest). With *dry_run* only
    say what would go."""
    started = time.time()
    result = PruneResult(dry_run)
    ids = repo.image_ids()
    if not dry_run:  # an interrupted prune keeps what the seal vouched for
        repo.open_seal()
    referenced = _referenced(repo, ids, cancel)
    result.images = len(ids)
    missing: set[int] = set()

    def remove(folder: str, name: str, size: int) -> None:
        rel = f"{folder}/{name}"
        if on_remove is not None:
            on_remove(rel, size)
        if dry_run:
            return
        path = repo.root / folder / name
        try:
            if folder == "images":
                path.rmdir()  # an empty image folder
            else:
                path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise from_oserror(exc, _("Removing {path}").format(path=repo.root / rel)) from exc

    try:
        real = set(repo.chunk_folders())
        for folder in CHUNK_FOLDERS:
            if cancel is not None and cancel.is_set():
                raise Cancelled(_("Prune cancelled; what was removed was not used by any "
                                  "image."))
            known = referenced[int(folder, 16)]
            if folder not in real:
                missing.update(known)
                continue
            present: set[int] = set()
            removed = 0
            for name in sorted(os.listdir(repo.root / "chunks" / folder)):
                if not _CHUNK_FILE.fullmatch(name):
                    continue  # not a chunk file: not rescue's to remove
                key = int(name[:16], 16)
                i = bisect_left(known, key)
                if i < len(known) and known[i] == key:
                    result.chunks_kept += 1
                    present.add(key)  # by name, as a restore's lookup; read, it is verified
                    continue
                info = os.lstat(repo.root / "chunks" / folder / name)
                if not stat.S_ISREG(info.st_mode) or info.st_mtime >= started:
                    result.chunks_kept += 1  # a link, or written since the prune began
                    continue
                remove(f"chunks/{folder}", name, info.st_size)
                result.chunks_removed += 1
                result.chunk_bytes += info.st_size
                removed += 1
            missing.update(k for k in known if k not in present)
            referenced[int(folder, 16)] = array("Q")  # done with it
            if removed and not dry_run:
                _fsync_dir(repo, f"chunks/{folder}")
        for folder, name, size in _leftovers(repo):
            remove(folder, name, size)
            result.leftovers.append(f"{folder}/{name}")
            result.leftovers_removed += 1
            result.leftover_bytes += size
        result.missing_chunks = len(missing)
        if missing:
            result.incomplete = _incomplete(repo, ids, missing)
    except OSError as exc:
        raise from_oserror(exc, _("Pruning {where}").format(where=repo.location)) from exc
    if not dry_run:
        result.sealed = repo.write_seal(SEALED, set(ids) - set(result.incomplete))
    return result


def _leftovers(repo: Repository) -> list[tuple[str, str, int]]:
    """What interrupted writers left: their temporary files in tmp/ (regular files named
    ``<name>.<pid>.<8 hex>``) and empty image folders without a manifest."""
    out: list[tuple[str, str, int]] = []
    tmp = repo.root / "tmp"
    if _real_dir(tmp):
        for name in sorted(os.listdir(tmp)):
            info = os.lstat(tmp / name)
            if _TMP_FILE.fullmatch(name) and stat.S_ISREG(info.st_mode):
                out.append(("tmp", name, info.st_size))
    images = repo.root / "images"
    if _real_dir(images):
        published = set(repo.image_ids())
        for name in sorted(os.listdir(images)):
            if (_IMAGE_ID.match(name) and name not in published
                    and _real_dir(images / name) and not os.listdir(images / name)):
                out.append(("images", name, 0))
    return out


def _real_dir(path: os.PathLike[str]) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _fsync_dir(repo: Repository, rel: str) -> None:
    fd = os.open(repo.root / rel, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # a filesystem that cannot fsync a folder; a removal is redone by the next prune
    finally:
        os.close(fd)
