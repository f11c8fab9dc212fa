"""Result sentences on the site: claims read as prose, values glued into the Markdown.

A chapter states its results with `anatomy.claim` (a checked sentence, its values formatted in)
and names values for ordinary prose with `anatomy.glue` (src/anatomy/claims.py). After a chapter
has executed, and before its page is rendered, this module:

* puts each glued value in place of ``{glue}`name``` in the Markdown cells (a name that no block
  glued fails the build, so no placeholder reaches a reader);
* hides the code of a block that holds nothing but claims and glue (the reader reads the claims
  as sentences; the notebook keeps the block), and drops the glue's own output;
* writes into each claim's fold the code of its check, so "checked" says against what.

The take-home notebook gets the same values in its Markdown (`fill_markdown`).
"""

from __future__ import annotations

import ast
import html
import re

from anatomy.claims import CLAIM_MIME, GLUE_MIME

PLACEHOLDER = re.compile(r"\{glue\}`([^`]*)`")
HIDDEN = "anatomy-result"  # the tag of a block that holds only claims and glue: its input is not shown
_RESULT_CALLS = {"claim", "glue"}


class ResultsError(Exception):
    """A chapter's prose reads a value that no block named."""


def glued(nb) -> dict[str, str]:
    """Every value a chapter's blocks named with anatomy.glue, as the prose shows it."""
    values: dict[str, str] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            for name, text in out.get("data", {}).get(GLUE_MIME, {}).items():
                if name in values and values[name] != text:
                    raise ResultsError(f"Two blocks glue different values under the name {name!r} "
                                       f"({values[name]!r} and {text!r}); give them different names.")
                values[name] = text
    return values


def fill(text: str, values: dict[str, str], where: str = "the page", escape=html.escape) -> str:
    """``text`` with every ``{glue}`name``` replaced by the value glued under that name."""

    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise ResultsError(f"{where} reads {{glue}}`{name}`, but no block glues a value named {name!r} "
                               f"(glued: {known}); add anatomy.glue({name}=...) to the block that computes it.")
        return escape(values[name])

    return PLACEHOLDER.sub(one, text)


def _calls(source: str) -> list[ast.Call] | None:
    """The top-level anatomy.claim / anatomy.glue calls of a block, or None if it holds anything else."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    calls = []
    for stmt in tree.body:
        call = stmt.value if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) else None
        func = call.func if call else None
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in _RESULT_CALLS:
            return None
        calls.append(call)
    return calls or None


def claim_sources(source: str) -> list[str]:
    """The source of each claim(...) call in a block, in order (for the claims' folds)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and (getattr(n.func, "attr", None) or getattr(n.func, "id", None)) == "claim"]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    return [ast.get_source_segment(source, n) or "" for n in calls]


def render(nb, where: str = "the page"):
    """The executed notebook ready to render: values glued in, claim blocks hidden, checks in the folds."""
    values = glued(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = fill(cell.source, values, f"{where} (Markdown cell {i + 1})")
            continue
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.get("outputs", []) if GLUE_MIME not in o.get("data", {})]
        sources = iter(claim_sources(cell.source))
        for out in cell.outputs:
            data = out.get("data", {})
            if CLAIM_MIME in data and "text/html" in data:
                code = html.escape(next(sources, ""), quote=False)
                data["text/html"] = data["text/html"].replace("<code></code>", f"<code>{code}</code>", 1)
        if _calls(cell.source):
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if HIDDEN not in tags:
                tags.append(HIDDEN)
    return nb


def fill_markdown(nb, values: dict[str, str]):
    """A notebook's Markdown cells with the glued values in place (the take-home notebook)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = fill(cell.source, values, escape=lambda s: s)
    return nb
