"""Tables for the page: tokens and numbers as HTML, every string escaped (vocabularies hold `<script>`)."""

from __future__ import annotations

import html
import dataclasses
from dataclasses import dataclass

__all__ = ["Table", "readable", "token_table"]


@dataclass(frozen=True)
class Table:
    """A small table that Jupyter (and so the site) shows as HTML, and `print` shows as text.

    ``folded=True`` shows it closed, in a ``<details>`` block that opens on a click, for long tables
    whose content a figure above already shows; ``summary`` is the line shown while it is closed.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    caption: str = ""
    folded: bool = False
    summary: str = ""

    def fold(self, summary: str = "") -> Table:
        """The same table, shown folded (closed until clicked) with ``summary`` as its visible line."""
        return dataclasses.replace(self, folded=True, summary=summary)

    def _repr_html_(self) -> str:
        esc = lambda v: html.escape(_fmt(v), quote=True)  # noqa: E731
        head = "".join(f"<th>{esc(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in self.rows)
        cap = f"<caption>{esc(self.caption)}</caption>" if self.caption else ""
        table = f'<div class="anatomy-table"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
        if not self.folded:
            return table
        summary = self.summary or self.caption or "the table"
        return (f'<details class="anatomy-fold"><summary>{esc(summary)} ({len(self.rows)} row{"" if len(self.rows) == 1 else "s"})</summary>'
                f"{table}</details>")

    def __str__(self) -> str:
        cells = [list(map(str, self.columns))] + [[_fmt(v) for v in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return ((self.caption + "\n") if self.caption else "") + "\n".join(lines)

    __repr__ = __str__


def readable(v) -> str:
    """A value as a reader reads it in a sentence or a table cell: 23,043 · 0.656 · 4.43 · 1,234 · ␣Paris.

    Integers with thousands separators; other numbers to 3 significant digits (whole numbers from 1,000 on),
    without an exponent between 0.001 and 10^6; a
    token as it reads; a one-element tensor as its number; a tuple such as (token, probability)
    as "␣Paris 0.656", a list as "0.5, 0.25"; a string as it is. Never a Python repr or a 16-digit float.
    """
    if hasattr(v, "text") and hasattr(v, "piece"):  # a Token
        return v.text
    if hasattr(v, "item") and getattr(v, "numel", lambda: 0)() == 1:  # a one-element tensor
        v = v.item()
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        if 999.5 <= abs(v) < 1e6:
            return f"{v:,.0f}"
        v = float(f"{v:.3g}")  # rounded first: 99.96 reads 100, not 100.0
        if v == 0:
            return "0"
        if 1 <= abs(v) < 1e6:
            return f"{v:,.{max(0, 2 - _magnitude(v))}f}"
        return f"{v:.3g}" if abs(v) >= 1e-3 else f"{v:.2e}"
    if isinstance(v, tuple):  # a record such as (token, probability)
        return " ".join(readable(x) for x in v)
    if isinstance(v, list):
        return ", ".join(readable(x) for x in v)
    if hasattr(v, "tolist"):  # a tensor of several values
        return readable(v.tolist())
    return str(v)


def _magnitude(v: float) -> int:
    import math

    return int(math.floor(math.log10(abs(v))))


_fmt = readable


def token_table(tokens, caption: str = "") -> Table:
    """Tokens one per row: position, ID, the vocabulary piece, and how it reads (Chapter 1)."""
    rows = tuple((i, t.id, t.piece, t.text) for i, t in enumerate(tokens))
    return Table(("position", "token ID", "vocabulary piece", "reads as"), rows, caption)


def vocabulary_table(*censuses) -> Table:
    """Vocabulary censuses side by side: one row per kind of entry, one column per model (Chapter 1)."""
    kinds = list(censuses[0].counts)
    rows = tuple((k, *(f"{c.counts[k]:,}" for c in censuses)) for k in kinds)
    rows += (("total (rows of the embedding table)", *(f"{c.size:,}" for c in censuses)),)
    return Table(("kind of entry", *(c.model_name for c in censuses)), rows)
