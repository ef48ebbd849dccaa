"""The facade the CLI and the wizard use: prepare (every refusal check, no writes) then
run (the side effects, reported as events). The CLI and the wizard reach the engine and
the planner only through here. Nothing here imports textual.

A repository is given as a location (text or :class:`~rescue.repo.Location`: opened
here, and kept open, a share mounted, until the prepared job has run or is closed) or as
a repository the caller opened with :func:`open_repository` and keeps open itself."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rescue.devices.target import probe_target
from rescue.engine import browse as _browse
from rescue.engine import prune as _prune
from rescue.engine.backup import BackupOptions, BackupResult, PreparedBackup
from rescue.engine.backup import prepare_backup as _prepare_backup
from rescue.engine.backup import run_backup as _run_backup
from rescue.engine.restore import (
    Restorer,
    RestoreReport,
    StepResult,
    check_chunks_present,
    verify_image,
)
from rescue.engine.usbstick import (
    DATA_LABEL,
    MIB,
    UsbJob,
    UsbPlan,
    UsbWriter,
    boot_medium,
)
from rescue.errors import RescueError, SignatureRefusedError, TargetTooSmallError
from rescue.events import Sink, null_sink
from rescue.fs import lvm as _lvm
from rescue.hardware.compat import Verdict, compare
from rescue.hardware.profile import HardwareProfile, collect_profile, firmware_type
from rescue.image.manifest import Manifest
from rescue.image.repository import Repository
from rescue.image.signature import (
    SignatureVerdict,
    Signer,
    TrustStore,
    create_key,
    load_public_key,
    load_signer,
)
from rescue.net import wifi as _wifi
from rescue.plan.fixups import FIXUP_NAMES
from rescue.plan.restore import RestoreOptions, RestorePlan, plan_restore, plan_restore_set
from rescue.repo import Location, RepositoryReader, RepositoryWriter, open_repository
from rescue.repo.folder import breaking_lock, existing_only
from rescue.runner import CommandRunner

__all__ = [
    "FIXUP_NAMES",
    "BackupOptions",
    "BackupResult",
    "DeleteResult",
    "PruneResult",
    "Location",
    "PreparedBackup",
    "PreparedRestore",
    "RepositoryReader",
    "RepositoryWriter",
    "RestoreOptions",
    "RestoreReport",
    "SignatureVerdict",
    "Signer",
    "TrustStore",
    "create_key",
    "image_signature",
    "load_public_key",
    "load_signer",
    "trust_store",
    "delete_image",
    "hardware_verdict",
    "open_repository",
    "open_writer",
    "prepare_backup",
    "prepare_restore",
    "prune",
    "run_backup",
    "run_restore",
    "Shrink",
    "lvm_volume_group",
    "shrink_preview",
    "verify_image",
    # rescue mount | umount | extract
    "CopyReport",
    "ExtractResult",
    "copy_out",
    "ImageMount",
    "PartitionView",
    "extract_files",
    "mount_log_path",
    "opened_image",
    "unmount_image",
    # rescue make-usb
    "DATA_LABEL",
    "MIB",
    "UsbJob",
    "UsbPlan",
    "UsbWriter",
    "boot_medium",
]

# "volume group vg0: root, swap" for an LVM physical volume (read-only, nothing activated)
lvm_volume_group = _lvm.describe_pv

#: a repository's location as the technician gave it
Where = str | os.PathLike[str] | Location


@contextlib.contextmanager
def open_writer(where: Where, runner: CommandRunner | None = None,
                break_lock: bool = False) -> Iterator[RepositoryWriter]:
    """The repository at *where* open for writing (created when missing) and locked for
    this one writer for the block; a lock another writer holds is refused with a
    sentence, unless *break_lock* (the technician knows that writer is gone)."""
    with contextlib.ExitStack() as stack:
        with breaking_lock(break_lock):
            repo = stack.enter_context(open_repository(where, write=True, runner=runner))
        yield repo


DeleteResult = _prune.DeleteResult
PruneResult = _prune.PruneResult


@contextlib.contextmanager
def _locked_folder(where: Where, runner: CommandRunner | None,
                   break_lock: bool) -> Iterator[Repository]:
    """An existing folder repository (a share's, mounted read-write) with its writer lock
    held for the block: a delete or prune waits for no backup and none starts meanwhile."""
    with existing_only(), open_writer(where, runner, break_lock) as repo:
        assert isinstance(repo, Repository), repo  # every writer is a folder's
        yield repo


def delete_image(where: Where, image_ref: str, dry_run: bool = False,
                 runner: CommandRunner | None = None,
                 break_lock: bool = False) -> DeleteResult:
    """Take one image out of the repository (its chunks stay until :func:`prune`)."""
    with _locked_folder(where, runner, break_lock) as repo:
        return _prune.delete_image(repo, image_ref, dry_run)


def prune(where: Where, dry_run: bool = False, runner: CommandRunner | None = None,
          break_lock: bool = False, on_remove: _prune.OnRemove | None = None,
          cancel: threading.Event | None = None) -> PruneResult:
    """Remove the chunks no image uses and what interrupted backups left behind."""
    with _locked_folder(where, runner, break_lock) as repo:
        return _prune.prune(repo, dry_run, on_remove, cancel)


def hardware_verdict(manifest: Manifest, target_disk: str | None = None) -> Verdict:
    """The image's recorded hardware against this machine (with *target_disk* as its
    future system disk)."""
    return compare(HardwareProfile.from_dict(manifest.hardware),
                   collect_profile(boot_disk=target_disk))


@dataclass
class PreparedRestore:
    repo: RepositoryReader
    manifest: Manifest
    plans: list[RestorePlan]  # one per disk of the image, in the image's order
    #: what keeps the repository open (a share mounted) until the restore has run
    held: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False,
                                       compare=False)
    #: who signed the image, checked against the trust store (docs/SECURITY.md)
    signature: SignatureVerdict = field(default_factory=lambda: SignatureVerdict("unsigned"))

    def close(self) -> None:
        """Let go of the repository (unmount its share); the restore cannot run after."""
        self.held.close()

    @property
    def plan(self) -> RestorePlan:
        """The plan of the image's first disk (the system disk)."""
        return self.plans[0]

    @property
    def targets(self) -> list[str]:
        return [p.target.path for p in self.plans]

    @property
    def data_bytes(self) -> int:
        return sum(p.data_bytes for p in self.plans)

    @property
    def erases_data(self) -> bool:
        return any(p.target.holds_data for p in self.plans)

    def summary_lines(self) -> list[str]:
        return [line for p in self.plans for line in p.summary_lines()]

    def to_dict(self) -> dict[str, Any]:
        """One disk: its plan; several: {"image_id", "disks": [plan, ...]}."""
        if len(self.plans) == 1:
            return self.plan.to_dict()
        return {"image_id": self.manifest.id, "disks": [p.to_dict() for p in self.plans]}


