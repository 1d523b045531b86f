"""The ``fs-settings`` directive: the config reference table, generated from the settings' declaration.

The rows come from :func:`settings_table.declared_settings`, the one place that
reads the declaration (see that module).
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from settings_table import declared_settings, row
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _cell(text: str, literal: bool = False) -> nodes.entry:
    entry = nodes.entry()
    paragraph = nodes.paragraph()
    if text:
        paragraph += nodes.literal(text=text) if literal else nodes.Text(text)
    entry += paragraph
    return entry


class SettingsTable(SphinxDirective):
    """``.. fs-settings::`` — a table of every setting, one row a key."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        rows = [row(item) for item in declared_settings()]
        columns = [("key", True), ("type", True), ("default", True), ("accepts", False)]
        if any(r["help"] for r in rows):
            columns.append(("help", False))
        table = nodes.table(classes=["fs-settings"])
        group = nodes.tgroup(cols=len(columns))
        table += group
        for name, _ in columns:
            group += nodes.colspec(colwidth=30 if name in ("accepts", "help") else 15)
        head = nodes.thead()
        header = nodes.row()
        for name, _ in columns:
            header += _cell(name)
        head += header
        group += head
        body = nodes.tbody()
        for r in rows:
            line = nodes.row()
            for name, literal in columns:
                line += _cell(r[name], literal)
            body += line
        group += body
        return [table]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("fs-settings", SettingsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
