"""What a fix-up is given and what it gives back: the restore's facts (:class:`FixupContext`),
its :class:`FixupResult` (done, skipped or failed, with a sentence for the restore report),
and the two ways a step ends early (:class:`NothingToFix`: skipped, :class:`StepFailed`:
failed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rescue.errors import RescueError
from rescue.events import Sink, null_sink
from rescue.image.manifest import Manifest
from rescue.runner import CommandRunner

DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass
class FixupResult:
    name: str
    status: str  # "done" | "skipped" | "failed"
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class FixupContext:
    disk: str  # the target whole-disk node, e.g. /dev/nvme0n1
    partitions: dict[int, str]  # partition number -> node on the target
    manifest: Manifest
    firmware: str  # "uefi" | "bios": how the machine running the restore booted
    storage_drivers: list[str] = field(default_factory=list)
    runner: CommandRunner = field(default_factory=CommandRunner)
    sink: Sink = null_sink
    efivars: str = "/sys/firmware/efi/efivars"  # present only when booted via UEFI
    workdir: str | None = None  # where to mount the restored root (a temp dir if None)
    # GPT partition GUIDs the target disk had before it was overwritten: boot entries that
    # point at them lead nowhere now and are removed as stale too.
    previous_partuuids: list[str] = field(default_factory=list)
    disk_index: int = 0  # which disk of the image is on *disk*


class NothingToFix(RescueError):
    """The step does not apply to this image (e.g. no bootable Linux root on it)."""


class StepFailed(RescueError):
    """A fix-up could not do its job; the sentence goes into the restore report."""