def prepare_restore(
    repo: RepositoryReader | Where,
    image_ref: str,
    target_disk: str | Sequence[str],
    options: RestoreOptions | None = None,
    runner: CommandRunner | None = None,
    trust: TrustStore | None = None,
) -> PreparedRestore:
    """Open the image (its manifest hash checked), probe the target(s) read-only and plan:
    the image's disk *i* goes onto target *i*. Raises a RescueError with a sentence for the
    technician on any refusal of any disk, before anything is written anywhere.

    The image's signature is checked against *trust* (None: the machine's default trust
    store, :func:`trust_store`): a bad signature is refused, and with trusted keys present
    so is an image they did not sign (:class:`SignatureRefusedError`, exit code 12)."""
    runner = runner or CommandRunner()
    disks = [target_disk] if isinstance(target_disk, str) else list(target_disk)
    held = contextlib.ExitStack()
    try:
        if isinstance(repo, RepositoryReader):
            reader = repo
        else:
            reader = held.enter_context(open_repository(repo, runner=runner))
        manifest, signature = _load_trusted(reader, image_ref, trust)
        # a repository on a web server lives on no local disk that needs protecting
        targets = [probe_target(d, reader.local_folder, runner) for d in disks]
        verdict = hardware_verdict(manifest, disks[0] if disks else None)
        plans = plan_restore_set(manifest, targets, options or RestoreOptions(),
                                 verdict.to_dict(), firmware=firmware_type())
        check_chunks_present(reader, manifest)
    except BaseException:
        held.close()
        raise
    return PreparedRestore(reader, manifest, plans, held, signature)


@dataclass(frozen=True)
class Shrink:
    """A partition a restore onto a smaller disk makes anew, smaller (sizes in bytes)."""

    number: int
    filesystem: str
    old_bytes: int
    new_bytes: int


