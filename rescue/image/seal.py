"""The presence seal (``seal.json`` at the top of a repository): which images were
complete (every chunk and index part present) when a rescue writer last left the
repository, and the state of the 256 chunk folders at that moment (each folder's
modification time in nanoseconds, or null when it did not exist).

A writer keeps it current: a backup opens it before its first chunk (``state: open``,
the images it still vouches for) and seals it after publishing its manifest, adding its
own image; ``rescue prune`` seals every image it found complete. While the chunk folders
are as the seal recorded them, nothing was added to or taken from them since, so a
restore can skip looking up millions of chunks one by one (docs/FORMAT.md, "Presence
seal"). A seal that does not parse is no seal: nothing is vouched for, and a restore
looks up every chunk as before. Pure data; the files are read and written by
:mod:`rescue.image.repository`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

SEAL_FILE = "seal.json"
SEAL_FORMAT = 1
MAX_SEAL_FILE = 8 << 20  # 256 folders and some 100k image ids, with room
CHUNK_FOLDERS = tuple(f"{n:02x}" for n in range(256))
OPEN = "open"
SEALED = "sealed"
_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")

FolderStamps = dict[str, int | None]


@dataclass(frozen=True)
class Seal:
    state: str  # OPEN: a writer is at work (or was interrupted); SEALED: at rest
    images: frozenset[str]  # images complete as of this seal
    folders: FolderStamps = field(default_factory=dict)  # SEALED only
    written_utc: str = ""

    def to_json(self) -> bytes:
        body: dict[str, object] = {
            "format": SEAL_FORMAT,
            "state": self.state,
            "written_utc": self.written_utc,
            "images": sorted(self.images),
        }
        if self.state == SEALED:
            body["folders"] = {name: self.folders.get(name) for name in CHUNK_FOLDERS}
        return (json.dumps(body, separators=(",", ":")) + "\n").encode()

    def vouches_now(self, folders: FolderStamps) -> frozenset[str]:
        """The images this seal vouches for when the chunk folders are *folders* now:
        all of them when it is sealed and no folder changed, none otherwise."""
        if self.state != SEALED:
            return frozenset()
        if any(self.folders.get(name) != folders.get(name) for name in CHUNK_FOLDERS):
            return frozenset()
        return self.images

    def carried_over(self, folders: FolderStamps) -> frozenset[str]:
        """What a new writer may keep vouching for: an open seal's images (only rescue
        writers changed the folders since, and they add chunks or take away chunks no
        image uses); a sealed one's while the folders are unchanged."""
        if self.state == OPEN:
            return self.images
        return self.vouches_now(folders)


def parse_seal(raw: bytes) -> Seal | None:
    """The seal in *raw*, or None when it is not one this version understands (damaged,
    forged, too new): then nothing is vouched for."""
    if len(raw) > MAX_SEAL_FILE:
        return None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("format") != SEAL_FORMAT:
        return None
    state, images, written = body.get("state"), body.get("images"), body.get("written_utc", "")
    if state not in (OPEN, SEALED) or not isinstance(images, list) or not isinstance(written, str):
        return None
    if not all(isinstance(i, str) and _ID.fullmatch(i) for i in images):
        return None
    folders: FolderStamps = {}
    if state == SEALED:
        raw_folders = body.get("folders")
        if not isinstance(raw_folders, dict) or set(raw_folders) != set(CHUNK_FOLDERS):
            return None
        for name, stamp in raw_folders.items():
            if stamp is not None and (type(stamp) is not int or stamp < 0):
                return None
            folders[name] = stamp
    return Seal(state, frozenset(images), folders, written[:40])
