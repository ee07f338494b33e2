"""A checkbox that reads the same in any terminal: ``[x] greedy`` / ``[ ] greedy``.

Textual's own checkbox draws ``▐X▌`` on and off alike and tells them apart by colour only,
which a plain-text capture, a monochrome terminal or ``NO_COLOR`` loses.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox

ON, OFF = "[x]", "[ ]"


class TickBox(Checkbox):
    """A :class:`Checkbox` drawn ``[x]`` when on and ``[ ]`` when off (colour only adds)."""

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.assemble((ON if self.value else OFF, style))
