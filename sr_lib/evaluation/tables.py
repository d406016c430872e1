"""Result tables that show themselves: Markdown in files, HTML and Markdown in notebooks, plain text in a console.

A ``Table`` is the last expression of a notebook cell (Jupyter calls its ``_repr_html_``/``_repr_markdown_``), the body
of a ``results.md`` (``to_markdown``), or printed (``str``). Floats are written with a fixed number of decimals so that
the committed notebooks and Markdown files diff cleanly; NaN (a metric that does not apply) is written as "—".
"""

from __future__ import annotations

import csv
import html
import io
import math


def _format(value, digits: int) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        value = float(value)
        return f"{value:.{digits}f}" if math.isfinite(value) else "—"
    return str(value)


class Table:
    """Rows of a table: a list of dicts, one per row, with the columns taken from the first row unless given."""

    def __init__(self, rows, columns=None, digits=2, title=None):
        self.rows = [dict(row) for row in rows]
        if not self.rows and columns is None:
            raise ValueError("a Table needs rows or columns")
        self.columns = list(columns) if columns is not None else list(self.rows[0])
        missing = sorted({column for row in self.rows for column in self.columns if column not in row})
        if missing:
            raise ValueError(f"rows lack the column(s) {', '.join(missing)}")
        self.digits = digits
        self.title = title

    def cells(self) -> list[list[str]]:
        return [[_format(row[column], self.digits) for column in self.columns] for row in self.rows]

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", ""] if self.title else []
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in self.cells()]
        return "\n".join(lines)

    def to_csv(self) -> str:
        """The raw values (no rounding), one row per line."""
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(column)}</th>" for column in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                       for row in self.cells())
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __str__(self) -> str:
        cells = [list(self.columns)] + self.cells()
        widths = [max(len(row[index]) for row in cells) for index in range(len(self.columns))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(([self.title] if self.title else []) + lines)

    __repr__ = __str__
