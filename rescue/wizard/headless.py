"""Run an unattended job (no keyboard): the wizard's steps with answers given up front.

Progress goes to the console; the run ends with a restart or power-off if asked. No
textual import here: this also runs on a serial console or with no terminal at all.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

from rescue import i18n
from rescue.errors import ImageNotFoundError, TargetRefusedError, UsageError
from rescue.events import Broadcast, Sink
from rescue.i18n import _, format_datetime, format_size
from rescue.repo import FOLDER, Location
from rescue.terminal import TerminalProgress
from rescue.unattended import Answers, validate
from rescue.wizard.model import DiskEntry, ImageEntry, Outcome, RestoreChoices
from rescue.wizard.ports import Services

NETWORK_WAIT = 120.0  # seconds a web address may take to answer after boot (DHCP, links)
NETWORK_RETRY = 5.0


def find_images(services: Services, repos: list[str], say: Callable[[str], None],
                wait: float = NETWORK_WAIT) -> list[ImageEntry]:
    """Search; while a web address or share given does not answer yet (the network
    comes up after the live system starts), try again for up to *wait* seconds. When
    *repos* name locations, only they are searched: no attached disk is mounted, and
    only their images are returned (see :func:`only_named`)."""
    deadline = time.monotonic() + wait
    media = not repos
    images = services.find_images(repos, media)
    said = ""
    remote = any(Location.parse(r).kind != FOLDER for r in repos)
    while remote and time.monotonic() < deadline:
        problems = services.search_problems()
        if not problems:
            break
        if problems[0] != said:
            said = problems[0]
            say(_("Waiting for the network: {problem}").format(problem=said))
        time.sleep(NETWORK_RETRY)
        images = services.find_images(repos, media)
    for problem in services.search_problems():
        say(problem)
    return only_named(images, repos)


def only_named(images: list[ImageEntry], repos: list[str]) -> list[ImageEntry]:
    """The images of the locations *repos* names; all of them when it names none. An
    image the search found on an attached disk (an old stick, the target disk's own
    leftovers) is not one of them, unless it is in a folder that *repos* names."""
    if not repos:
        return images
    folders = {os.path.realpath(where.address) for where in map(Location.parse, repos)
               if where.kind == FOLDER}
    return [i for i in images
            if not i.medium or os.path.realpath(i.location) in folders]


def place(image: ImageEntry) -> str:
    """Where an image was found, as the technician reads it."""
    return image.medium or image.shown or image.location


def pick_image(images: list[ImageEntry], ref: str, origin: str,
               repos: list[str] | None = None) -> ImageEntry:
    """The image *ref* names ('latest', an id or a unique id prefix), or a clear error.
    *repos*: the locations the answers name (searched alone)."""
    if not images:
        if repos:
            raise ImageNotFoundError(_(
                "{origin}: no system image was found in {locations}; images on attached disks "
                "are not used when the answers name a location."
            ).format(origin=origin, locations=", ".join(repos)))
        raise ImageNotFoundError(_(
            "{origin}: no system image was found on any attached disk or in the repositories "
            "given."
        ).format(origin=origin))
    if ref == "latest":
        computers = sorted({i.computer for i in images})
        if len(computers) > 1:
            raise UsageError(_(
                "{origin}: image=latest is ambiguous: images of {count} computers were found "
                "({computers}). Name the image id or the repository."
            ).format(origin=origin, count=len(computers), computers=", ".join(computers)))
        locations = {i.location for i in images}
        if len(locations) > 1:
            raise UsageError(_(
                "{origin}: image=latest is ambiguous: images of {computer} were found in "
                "{count} places ({places}). Name the repository (repo=) or the image id."
            ).format(origin=origin, computer=computers[0], count=len(locations),
                     places="; ".join(sorted({place(i) for i in images}))))
        return max(images, key=lambda i: i.created)
    matches = [i for i in images if i.id == ref] or [i for i in images if i.id.startswith(ref)]
    if not matches:
        raise ImageNotFoundError(_("{origin}: no image '{ref}' was found.").format(
            origin=origin, ref=ref))
    if len({(i.location, i.id) for i in matches}) > 1:
        raise UsageError(_(
            "{origin}: image '{ref}' matches {count} images; give more of the id or a single "
            "repository."
        ).format(origin=origin, ref=ref, count=len(matches)))
    return matches[0]


def pick_disk(disks: list[DiskEntry], ref: str, origin: str, purpose: str) -> DiskEntry:
    """The disk *ref* names (path, by-id link or kernel name); never a guess."""
    real = os.path.realpath(ref) if ref.startswith("/") else f"/dev/{ref}"
    for disk in disks:
        if ref in (disk.path, disk.by_id, disk.name) or real == disk.path:
            if purpose == "target" and not disk.eligible:
                raise TargetRefusedError(_(
                    "{origin}: {disk} cannot be restored to: {reason}."
                ).format(origin=origin, disk=disk.path, reason=disk.reason))
            return disk
    for disk in disks if purpose == "target" else ():
        # sda1, nvme0n1p1, loop0p1 (as rescue.devices.blockdev.partition_node names them)
        sep = "p" if disk.path[-1:].isdigit() else ""
        if re.fullmatch(re.escape(disk.path + sep) + r"\d+", real):
            raise TargetRefusedError(_(
                "{path} is a partition of {disk}; only a whole disk can be a restore target "
                "(the restore replaces its partition table). Name the disk itself; nothing was "
                "written."
            ).format(path=real, disk=disk.path))
    names = ", ".join(d.path for d in disks) or "none"
    raise UsageError(_("{origin}: the disk {ref} was not found (disks present: {names})."
                       ).format(origin=origin, ref=ref, names=names))


def split_disks(text: str) -> list[str]:
    """Disk names from one answer: several (a multi-disk image) are separated by commas."""
    return [part.strip() for part in text.split(",") if part.strip()]


def run(answers: Answers, services: Services, out: IO[str] | None = None,
        sink: Sink | None = None) -> Outcome:
    """Carry out *answers* (validated first); raises RescueError with the reason."""
    out = out or sys.stdout
    if answers.lang in i18n.LANGUAGES:
        i18n.set_language(answers.lang)  # the checks below already speak it
    validate(answers)
    i18n.set_language(answers.lang)
    i18n.set_format(answers.format or i18n.DEFAULT_FORMAT.get(answers.lang, "en_US"))

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    say(_("rescue: unattended {action} ({origin})").format(
        action=answers.action, origin=answers.origin))
    if answers.keymap:
        services.apply_keymap(answers.keymap)
    progress = sink or Broadcast([TerminalProgress(out)])
    cancel = threading.Event()
    if answers.action == "restore":
        say(_("Searching for system images…"))
        images = find_images(services, answers.repos, say)
        image = pick_image(images, answers.image, answers.origin, answers.repos)
        say(_("Image: {computer}, {when}, {os} ({id})").format(
            computer=image.computer, when=format_datetime(image.created), os=image.os_name,
            id=image.id))
        disks = services.list_disks(image, "target")
        refs = split_disks(answers.target)
        if len(refs) != image.disk_count:
            raise UsageError(_(
                "{origin}: image {image} holds {count} disk(s); name one target for each, in "
                "the image's order, separated by commas "
                "(target=/dev/disk/by-id/A,/dev/disk/by-id/B); {given} given."
            ).format(origin=answers.origin, image=image.id, count=image.disk_count,
                     given=len(refs)))
        targets = [pick_disk(disks, ref, answers.origin, "target") for ref in refs]
        for disk in targets:
            say(_("Target: {path} {model} {size}").format(
                path=disk.path, model=disk.model, size=format_size(disk.size_bytes)))
        options = RestoreChoices(repartition=True, grow=answers.grow, verify=answers.verify,
                                 force=answers.force)
        prepared = services.prepare_restore(image, targets[0], options, targets[1:])
        for line in prepared.lines:
            say("  " + line)
        holding = [d.path for d in targets if d.has_data]
        if (prepared.loses_data or holding) and not answers.confirm:
            raise UsageError(_(
                "{origin}: {disks} holds partitions or data that the restore would erase; "
                "confirm with rescue.confirm=yes (job file: confirm = true)."
            ).format(origin=answers.origin, disks=", ".join(holding or [targets[0].path])))
        outcome = services.run_restore(prepared, progress, cancel)
    else:
        disks = services.list_disks(None, "source")
        sources = [pick_disk(disks, ref, answers.origin, "source")
                   for ref in split_disks(answers.source)]
        name = answers.name or "+".join(d.name for d in sources)
        prepared = services.prepare_backup(sources, answers.repos[0], name)
        for line in prepared.lines:
            say("  " + line)
        outcome = services.run_backup(prepared, progress, cancel)
    if outcome.ok:
        say(_("Done.") + (" " + _("Verification: every restored byte matches the image.")
                          if outcome.verified else ""))
        for line in outcome.details:
            say("  " + line)
        for warning in outcome.warnings:
            say(_("Warning:") + " " + warning)
        if answers.after in ("reboot", "poweroff"):
            say(_("Restarting…") if answers.after == "reboot" else _("Shutting down…"))
            services.power(answers.after)
    return outcome
