#!/usr/bin/env python
"""Measure what users wait for: imports, first and cached model loads, site build, test suite.

Each measurement runs in a fresh subprocess, so "first load" really starts from an empty cache
and nothing is shared between measurements. Peak memory is the largest resident set of any
single measured process. Usage: python benchmarks/run.py [--skip-site] [--skip-tests]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

LOAD = """
import time, json, sys
t = time.perf_counter(); import torch, transformers; t_imp = time.perf_counter() - t
# transformers imports lazily: its model machinery is imported on first use, not by `import transformers`.
t = time.perf_counter()
import anatomy
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast, LlamaForCausalLM, Gemma3ForCausalLM
t_lazy = time.perf_counter() - t
t = time.perf_counter(); anatomy.load(sys.argv[1]); t_load = time.perf_counter() - t
print(json.dumps({"imports": t_imp, "lazy": t_lazy, "load": t_load}))
"""


# Runs a command and prints the peak resident memory of its largest process (children included).
WRAP = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print("PEAK_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def run(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall time (s), peak RSS of the largest process it started (MB), stdout."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WRAP, *cmd], cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    peak_kb = int(out.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return wall, peak_kb / 1024, out.stdout


def site_builds() -> list[tuple[str, str]]:
    """Cold build (empty output cache), warm build, and a rebuild after an edit to prose only."""
    rows = []
    out = tempfile.mkdtemp()
    build = [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", out]
    with tempfile.TemporaryDirectory() as cache:
        env = {"ANATOMY_SITE_CACHE": cache}
        wall, peak, _ = run(build, env)
        rows.append(("site build, cold (every chapter executed once)", f"{wall:.0f} s, peak {peak:.0f} MB"))
        timings = json.loads((Path(cache) / "timings.json").read_text())
        for page, seconds in sorted(timings.items()):
            rows.append((f"  executing {Path(page).relative_to(ROOT)}", f"{seconds:.1f} s"))
        wall, peak, _ = run(build, env)
        rows.append(("site build, warm (outputs cached)", f"{wall:.0f} s, peak {peak:.0f} MB"))
        chapter = ROOT / "docs" / "en" / "function-and-tokens.md"
        text = chapter.read_text(encoding="utf-8")
        try:
            chapter.write_text(text + "\nOne more sentence of prose.\n", encoding="utf-8")
            wall, peak, _ = run(build, env)
        finally:
            chapter.write_text(text, encoding="utf-8")
        rows.append(("site rebuild after a prose-only edit", f"{wall:.0f} s, peak {peak:.0f} MB"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-site", action="store_true")
    ap.add_argument("--skip-tests", action="store_true")
    args = ap.parse_args()
    rows: list[tuple[str, str]] = []
    for name in ("smollm2-135m", "gemma-3-270m"):
        with tempfile.TemporaryDirectory() as empty:
            _, peak, out = run([sys.executable, "-c", LOAD, name], env={"ANATOMY_CACHE": empty})
            first = json.loads(out.strip().splitlines()[-1])
        rows.append((f"{name}: first load (GGUF -> float32 cache)", f"{first['load']:.1f} s, peak {peak:.0f} MB"))
        _, peak, out = run([sys.executable, "-c", LOAD, name])
        cached = json.loads(out.strip().splitlines()[-1])
        rows.append((f"{name}: cached load (after imports)", f"{cached['load']:.2f} s"))
    rows.append(("imports: torch + transformers", f"{cached['imports']:.2f} s"))
    rows.append(("imports: anatomy + transformers' model classes (lazy)", f"{cached['lazy']:.2f} s"))
    if not args.skip_site:
        rows += site_builds()
    if not args.skip_tests:
        # As on CI (a fresh clone): no executed chapter outputs yet, so every chapter runs once.
        with tempfile.TemporaryDirectory() as cache:
            wall, peak, _ = run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"], env={"ANATOMY_SITE_CACHE": cache})
            rows.append(("test suite, cold (every chapter executed once)", f"{wall:.0f} s, peak {peak:.0f} MB"))
            wall, peak, _ = run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"], env={"ANATOMY_SITE_CACHE": cache})
            rows.append(("test suite, warm (chapter outputs cached)", f"{wall:.0f} s, peak {peak:.0f} MB"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    width = max(len(r[0]) for r in rows)
    for what, value in rows:
        print(f"{what.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
