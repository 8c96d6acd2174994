"""Plain-text tables for the terminal: aligned columns, a title and a caption.

Cells are shown as given (the caller makes them printable); columns are as wide as their
widest cell, never cut, so a piped listing keeps every key prefix and path whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Table:
    """Columns by name (``right`` lists the right-aligned ones), rows of text cells."""

    columns: Sequence[str]
    right: frozenset[str] = frozenset()
    rows: list[Sequence[str]] = field(default_factory=list)

    def add_row(self, cells: Sequence[str]) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"a row needs {len(self.columns)} cells; got {len(cells)}")
        self.rows.append(cells)

    def lines(self) -> list[str]:
        """The header, a rule and one line per row, columns two spaces apart."""
        widths = [len(name) for name in self.columns]
        for row in self.rows:
            widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            padded = [
                cell.rjust(width) if name in self.right else cell.ljust(width)
                for name, cell, width in zip(self.columns, cells, widths, strict=True)
            ]
            return "  ".join(padded).rstrip()

        rule = "  ".join("-" * width for width in widths)
        return [line(self.columns), rule, *(line(row) for row in self.rows)]
