"""Toggles that read on any console: "(●)" / "( )" and "[X]" / "[ ]" in plain characters,
so the state does not depend on colour (16-colour Linux console, serial console)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox, RadioButton


class Radio(RadioButton):
    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.assemble("(", ("●" if self.value else " ", style), ")")


class Check(Checkbox):
    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.assemble("[", ("X" if self.value else " ", style), "]")
