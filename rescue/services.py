"""The facade the CLI and the wizard use: prepare (every refusal check, no writes) then
run (the side effects, reported as events). Nothing here imports textual."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rescue.devices.target import probe_target
from rescue.engine.backup import BackupOptions, BackupResult, PreparedBackup, prepare_backup
from rescue.engine.backup import run_backup as _run_backup
from rescue.engine.restore import Restorer, RestoreReport, check_chunks_present
from rescue.events import Sink, null_sink
from rescue.hardware.compat import Verdict, compare
from rescue.hardware.profile import HardwareProfile, collect_profile, firmware_type
from rescue.image.manifest import Manifest
from rescue.image.repository import RepositoryReader, is_url, open_repository
from rescue.plan.restore import RestoreOptions, RestorePlan, plan_restore
from rescue.runner import CommandRunner

__all__ = [
    "BackupOptions",
    "PreparedBackup",
    "PreparedRestore",
    "RestoreOptions",
    "prepare_backup",
    "prepare_restore",
    "run_backup",
    "run_restore",
]


def hardware_verdict(manifest: Manifest, target_disk: str | None = None) -> Verdict:
    """The image's recorded hardware against this machine (with *target_disk* as its
    future system disk)."""
    return compare(HardwareProfile.from_dict(manifest.hardware),
                   collect_profile(boot_disk=target_disk))


@dataclass
class PreparedRestore:
    repo: RepositoryReader
    manifest: Manifest
    plan: RestorePlan


def prepare_restore(
    repo_path: str,
    image_ref: str,
    target_disk: str,
    options: RestoreOptions | None = None,
    runner: CommandRunner | None = None,
) -> PreparedRestore:
    """Open the image (its manifest hash checked), probe the target read-only and plan.
    Raises a RescueError with a sentence for the technician on any refusal."""
    runner = runner or CommandRunner()
    repo = open_repository(repo_path)
    manifest = repo.load_manifest(image_ref)
    # a repository on a web server lives on no local disk that needs protecting
    target = probe_target(target_disk, None if is_url(repo_path) else repo_path, runner)
    verdict = hardware_verdict(manifest, target_disk)
    plan = plan_restore(manifest, target, options or RestoreOptions(), verdict.to_dict(),
                        firmware=firmware_type())
    check_chunks_present(repo, manifest)
    return PreparedRestore(repo, manifest, plan)


def run_restore(
    prepared: PreparedRestore,
    sink: Sink = null_sink,
    cancel: threading.Event | None = None,
    runner: CommandRunner | None = None,
    report_path: str | None = None,
) -> RestoreReport:
    """Carry out the plan. The report (JSON) is written to *report_path* whether the
    restore succeeds or fails."""
    restorer = Restorer(prepared.repo, prepared.manifest, prepared.plan,
                        runner or CommandRunner(), sink, cancel, report_path=report_path)
    return restorer.run()


def run_backup(
    prepared: PreparedBackup,
    sink: Sink = null_sink,
    cancel: threading.Event | None = None,
) -> BackupResult:
    return _run_backup(prepared, sink, cancel)
