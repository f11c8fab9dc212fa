"""Time every block of a chapter: where does its execution time go?

    .venv/bin/python benchmarks/blocks.py docs/en/circuits.md [--top 15]

Runs the chapter once in a fresh Jupyter kernel, in order (as the site build does, but without the
site's cache), and prints the slowest blocks with their first lines. Times on a loaded machine are
inflated; compare blocks within one run.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapter", type=Path)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    cells = [c for c in jupytext.read(args.chapter).cells if c.cell_type == "code"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source) for c in cells])
    times: list[float] = []
    last = [time.perf_counter()]

    def started(cell, cell_index, **_):
        last[0] = time.perf_counter()

    def done(cell, cell_index, **_):
        times.append(time.perf_counter() - last[0])

    t0 = time.perf_counter()
    NotebookClient(nb, kernel_name="python3", timeout=1800, on_cell_start=started, on_cell_executed=done,
                   resources={"metadata": {"path": str(args.chapter.resolve().parent)}}).execute(
        env={**os.environ, "MPLBACKEND": "Agg"})
    total = time.perf_counter() - t0
    print(f"{args.chapter}: {total:.1f} s in {len(cells)} blocks (kernel start included)")
    for i in sorted(range(len(times)), key=lambda i: -times[i])[:args.top]:
        first = cells[i].source.strip().splitlines()[0][:90]
        print(f"{times[i]:7.1f} s  block {i:3d}  {first}")


if __name__ == "__main__":
    main()
