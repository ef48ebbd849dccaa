"""The summary: what will be restored (or backed up), and Finish."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Button, Static

from rescue.errors import RepositoryLockedError
from rescue.i18n import _, format_datetime, format_size
from rescue.wizard.mediawatch import MediaWatch
from rescue.wizard.model import DiskEntry, Prepared
from rescue.wizard.ports import describe_error
from rescue.wizard.screens.base import WizardScreen
from rescue.wizard.screens.dialogs import ConfirmDialog, TypedConfirmDialog
from rescue.wizard.texts import describe_location, verdict_text


class SummaryScreen(WizardScreen):
    @classmethod
    def for_flow(cls, kind: str) -> SummaryScreen:
        return cls(kind)

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind  # "restore" | "backup"
        self.prepared: Prepared | None = None
        self.error = ""
        self.media = MediaWatch(self, lambda changed: self.services.watch_media(changed),
                                self.recheck)  # a disk pulled or swapped: no Finish
        self.locked = False  # the backup's repository is held by another writer's lock
        self.break_lock = False  # the technician said that writer is gone

    def heading(self) -> str:
        return _("Summary") if self.kind == "restore" else _("Backup summary")

    def body(self) -> ComposeResult:
        with VerticalScroll(id="body"):
            yield Static(self.text(), id="summary")
            yield Static(self.status_text(), id="status")
        unlock = Button(_("Break the lock"), id="break-lock", variant="error")
        unlock.display = self.locked
        yield self.buttons(
            Button(_("Back"), id="back"),
            unlock,
            Button(_("Finish"), id="finish", variant="primary", disabled=self.prepared is None),
        )

    def text(self) -> str:
        return self.restore_text() if self.kind == "restore" else self.backup_text()

    def restore_text(self) -> str:
        st = self.state
        image, targets = st.image, st.targets()
        assert image is not None and targets
        several = len(targets) > 1
        out = [
            f"[b]{_('System image')}[/b]",
            "  " + _("Date and time: {when}").format(when=format_datetime(image.created)),
            "  " + _("Computer: {name}").format(name=image.computer),
            "  " + _("Operating system: {os}").format(os=image.os_name or "-"),
            "  " + _("Location: {where}").format(where=describe_location(image)),
        ]
        if image.signature:
            out.append("  " + _("Signature: {verdict}").format(verdict=image.signature))
        out += [
            f"[b]{_('Volumes to restore')}[/b]",
        ]
        for v in image.volumes:
            label = f"'{v.label}'" if v.label else ""
            where = _("Disk {n}").format(n=v.disk + 1) + ", " if several else ""
            out.append(
                "  " + where + _("Partition {n}").format(n=v.number)
                + f"  {format_size(v.size_bytes):>9}  {v.filesystem or '-':<6} {label}"
            )
        for n, disk in enumerate(targets, start=1):
            title = _("Target disk") if not several else _(
                "Target disk for the image's disk {n}").format(n=n)
            out += [
                f"[b]{title}[/b]",
                f"  {disk.path}  {disk.model or '-'}  "
                + _("serial {serial}").format(serial=disk.serial or "-")
                + f"  {format_size(disk.size_bytes)}",
            ]
            if disk.partitions:
                out.append("  [b red]" + _("Everything on this disk will be erased:") + "[/]")
                out += [f"    {p}" for p in disk.partitions]
            else:
                out.append("  " + _("The disk is empty: nothing will be lost."))
        opts = st.options
        for label, value in ((_("Format and repartition disks"), opts.repartition),
                             (_("Verify after restore"), opts.verify),
                             (_("Grow the largest partition to fill the disk"), opts.grow)):
            out.append(f"  {label}: {_('yes') if value else _('no')}")
        if opts.force:
            out.append("  [b red]" + _("Restore anyway (the restored system may not start)")
                       + "[/]")
        out.append(verdict_text(st.verdict))
        return "\n".join(out)

    def backup_text(self) -> str:
        st = self.state
        out = [f"[b]{_('Disk to back up') if len(st.sources) < 2 else _('Disks to back up')}[/b]"]
        for disk in st.sources:
            out.append(f"  {disk.path}  {disk.model or '-'}  {format_size(disk.size_bytes)}")
            out += [f"    {p}" for p in disk.partitions]
        out += [
            f"[b]{_('Destination')}[/b]",
            f"  {st.destination}",
            "  " + _("Name: {name}").format(name=st.backup_name or "-"),
        ]
        return "\n".join(out)

    def status_text(self) -> str:
        if self.error and self.locked:
            return "[b red]" + _("This cannot be done:") + "[/] " + self.error + "\n" + _(
                "If that backup is not running any more (its computer was switched off or "
                "restarted), press 'Break the lock'.")
        if self.error:
            return "[b red]" + _("This cannot be done:") + "[/] " + self.error
        if self.prepared is None:
            return _("Checking the plan…")
        lines = []
        image = self.state.image
        signed = self.prepared.signature
        if self.kind == "restore" and signed and (image is None or signed != image.signature):
            lines.append(_("Signature: {verdict}").format(verdict=signed))
        lines += [f"[b]{_('Plan')}[/b]", *("  " + line for line in self.prepared.lines)]
        lines.append(_("Press Finish to start."))
        return "\n".join(lines)

    def on_mount(self) -> None:
        self.prepare()
        self.query_one("#back", Button).focus()
        self.media.start()

    def on_unmount(self) -> None:
        self.media.stop()

    def on_screen_resume(self) -> None:
        self.media.resume()

    @work(thread=True, exclusive=True, group="recheck")
    def recheck(self) -> None:
        """Disks came or went: are the disks this summary names still the same? (The
        engine checks the target's identity again before its first write; this keeps a
        stale summary from being finished at all.)"""
        st = self.state
        chosen = st.targets() if self.kind == "restore" else list(st.sources)
        try:
            now = self.services.list_disks(st.image if self.kind == "restore" else None,
                                           "target" if self.kind == "restore" else "source")
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self.disks_changed, describe_error(exc), [])
            return
        by_path = {d.path: d for d in now}
        gone = [d for d in chosen if d.path not in by_path
                or not by_path[d.path].same_disk(d)
                or (self.kind == "restore" and not by_path[d.path].eligible)]
        fresh = [by_path[d.path] for d in chosen if d not in gone and by_path[d.path] != d]
        error = ""
        if gone:
            error = _("{disks} was removed or changed since it was chosen; nothing was "
                      "written. Go back and choose again.").format(disks=", ".join(
                          f"{d.path} ({d.model or '-'}, {format_size(d.size_bytes)})"
                          for d in gone))
        self.app.call_from_thread(self.disks_changed, error, fresh)

    def disks_changed(self, error: str, fresh: list[DiskEntry]) -> None:
        if error:
            self.prepared, self.error = None, error
            self.app.notify(error, severity="warning", timeout=15)
            self.update_status()
            return
        if not fresh:
            return
        st = self.state  # the same disks, with what is on them now: plan again
        if self.kind == "restore":
            new = {d.path: d for d in fresh}
            if st.target is not None and st.target.path in new:
                st.target = new[st.target.path]
            st.other_targets = [new.get(d.path, d) for d in st.other_targets]
        else:
            new = {d.path: d for d in fresh}
            st.sources = [new.get(d.path, d) for d in st.sources]
        self.prepared, self.error = None, ""
        self.query_one("#summary", Static).update(self.text())
        self.update_status()
        self.prepare()

    def refill(self) -> None:
        self.update_status()

    @work(thread=True, exclusive=True, group="prepare")
    def prepare(self) -> None:
        st = self.state
        try:
            if self.kind == "restore":
                assert st.image is not None and st.target is not None
                prepared = self.services.prepare_restore(st.image, st.target, st.options,
                                                         list(st.other_targets))
            elif self.break_lock:
                prepared = self.services.prepare_backup(st.sources, st.destination,
                                                        st.backup_name, break_lock=True)
            else:
                prepared = self.services.prepare_backup(st.sources, st.destination,
                                                        st.backup_name)
            error, locked = "", False
        except Exception as exc:  # noqa: BLE001
            prepared, error = None, describe_error(exc)
            locked = isinstance(exc, RepositoryLockedError)
        self.app.call_from_thread(self.prepared_done, prepared, error, locked)

    def prepared_done(self, prepared: Prepared | None, error: str,
                      locked: bool = False) -> None:
        self.prepared, self.error, self.locked = prepared, error, locked
        self.query_one("#break-lock", Button).display = locked
        self.update_status()
        if prepared is not None:
            self.query_one("#finish", Button).focus()

    def update_status(self) -> None:
        self.query_one("#status", Static).update(self.status_text())
        self.query_one("#finish", Button).disabled = self.prepared is None

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.action_back()

    @on(Button.Pressed, "#break-lock")
    def ask_break_lock(self) -> None:
        self.app.push_screen(ConfirmDialog(
            _("Break the lock of {where} only if no other backup, delete or prune is "
              "running on it: two writers at once can damage the images being written.")
            .format(where=self.state.destination),
            _("Break the lock"), _("Cancel")), self.lock_answer)

    def lock_answer(self, ok: object) -> None:
        if ok is not True:
            return
        self.break_lock, self.locked, self.error = True, False, ""
        self.query_one("#break-lock", Button).display = False
        self.update_status()
        self.prepare()

    @on(Button.Pressed, "#finish")
    def finish(self) -> None:
        prepared = self.prepared
        if prepared is None:
            return
        targets = self.state.targets()
        blocked = self.state.verdict is not None and self.state.verdict.level == "blocked"
        holding = [t for t in targets if t.has_data or t.partitions]
        if self.kind == "restore" and targets and (holding or prepared.loses_data or blocked):
            asked = holding or targets[:1]
            if len(asked) == 1:
                target = asked[0]
                message = _("{disk} ({model}, {size}) holds partitions or data. Restoring "
                            "erases all of it.").format(
                    disk=target.path, model=target.model or "-",
                    size=format_size(target.size_bytes))
            else:
                message = _("{disks} hold partitions or data. Restoring erases all of it; "
                            "type their names separated by a space.").format(
                    disks=", ".join(t.path for t in asked))
            self.app.push_screen(
                TypedConfirmDialog(message, " ".join(t.name for t in asked)),
                self.confirmed,
            )
        else:
            self.confirmed(True)

    def confirmed(self, ok: object) -> None:
        if ok is True and self.prepared is not None:
            self.state.prepared = self.prepared
            self.wizard.advance(self)
