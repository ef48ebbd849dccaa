"""The target disk, restore options and the hardware compatibility verdict.

An image of several disks gets one such screen per disk of the image, in its order: the
first carries the options and the verdict, the next ones only the choice of disk (a disk
chosen for an earlier one is not offered again)."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Button, Checkbox, DataTable, Static

from rescue.i18n import _, format_size
from rescue.wizard.mediawatch import MediaWatch
from rescue.wizard.model import DiskEntry, VerdictView
from rescue.wizard.ports import describe_error
from rescue.wizard.screens.base import WizardScreen
from rescue.wizard.texts import storage_note_text, verdict_text
from rescue.wizard.widgets import Check


def reason_text(disk: DiskEntry) -> str:
    if not disk.eligible:
        return _("Protected: {reason}").format(reason=disk.reason)
    notes = [storage_note_text(kind, detail) for kind, detail in disk.notes]
    return _("Available") + (f" ({'; '.join(notes)})" if notes else "")


class TargetScreen(WizardScreen):
    def __init__(self, disk_index: int = 0) -> None:
        super().__init__()
        self.disk_index = disk_index  # which of the image's disks this screen places
        self.disks: list[DiskEntry] = []
        self.loaded = False
        self.error = ""
        self.notice = ""  # what a hot-plug did to the choice, until the next choice
        self.reloaded = False  # the disks were listed once already
        # a disk smaller than the image's: what the restore will shrink (path -> text),
        # or why it does not fit even so; looked up when such a disk is chosen
        self.shrinks: dict[str, str] = {}
        self.too_small: dict[str, str] = {}
        self.media = MediaWatch(self, lambda changed: self.services.watch_media(changed),
                                self.load)

    @property
    def disk_count(self) -> int:
        return self.state.image.disk_count if self.state.image else 1

    def heading(self) -> str:
        if self.disk_count > 1:
            return _("Target disk {n} of {count}").format(n=self.disk_index + 1,
                                                         count=self.disk_count)
        return _("Target disk and options")

    def prompt(self) -> str:
        image = self.state.image
        if self.disk_count == 1 or image is None:
            return _("Choose the disk to restore to")
        volumes = ", ".join(
            f"{v.filesystem or '-'}{' ' + repr(v.label) if v.label else ''}"
            for v in image.volumes if v.disk == self.disk_index) or "-"
        return _("Choose the disk for the image's disk {n} ({size}: {volumes})").format(
            n=self.disk_index + 1, size=format_size(image.disk_sizes[self.disk_index]),
            volumes=volumes)

    @property
    def chosen(self) -> DiskEntry | None:
        if self.disk_index == 0:
            return self.state.target
        extra = self.state.other_targets
        return extra[self.disk_index - 1] if len(extra) >= self.disk_index else None

    def choose(self, disk: DiskEntry | None) -> None:
        if self.disk_index == 0:
            self.state.target = disk
            return
        del self.state.other_targets[self.disk_index - 1:]
        if disk is not None:
            self.state.other_targets.append(disk)

    def taken(self) -> dict[str, int]:
        """Disks chosen on the earlier screens -> the image disk (1-based) they received."""
        earlier = self.state.targets()[: self.disk_index]
        return {d.path: n for n, d in enumerate(earlier, start=1)}

    def usable(self, disk: DiskEntry) -> bool:
        return (disk.eligible and disk.path not in self.taken()
                and disk.path not in self.too_small)

    def smaller(self, disk: DiskEntry) -> bool:
        image = self.state.image
        if image is None:
            return False
        sizes = image.disk_sizes or (image.disk_bytes,)
        return len(sizes) > self.disk_index and disk.size_bytes < sizes[self.disk_index]

    def body(self) -> ComposeResult:
        first = self.disk_index == 0
        with Vertical(id="body"):
            yield Static(self.prompt(), classes="heading")
            table: DataTable[str] = DataTable(id="disks", cursor_type="row")
            table.add_columns(_("Disk"), _("Size"), _("State"), _("Model"), _("Serial"))
            yield table
            yield Static(self.selection_text(), id="selection")
            if first:
                yield Check(_("Format and repartition disks"),
                            value=self.state.options.repartition, id="repartition")
                yield Check(_("Verify after restore"), value=self.state.options.verify,
                            id="verify")
                yield Check(_("Grow the largest partition to fill the disk"),
                            value=self.state.options.grow, id="grow")
                force = Check(_("Restore anyway (the restored system may not start)"),
                              value=self.state.options.force, id="force")
                force.display = self.blocked()
                yield force
                yield Static(verdict_text(self.state.verdict), id="verdict")
        yield self.buttons(
            Button(_("Back"), id="back"),
            Button(_("Next"), id="next", variant="primary", disabled=not self.ready()),
        )

    def ready(self) -> bool:
        chosen = self.chosen
        return (chosen is not None and self.state.options.repartition
                and (not self.smaller(chosen) or chosen.path in self.shrinks))

    def selection_text(self) -> str:
        if self.error:
            return self.error
        if not self.loaded:
            return _("Looking for disks…")
        if not any(self.usable(d) for d in self.disks):
            return _("No disk can receive the image. Connect a disk at least as large "
                     "as the image's data and it will appear here.")
        if not self.state.options.repartition:
            return _("The target disk must get the image's partition table: tick "
                     "'Format and repartition disks' to continue.")
        target = self.chosen
        if target is None:
            return self.notice or _("Several disks are available: choose one and press "
                                    "Enter.")
        selected = _("Selected: {disk} ({model}, {size})").format(
            disk=target.path, model=target.model or "-", size=format_size(target.size_bytes))
        if self.smaller(target):
            note = self.shrinks.get(target.path)
            if note is None:
                return selected + "\n" + _("It is smaller than the image's disk: checking "
                                           "whether the data fits…")
            return selected + "\n" + note
        return selected

    def check_fit(self, disk: DiskEntry) -> None:
        """A disk smaller than the image's was chosen: find out what shrinks."""
        if self.smaller(disk) and disk.path not in self.shrinks:
            self.run_worker(lambda: self._fit(disk), thread=True, group="fit")

    def _fit(self, disk: DiskEntry) -> None:
        image = self.state.image
        assert image is not None
        try:
            note = self.services.shrink_note(image, disk, self.disk_index) or _(
                "The image's partitions fit on it as they are.")
            error = ""
        except Exception as exc:  # noqa: BLE001 - TargetTooSmallError: its sentence
            note, error = "", describe_error(exc)
        self.app.call_from_thread(self.fitted, disk, note, error)

    def fitted(self, disk: DiskEntry, note: str, error: str) -> None:
        if error:
            self.too_small[disk.path] = error
            chosen = self.chosen
            if chosen is not None and chosen.path == disk.path:
                self.choose(None)
                self.notice = error
        else:
            self.shrinks[disk.path] = note
        self.fill()

    def on_mount(self) -> None:
        self.choose(None)
        self.load()
        if self.disk_index == 0:
            self.load_verdict()
        self.query_one("#disks", DataTable).focus()
        self.media.start()

    def on_unmount(self) -> None:
        self.media.stop()

    def on_screen_resume(self) -> None:
        self.media.resume()

    def refill(self) -> None:
        self.fill()

    @work(thread=True, exclusive=True, group="disks")
    def load(self) -> None:
        try:
            disks, error = self.services.list_disks(self.state.image, "target"), ""
        except Exception as exc:  # noqa: BLE001
            disks, error = [], describe_error(exc)
        self.app.call_from_thread(self.loaded_disks, disks, error)

    @work(thread=True, exclusive=True, group="verdict")
    def load_verdict(self) -> None:
        image, target = self.state.image, self.state.target
        if image is None:
            return
        try:
            verdict = self.services.compatibility(image, target)
        except Exception as exc:  # noqa: BLE001
            verdict = VerdictView(level="unknown", summary=describe_error(exc))
        self.app.call_from_thread(self.loaded_verdict, verdict, target)

    def blocked(self) -> bool:
        return self.state.verdict is not None and self.state.verdict.level == "blocked"

    def loaded_verdict(self, verdict: VerdictView, target: DiskEntry | None) -> None:
        if target != self.state.target or self.disk_index != 0:
            return  # an answer for an earlier choice of disk
        self.state.verdict = verdict
        self.query_one("#force", Check).display = self.blocked()
        if not self.blocked():
            self.state.options.force = False
        self.query_one("#verdict", Static).update(verdict_text(verdict))

    def loaded_disks(self, disks: list[DiskEntry], error: str) -> None:
        self.disks, self.error, self.loaded = disks, error, True
        chosen = self.chosen
        if chosen is not None:  # a reload after a hot-plug: is the chosen disk still it?
            now = next((d for d in disks if d.path == chosen.path), None)
            if now is None or not now.same_disk(chosen) or not self.usable(now):
                self.choose(None)
                self.notice = _(
                    "{disk} ({model}, {size}) was removed or changed; choose the target "
                    "again.").format(disk=chosen.path, model=chosen.model or "-",
                                     size=format_size(chosen.size_bytes))
                self.app.notify(self.notice, severity="warning", timeout=15)
                if self.disk_index == 0:
                    self.load_verdict()
            elif now != chosen:
                self.choose(now)  # the same disk; what is on it may have changed
        usable = [d for d in disks if self.usable(d)]
        first, self.reloaded = not self.reloaded, True
        if first and self.chosen is None and len(usable) == 1:
            # unambiguous: pre-selected (on the first look only: a disk that was just
            # plugged in is never chosen for the technician)
            self.choose(usable[0])
            if self.disk_index == 0:
                self.load_verdict()  # now for this disk's bus and driver
        if self.chosen is not None:
            self.check_fit(self.chosen)
        self.fill()

    def fill(self) -> None:
        table = self.query_one("#disks", DataTable)
        row = table.cursor_row  # kept where nothing is chosen (a refused disk stays under it)
        table.clear()
        chosen, taken = self.chosen, self.taken()
        for disk in self.disks:
            mark = "●" if chosen and disk.path == chosen.path else " "
            state = (_("Chosen for the image's disk {n}").format(n=taken[disk.path])
                     if disk.path in taken else reason_text(disk))
            table.add_row(
                f"{mark} {disk.name}", format_size(disk.size_bytes), state,
                disk.model or "-", disk.serial or "-", key=disk.path,
            )
        paths = [d.path for d in self.disks]
        if chosen is not None and chosen.path in paths:
            table.move_cursor(row=paths.index(chosen.path))
        elif paths:
            table.move_cursor(row=min(max(row, 0), len(paths) - 1))
        self.query_one("#selection", Static).update(self.selection_text())
        self.query_one("#next", Button).disabled = not self.ready()

    @on(DataTable.RowHighlighted, "#disks")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        disk = self.disk_at(event.cursor_row)
        if disk is not None and not self.usable(disk):
            reason = disk.reason if not disk.eligible else self.too_small.get(disk.path) or _(
                "it receives the image's disk {n}").format(n=self.taken().get(disk.path, 0))
            lines = [_("{disk} cannot be chosen: {reason}").format(
                disk=disk.path, reason=reason)]
            if not any(self.usable(d) for d in self.disks):
                lines.insert(0, self.selection_text())
            self.query_one("#selection", Static).update("\n".join(lines))
        else:
            self.query_one("#selection", Static).update(self.selection_text())

    def disk_at(self, row: int) -> DiskEntry | None:
        return self.disks[row] if 0 <= row < len(self.disks) else None

    @on(DataTable.RowSelected, "#disks")
    def selected(self, event: DataTable.RowSelected) -> None:
        disk = self.disk_at(event.cursor_row)
        if disk is None or not self.usable(disk):
            return
        self.choose(disk)
        self.notice = ""
        self.check_fit(disk)
        if self.disk_index == 0:
            self.load_verdict()
        self.fill()
        self.query_one("#next", Button).focus()

    @on(Checkbox.Changed, "#repartition")
    def repartition(self, event: Checkbox.Changed) -> None:
        self.state.options.repartition = event.value
        self.fill()

    @on(Checkbox.Changed, "#force")
    def force(self, event: Checkbox.Changed) -> None:
        self.state.options.force = event.value

    @on(Checkbox.Changed, "#grow")
    def grow(self, event: Checkbox.Changed) -> None:
        self.state.options.grow = event.value

    @on(Checkbox.Changed, "#verify")
    def verify(self, event: Checkbox.Changed) -> None:
        self.state.options.verify = event.value

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.action_back()

    @on(Button.Pressed, "#next")
    def next(self) -> None:
        if self.ready():
            self.wizard.advance(self)

    def repeat(self) -> TargetScreen | None:
        """The screen for the image's next disk, until every disk has a target."""
        if self.disk_index + 1 < self.disk_count:
            return TargetScreen(self.disk_index + 1)
        return None
