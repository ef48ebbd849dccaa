"""Repair options — restore a system image, tools, restart / shut down."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from rescue.i18n import _
from rescue.wizard.ports import describe_error
from rescue.wizard.screens.base import WizardScreen
from rescue.wizard.screens.dialogs import ChoiceDialog, TextDialog


class RepairScreen(WizardScreen):
    def heading(self) -> str:
        return _("Repair options")

    def body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static(_("Choose a recovery tool"), classes="heading")
            yield OptionList(
                Option(_("Restore a system image") + "\n  "
                       + _("Replace everything on a disk with a system image made earlier."),
                       id="restore"),
                Option(_("Back up this computer") + "\n  "
                       + _("Make a system image of this computer's disk."), id="backup"),
                Option(_("Browse files in a system image") + "\n  "
                       + _("Copy files out of an image to a USB stick, without restoring."),
                       id="browse"),
                None,
                Option(_("Open a shell"), id="shell"),
                Option(_("Check a disk's filesystems"), id="check"),
                Option(_("Save logs to a USB stick"), id="logs"),
                None,
                Option(_("Restart"), id="reboot"),
                Option(_("Shut down"), id="poweroff"),
                id="options",
            )

    def on_mount(self) -> None:
        self.query_one("#options", OptionList).focus()

    @on(OptionList.OptionSelected, "#options")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        choice = event.option.id
        if choice in ("restore", "backup", "browse"):
            self.wizard.begin(choice)
        elif choice == "shell":
            self.wizard.open_shell()
        elif choice in ("reboot", "poweroff"):
            self.wizard.power(choice)
        elif choice == "check":
            self.pick_disk()
        elif choice == "logs":
            self.wizard.save_logs()

    @work(group="check")
    async def pick_disk(self) -> None:
        disks = await self.wizard.in_thread(self.services.list_disks, None, "check")
        choices = [(d.path, f"{d.path}  {d.model}") for d in disks]
        path = await self.app.push_screen_wait(
            ChoiceDialog(_("Which disk should be checked?"), choices)
        )
        disk = next((d for d in disks if d.path == path), None)
        if disk is None:
            return
        try:
            lines = await self.wizard.in_thread(self.services.check_disk, disk)
        except Exception as exc:  # noqa: BLE001
            lines = [describe_error(exc)]
        await self.app.push_screen_wait(TextDialog(_("Filesystem check"), lines))