def shrink_preview(where: RepositoryReader | Where, image_ref: str, target_disk: str,
                   disk_index: int = 0, runner: CommandRunner | None = None) -> list[Shrink]:
    """What a restore of the image's disk *disk_index* onto *target_disk* would shrink
    (empty: it fits as it is). Raises :class:`TargetTooSmallError` with the numbers when
    even shrinking does not make it fit; other refusals are left to the full
    preparation (:func:`prepare_restore`). Reads only."""
    runner = runner or CommandRunner()
    with contextlib.ExitStack() as held:
        reader = where if isinstance(where, RepositoryReader) else held.enter_context(
            open_repository(where, runner=runner))
        manifest = reader.load_manifest(image_ref)
    target = probe_target(target_disk, None, runner)
    try:
        plan = plan_restore(manifest, target, RestoreOptions(), firmware=firmware_type(),
                            disk_index=disk_index)
    except TargetTooSmallError:
        raise
    except RescueError:
        return []
    ss = plan.sector_size
    return [Shrink(p.number, p.filesystem or "", p.source_size * ss, p.size * ss)
            for p in plan.partitions if p.rebuild]


def _load_trusted(reader: RepositoryReader, image_ref: str, trust: TrustStore | None
                  ) -> tuple[Manifest, SignatureVerdict]:
    """The image's manifest and the verdict on its signature (against *trust*, or the
    machine's store): a bad signature, or with trusted keys an image they did not sign,
    is refused (:class:`SignatureRefusedError`, exit code 12)."""
    manifest, signature = reader.load_signed(
        image_ref, trust if trust is not None else trust_store())
    refusal = signature.refusal(manifest.id)
    if refusal:
        raise SignatureRefusedError(refusal)
    return manifest, signature


def trust_store(extra: Sequence[str] = ()) -> TrustStore:
    """The public keys this machine trusts: ``*.pub`` in /etc/rescue/trusted-keys (or the
    folder ``RESCUE_TRUSTED_KEYS_DIR`` names), plus *extra* files or folders
    (``--trust``). A key file that cannot be read is refused with a sentence."""
    return TrustStore.load(extra)


def image_signature(repo: RepositoryReader, image_id: str,
                    trust: TrustStore) -> SignatureVerdict:
    """Who signed the image *image_id* (an id, not a prefix), for listings."""
    return repo.signature_verdict(image_id, trust)


def run_restore(
    prepared: PreparedRestore,
    sink: Sink = null_sink,
    cancel: threading.Event | None = None,
    runner: CommandRunner | None = None,
    report_path: str | None = None,
) -> RestoreReport:
    """Carry out the plan(s). The report (JSON) is written to *report_path* whether the
    restore succeeds or fails.

    Several disks are restored one after the other, the image's first disk (the system
    disk, with the boot fix-ups) last, so its fstab check sees every restored disk."""
    runner = runner or CommandRunner()
    with contextlib.closing(prepared):
        if len(prepared.plans) == 1:
            return Restorer(prepared.repo, prepared.manifest, prepared.plan, runner, sink,
                            cancel, report_path=report_path, chunks_checked=True).run()
        order = prepared.plans[1:] + prepared.plans[:1]
        reports: list[RestoreReport] = []
        try:
            for plan in order:
                restorer = Restorer(prepared.repo, prepared.manifest, plan, runner, sink,
                                    cancel, chunks_checked=True)
                reports.append(restorer.report)
                restorer.run()
        finally:
            combined = combine_reports(prepared, reports)
            if report_path:
                with open(report_path, "w") as f:
                    f.write(combined.to_json())
        return combined


def combine_reports(prepared: PreparedRestore, reports: list[RestoreReport]) -> RestoreReport:
    """One report for a multi-disk restore: totals, and each disk's report under disks."""
    first = reports[0]
    combined = RestoreReport(
        image_id=prepared.manifest.id, target=", ".join(prepared.targets),
        started_utc=first.started_utc, plan=prepared.to_dict(),
        compatibility=dict(first.compatibility),
    )
    done = [r for r in reports if r.result == "ok"]
    failed = next((r for r in reports if r.result != "ok"), None)
    combined.result = "ok" if len(done) == len(prepared.plans) else (
        failed.result if failed else "failed")
    if failed is not None:
        combined.error = f"{failed.target}: {failed.error}" if failed.error else ""
    combined.elapsed = sum(r.elapsed for r in reports)
    combined.bytes_written = sum(r.bytes_written for r in reports)
    combined.bytes_skipped = sum(r.bytes_skipped for r in reports)
    combined.throughput = (combined.bytes_written + combined.bytes_skipped) / max(
        combined.elapsed, 1e-9)
    combined.warnings = [f"{r.target}: {w}" for r in reports for w in r.warnings]
    combined.boot_fixups_failed = any(r.boot_fixups_failed for r in reports)
    verified = [r.verified for r in reports]
    combined.verified = None if None in verified else all(verified)
    combined.steps = [StepResult(s.name, s.status, f"{r.target}: {s.detail}".rstrip(": "))
                      for r in reports for s in r.steps]
    combined.partitions = dict(reports[-1].partitions) if reports[-1].target == \
        prepared.plan.target.path else {}
    combined.disks = [json.loads(r.to_json()) for r in reports]
    return combined


