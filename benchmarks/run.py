#!/usr/bin/env python
"""Measure what users wait for: imports, first and cached model loads, site build, test suite.

Each measurement runs in a fresh subprocess, so "first load" really starts from an empty cache
and nothing is shared between measurements. Peak memory is the largest resident set of any
single measured process. Usage: python benchmarks/run.py [--skip-site] [--skip-tests] [--peers]

``--peers`` runs only the side-by-side section: ours against nnsight for the same work on the same
weights, in one process (see ``peers``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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
        # One chapter at a time, so that each chapter's time is its own (the per-chapter budget).
        wall, peak, _ = run(build, {"ANATOMY_SITE_CACHE": cache, "ANATOMY_WORKERS": "1"})
        rows.append(("site build, cold, one chapter at a time", f"{wall:.0f} s, peak {peak:.0f} MB"))
        timings = json.loads((Path(cache) / "timings.json").read_text())
        for page, seconds in sorted(timings.items()):
            rows.append((f"  executing {Path(page).relative_to(ROOT)}", f"{seconds:.1f} s"))
    with tempfile.TemporaryDirectory() as cache:
        env = {"ANATOMY_SITE_CACHE": cache}  # the default: two chapters side by side
        wall, peak, _ = run(build, env)
        rows.append(("site build, cold, two chapters at a time (default)", f"{wall:.0f} s, peak {peak:.0f} MB"))
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


PROMPT = "The capital of France is"  # short, English: the lens cost is the LM head, not the forward
STEER_PROMPT = "My favourite food is"  # the steered continuation runs 20 tokens without an end-of-text


def _median_pair(ours, theirs, repeats: int) -> tuple[float, float]:
    """Median seconds of ``ours()`` and ``theirs()``, run alternately after one warm-up each
    (alternating spreads the noise of a shared machine evenly over both)."""
    ours(), theirs()
    a, b = [], []
    for _ in range(repeats):
        for fn, out in ((ours, a), (theirs, b)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


class _NNsight:
    """nnsight's view of a model, switched on only while nnsight runs.

    ``LanguageModel(model.hf)`` gives every module a ``forward`` wrapper (and ``__nnsight__``);
    left in place they would slow our own calls down too, so they are set aside while ours run.
    """

    ATTRS = ("forward", "__nnsight__")

    def __init__(self, model):
        import warnings

        from nnsight import LanguageModel

        warnings.simplefilter("ignore")  # LanguageModel is deprecated in favour of TransformersModel(repo_id)
        before = {id(m): set(m.__dict__) for m in model.hf.modules()}
        self.lm = LanguageModel(model.hf, tokenizer=model.tokenizer)
        self.saved = {m: {a: m.__dict__[a] for a in self.ATTRS if a in m.__dict__ and a not in before[id(m)]}
                      for m in model.hf.modules()}
        self.off()

    def on(self):
        for m, attrs in self.saved.items():
            m.__dict__.update(attrs)

    def off(self):
        for m, attrs in self.saved.items():
            for a in attrs:
                m.__dict__.pop(a, None)


def peers(repeats: int = 5) -> list[tuple[str, str]]:
    """Ours vs nnsight 0.8 for the same work, both default models, in this process.

    The nnsight side is written as a user of nnsight would write it (a trace reading module outputs,
    modules applied by hand). Each line: median of ``repeats`` alternating runs, and ours/nnsight.
    """
    import torch

    import anatomy

    rows: list[tuple[str, str]] = []

    def line(what, o, t):
        rows.append((what, f"ours {o * 1000:7.0f} ms   nnsight {t * 1000:7.0f} ms   ratio {o / t:.2f}x"))

    for name in ("smollm2-135m", "gemma-3-270m"):
        model = anatomy.load(name)
        nn = _NNsight(model)
        lm, L = nn.lm, model.n_layers
        ids = torch.tensor([[t.id for t in anatomy.tokenize(model, PROMPT)]], device=model.device)

        def theirs(fn):
            def run():
                nn.on()
                try:
                    with torch.no_grad():
                        return fn()
                finally:
                    nn.off()
            return run

        def nn_lens():
            with lm.trace(PROMPT):  # final norm + LM head on the embedding and every layer; last: the model's own
                top = list().save()
                top.append(torch.softmax(lm.lm_head(lm.model.norm(lm.model.embed_tokens.output)), -1).topk(5, dim=-1))
                for i, layer in enumerate(lm.model.layers):
                    if i < L - 1:
                        top.append(torch.softmax(lm.lm_head(lm.model.norm(layer.output)), -1).topk(5, dim=-1))
                top.append(torch.softmax(lm.lm_head.output, -1).topk(5, dim=-1))
            return top

        def nn_capture():
            with lm.trace(PROMPT):
                out = list().save()
                out.append(lm.model.embed_tokens.output)
                for layer in lm.model.layers:
                    out.append(layer.output)
            return out

        def nn_attention():
            with lm.trace(PROMPT):
                out = list().save()
                for layer in lm.model.layers:
                    out.append(layer.self_attn.output[1])
            return out

        layer = L // 2
        v = anatomy.direction(model, ["I love this, it is wonderful."], ["I hate this, it is awful."], layer)

        def ours_steer():
            with anatomy.steer(model, layer, v, 4.0):
                return anatomy.generate(model, STEER_PROMPT, max_new_tokens=20)

        def nn_steer():
            with lm.generate(STEER_PROMPT, max_new_tokens=20, min_new_tokens=20, do_sample=False) as tracer:
                for _ in tracer.iter[:20]:  # the prompt, then each new token
                    lm.model.layers[layer].output = lm.model.layers[layer].output + 4.0 * v
                out = tracer.result.save()
            return out

        def plain():
            with torch.no_grad():
                return model.hf(input_ids=ids)

        T = ids.shape[1]
        line(f"{name}: logit lens, {L + 1} layers x {T} positions, top 5",
             *_median_pair(lambda: anatomy.logit_lens(model, PROMPT, k=5), theirs(nn_lens), repeats))
        line(f"{name}: capture every layer's output",
             *_median_pair(lambda: anatomy.hidden_states(model, PROMPT), theirs(nn_capture), repeats))
        line(f"{name}: attention weights of every layer",
             *_median_pair(lambda: anatomy.attention_weights(model, PROMPT), theirs(nn_attention), repeats))
        line(f"{name}: steered generation, 20 tokens",
             *_median_pair(ours_steer, theirs(nn_steer), max(3, repeats // 2)))
        c, f = _median_pair(lambda: anatomy.hidden_states(model, PROMPT), plain, repeats)
        rows.append((f"{name}: capture overhead (every layer's output / plain forward)",
                     f"ours {c * 1000:7.0f} ms   forward {f * 1000:7.0f} ms   ratio {c / f:.2f}x (target <= 1.1x)"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-site", action="store_true")
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--peers", action="store_true", help="only the side-by-side section: ours vs nnsight")
    ap.add_argument("--repeats", type=int, default=7, help="runs per line of the side-by-side section (median kept)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for the side-by-side section (1: steadier on a shared machine)")
    args = ap.parse_args()
    if args.peers:
        _print(side_by_side(args))
        return
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
    rows += side_by_side(args)
    _print(rows)


def side_by_side(args) -> list[tuple[str, str]]:
    import torch

    torch.set_num_threads(args.threads)
    rows = [(f"ours vs nnsight (medians of {args.repeats} runs, {args.threads} torch thread(s), one process)", "")]
    return rows + peers(args.repeats)


def _print(rows: list[tuple[str, str]]) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    width = max(len(r[0]) for r in rows)
    for what, value in rows:
        print(f"{what.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
