"""The summary: what will be restored (or backed up), and Finish."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Button, Static

from rescue.i18n import _, format_datetime, format_size
from rescue.wizard.backend import describe_error
from rescue.wizard.model import Prepared
from rescue.wizard.screens.base import WizardScreen
from rescue.wizard.screens.dialogs import TypedConfirmDialog
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

    def heading(self) -> str:
        return _("Summary") if self.kind == "restore" else _("Backup summary")

    def body(self) -> ComposeResult:
        with VerticalScroll(id="body"):
            yield Static(self.text(), id="summary")
            yield Static(self.status_text(), id="status")
        yield self.buttons(
            Button(_("Back"), id="back"),
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
        if self.error:
            return "[b red]" + _("This cannot be done:") + "[/] " + self.error
        if self.prepared is None:
            return _("Checking the plan…")
        lines = [f"[b]{_('Plan')}[/b]", *("  " + line for line in self.prepared.lines)]
        lines.append(_("Press Finish to start."))
        return "\n".join(lines)

    def on_mount(self) -> None:
        self.prepare()
        self.query_one("#back", Button).focus()

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
            else:
                prepared = self.services.prepare_backup(st.sources, st.destination,
                                                        st.backup_name)
            error = ""
        except Exception as exc:  # noqa: BLE001
            prepared, error = None, describe_error(exc)
        self.app.call_from_thread(self.prepared_done, prepared, error)

    def prepared_done(self, prepared: Prepared | None, error: str) -> None:
        self.prepared, self.error = prepared, error
        self.update_status()
        if prepared is not None:
            self.query_one("#finish", Button).focus()

    def update_status(self) -> None:
        self.query_one("#status", Static).update(self.status_text())
        self.query_one("#finish", Button).disabled = self.prepared is None

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.action_back()

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