def prepare_backup(
    disks: str | list[str],
    repo: RepositoryWriter | Where,
    options: BackupOptions | None = None,
    runner: CommandRunner | None = None,
    break_lock: bool = False,
) -> PreparedBackup:
    """Open the repository for writing (created when missing; a share mounted read-write
    until the backup has run; its writer lock taken, or broken with *break_lock*), then
    every check that can refuse the backup and the read-only probe of the source
    disk(s)."""
    runner = runner or CommandRunner()
    held = contextlib.ExitStack()
    try:
        if isinstance(repo, str | os.PathLike | Location):
            with breaking_lock(break_lock):
                writer = held.enter_context(open_repository(repo, write=True,
                                                            runner=runner))
        else:
            writer = repo
        prepared = _prepare_backup(disks, writer, options or BackupOptions(), runner)
    except BaseException as exc:
        # the refusal reaches the repository's opener: one it created is taken away
        held.__exit__(type(exc), exc, exc.__traceback__)
        raise
    prepared.held = held
    return prepared


def run_backup(
    prepared: PreparedBackup,
    sink: Sink = null_sink,
    cancel: threading.Event | None = None,
) -> BackupResult:
    """Capture the disk(s) and publish the image; the repository is let go of after."""
    with contextlib.closing(prepared):
        return _run_backup(prepared, sink, cancel)


# -- browse an image without restoring it (docs/BROWSE.md) ---------------------------

ImageMount = _browse.ImageMount
PartitionView = _browse.PartitionView
ExtractResult = _browse.ExtractResult
CopyReport = _browse.CopyReport
#: copy files and folders out of a mounted image, metadata kept where the target allows
copy_out = _browse.copy_out


@contextlib.contextmanager
def opened_image(where: RepositoryReader | Where, image_ref: str,
                 runner: CommandRunner | None = None,
                 trust: TrustStore | None = None) -> Iterator[tuple[RepositoryReader, Manifest]]:
    """The repository open (a share mounted) and the image's manifest for the block; its
    signature is checked as for a restore (a bad one, or with trusted keys an image they
    did not sign, is refused)."""
    with contextlib.ExitStack() as stack:
        if isinstance(where, RepositoryReader):
            reader = where
        else:
            reader = stack.enter_context(open_repository(where, runner=runner))
        manifest, _signature = _load_trusted(reader, image_ref, trust)
        yield reader, manifest


mount_log_path = _browse.log_path


def unmount_image(where: str | os.PathLike[str], runner: CommandRunner | None = None) -> bool:
    """Take down what ``rescue mount`` put on *where*; False when nothing was there."""
    return _browse.unmount_image(where, runner)


def extract_files(repo: RepositoryReader, manifest: Manifest, path: str,
                  to: str | os.PathLike[str], partition: int | None = None,
                  overwrite: bool = False, runner: CommandRunner | None = None,
                  report: Any = None) -> ExtractResult:
    """Copy a file or folder out of the image, metadata kept (see rescue.engine.browse)."""
    return _browse.extract(repo, manifest, path, to, partition, overwrite, runner, report)


# -- Wi-Fi (docs/WIFI.md): the CLI and the wizard reach rescue.net only through here ----

def wifi(runner: CommandRunner | None = None) -> _wifi.Wifi:
    """Wi-Fi on this machine (interfaces, scan, join, status) through wpa_supplicant."""
    return _wifi.Wifi(runner or CommandRunner())


Wifi = _wifi.Wifi
WifiError = _wifi.WifiError
WifiNetwork = _wifi.Network
WifiStatus = _wifi.Status
WifiJoin = _wifi.JoinResult
show_ssid = _wifi.show_ssid
