"""Boot fix-ups: run the steps ``rescue.plan.fixups.plan_fixups`` chose, on a restored disk.

Called by the restore executor after the data is written, the partition table re-read
and the filesystems grown. Every external command goes through ``ctx.runner``; progress
and findings go to ``ctx.sink``; each step ends in a :class:`FixupResult` (done, skipped
or failed, with a sentence) for the restore report. A failing step does not stop the
others: the report says honestly what was and was not done.

The package, one module per thing it owns:

* ``context``   what a step is given (:class:`FixupContext`) and gives back
  (:class:`FixupResult`; :class:`NothingToFix` skips, :class:`StepFailed` fails);
* ``session``   the restored system: its root mounted once (partition, btrfs subvolume or
  linear LV), its /boot, the chroot, what blkid says of each partition and LV;
* ``rootfiles`` every write, new folder and removal under the restored root (looked up
  through open folders, never out of the restored system's filesystems);
* ``specs``     /etc/fstab lines and whether a spec (``UUID=``, a device or LV name) names
  a volume (pure);
* one module per fix-up, holding its implementation: ``bios`` (``bios-boot-code``),
  ``esp`` (``uefi-fallback-loader``, and reading/writing the ESP with mtools), ``nvram``
  (``uefi-nvram-entry``), ``initramfs`` (``initramfs-drivers``), ``fstab``
  (``fstab-check``, with ``grub`` for GRUB's ``root=``);
* this module: :data:`HANDLERS`, the one table from a registered fix-up's name to its
  implementation, and :func:`run_fixups`.

Adding a boot fix-up: register it in ``rescue.plan.fixups`` (its name constant, its title
marked ``N_()``, its decision, and a line in ``FIXUPS``: the registry is the one home of
the names, titles and order; ``--skip-fixup`` and the plan follow from it), write its
implementation ``fix_<what>(s: Session, step: FixupStep) -> FixupResult`` in a module of
its own here (raise :class:`StepFailed` or :class:`NothingToFix`, wrap sentences in
``_()``), and map the name to it in :data:`HANDLERS` below.
tests/unit/test_fixups.py fails while the registry and this table disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rescue.engine.bootfix.bios import fix_bios_boot_code
from rescue.engine.bootfix.context import (
    DONE,
    FAILED,
    SKIPPED,
    FixupContext,
    FixupResult,
    NothingToFix,
    StepFailed,
)
from rescue.engine.bootfix.esp import choose_loader, fix_uefi_fallback
from rescue.engine.bootfix.fstab import fix_fstab
from rescue.engine.bootfix.grub import check_boot_loader_root
from rescue.engine.bootfix.initramfs import (
    fix_initramfs,
    initramfs_tools_modules_setting,
    module_status,
)
from rescue.engine.bootfix.nvram import fix_uefi_nvram, parse_efibootmgr
from rescue.engine.bootfix.session import LogicalVolume, Session
from rescue.engine.bootfix.specs import read_fstab, spec_key, spec_matches
from rescue.errors import RescueError
from rescue.events import LogMessage, StageFinished, StageStarted
from rescue.i18n import _
from rescue.plan import fixups
from rescue.plan.fixups import FixupStep

Handler = Callable[[Session, FixupStep], FixupResult]

# Each fix-up registered in rescue.plan.fixups.FIXUPS -> its implementation.
HANDLERS: dict[str, Handler] = {
    fixups.BIOS_BOOT_CODE: fix_bios_boot_code,
    fixups.UEFI_FALLBACK_LOADER: fix_uefi_fallback,
    fixups.UEFI_NVRAM_ENTRY: fix_uefi_nvram,
    fixups.INITRAMFS_DRIVERS: fix_initramfs,
    fixups.FSTAB_CHECK: fix_fstab,
}


def run_fixups(ctx: FixupContext, steps: list[FixupStep]) -> list[FixupResult]:
    """Run *steps* in order on the restored disk; never raises for a failed step."""
    results: list[FixupResult] = []
    with Session(ctx) as session:
        for step in steps:
            results.append(_run_one(session, step))
    return results


def _run_one(session: Session, step: FixupStep) -> FixupResult:
    ctx = session.ctx
    stage = f"fixup-{step.name}"
    ctx.sink(StageStarted(stage, step.display_title))
    started = time.monotonic()
    if step.skip:
        result = FixupResult(step.name, SKIPPED, _("Skipped by option; nothing was changed."))
    else:
        handler = HANDLERS.get(step.name)
        if handler is None:
            result = FixupResult(step.name, FAILED, _("Unknown boot fix-up '{name}'.").format(
                name=step.name))
        else:
            try:
                result = handler(session, step)
            except NothingToFix as exc:
                result = FixupResult(step.name, SKIPPED, str(exc))
            except RescueError as exc:
                result = FixupResult(step.name, FAILED, str(exc))
            except OSError as exc:
                result = FixupResult(step.name, FAILED, f"{exc.strerror or exc}: {exc.filename}")
    level = "error" if result.status == FAILED else "info"
    ctx.sink(LogMessage(level, f"{step.name}: {result.status} - {result.detail}"))
    ctx.sink(StageFinished(stage, time.monotonic() - started))
    return result


__all__ = [
    "DONE",
    "FAILED",
    "HANDLERS",
    "SKIPPED",
    "FixupContext",
    "FixupResult",
    "LogicalVolume",
    "NothingToFix",
    "Session",
    "StepFailed",
    "check_boot_loader_root",
    "choose_loader",
    "initramfs_tools_modules_setting",
    "module_status",
    "parse_efibootmgr",
    "read_fstab",
    "run_fixups",
    "spec_key",
    "spec_matches",
]
