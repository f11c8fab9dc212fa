"""anatomy.exercises: every checker accepts a right solution on the default models, names at least two
typical mistakes, says "not written yet" to a stub and reports a function that raises in one sentence."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

import anatomy
from anatomy import exercises as ex


def _stub(*args):
    ...


def _raises(*args):
    raise NotImplementedError


def _greedy(model, prompt):
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    return int(model.hf(ids).logits[0, -1].argmax())


def _nearest(model, token_id, k, cosine=True, keep_self=False):
    t = model.embedding_table.detach()
    u = t / t.norm(dim=-1, keepdim=True) if cosine else t
    s = u @ u[token_id]
    if not keep_self:
        s[token_id] = -float("inf")
    return s.topk(k).indices.tolist()


def _rms(x, w, eps, one_plus, plus=True):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * ((1 + w) if one_plus and plus else w)


def _softmax(z, t):
    z = z / t
    e = (z - z.max(-1, keepdim=True).values).exp()
    return e / e.sum(-1, keepdim=True)


def _split(countries, seed):
    names = sorted(set(countries))
    order = [names[i] for i in torch.randperm(len(names), generator=torch.Generator().manual_seed(seed))]
    held: set = set()
    for c in order:
        if sum(x in held for x in countries) >= len(countries) // 4:
            break
        held.add(c)
    return [i for i, c in enumerate(countries) if c not in held], [i for i, c in enumerate(countries) if c in held]


def _last_state(model, prompt, stage):
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    return model.hf(ids, output_hidden_states=True).hidden_states[stage][0, -1]


def _dom(model, a, b, layer, shift=1):
    mean = lambda ps: torch.stack([_last_state(model, p, layer + shift) for p in ps]).mean(0)  # noqa: E731
    return mean(a) - mean(b)


def _lens(model, prompt, layer, norm=True, shift=1):
    h = _last_state(model, prompt, layer + shift)
    return torch.softmax(model.lm_head(model.final_norm(h) if norm else h), -1)


def _attention(q, k, mask=True, scale=True):
    s = q @ k.T / (math.sqrt(q.shape[-1]) if scale else 1)
    if mask:
        s = s.masked_fill(torch.ones_like(s, dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1)


# checker -> (a right solution, [(a typical wrong solution, words of the sentence that must name it)])
CASES = {
    "greedy_next_token": (_greedy, [
        (lambda m, p: int(m.hf(m.tokenizer(p, return_tensors="pt")["input_ids"]).logits[0, 0].argmax()), "first position"),
        (lambda m, p: int(m.hf(m.tokenizer(p, return_tensors="pt")["input_ids"]).logits[0, -1].argmin()), "argmin")]),
    "nearest_tokens": (_nearest, [
        (lambda m, t, k: _nearest(m, t, k, cosine=False), "dot product"),
        (lambda m, t, k: _nearest(m, t, k, keep_self=True), "itself")]),
    "rms_norm": (_rms, [
        (lambda x, w, eps, op: _rms(x, w, eps, op, plus=False), "(1 + w)"),
        (lambda x, w, eps, op: _rms(x - x.mean(-1, keepdim=True), w, eps, op), "LayerNorm")]),
    "softmax_with_temperature": (_softmax, [
        (lambda z, t: _softmax(z * t, 1.0), "divide by it"),
        (lambda z, t: torch.softmax(z / t, dim=0), "wrong axis"),
        (lambda z, t: torch.exp(z / t) / torch.exp(z / t).sum(-1, keepdim=True), "overflows")]),
    "country_split": (_split, [
        (lambda cs, s: (list(range(len(cs)))[len(cs) // 4:], list(range(len(cs)))[:len(cs) // 4]), "not countries"),
        (lambda cs, s: (list(range(len(cs))), []), "15–35 %")]),
    "difference_of_means": (_dom, [
        (lambda m, a, b, layer: _dom(m, b, a, layer), "other way"),
        (lambda m, a, b, layer: _dom(m, a, b, layer, shift=0), "one layer off")]),
    "logit_lens": (_lens, [
        (lambda m, p, layer: _lens(m, p, layer, norm=False), "final norm"),
        (lambda m, p, layer: _lens(m, p, layer, shift=0), "one layer off"),
        (lambda m, p, layer: m.lm_head(m.final_norm(_last_state(m, p, layer + 1))), "softmax")]),
    "causal_attention": (_attention, [
        (lambda q, k: _attention(q, k, mask=False), "causal mask"),
        (lambda q, k: _attention(q, k, scale=False), "√d")]),
    "kv_head": (lambda h, n, kv: h // (n // kv), [(lambda h, n, kv: h % kv, "consecutive groups"),
                                                   (lambda h, n, kv: h // kv, "right one")]),
    "swiglu_neuron": (lambda x, g, u, act: act(x @ g) * (x @ u), [
        (lambda x, g, u, act: (x @ g) * act(x @ u), "gate's product"),
        (lambda x, g, u, act: (x @ g) * (x @ u), "forgot the activation")]),
}


# More cases live in tests/exercise_cases_*.py (one file per group of chapters, each with its own CASES dict of
# the same form), so that chapters' exercises can be added side by side.
for _path in sorted(Path(__file__).parent.glob("exercise_cases_*.py")):
    _spec = importlib.util.spec_from_file_location(_path.stem, _path)
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    assert not set(_module.CASES) & set(CASES), f"{_path.name} repeats checkers: {set(_module.CASES) & set(CASES)}"
    CASES.update(_module.CASES)


def test_every_checker_is_tested_here():
    assert {n.removeprefix("check_") for n in ex.__all__ if n.startswith("check_")} == set(CASES)


@pytest.fixture(scope="module", autouse=True)
def _models(smollm2, gemma):
    """The checkers load the default models themselves (once per process, as anatomy.load caches them)."""


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_right_solution_passes_on_the_default_models(name):
    right, _ = CASES[name]
    with torch.no_grad():
        verdict = getattr(ex, f"check_{name}")(right, solution=True)
    assert verdict.ok and verdict.state == "right" and "✓" in str(verdict), verdict


@pytest.mark.parametrize("name", sorted(CASES))
def test_typical_mistakes_are_named(name):
    _, wrongs = CASES[name]
    assert len(wrongs) >= 2
    for wrong, words in wrongs:
        with torch.no_grad():
            verdict = getattr(ex, f"check_{name}")(wrong)
        assert verdict.state == "wrong" and not verdict, verdict
        assert words in verdict.en, (words, verdict.en)
        assert verdict.zh and "还不对" in verdict.zh


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_stub_is_not_written_yet_and_an_error_is_one_sentence(name):
    check = getattr(ex, f"check_{name}")
    for stub in (_stub, _raises):
        v = check(stub)
        assert v.state == "stub" and "Not written yet" in v.en and "还没有写" in v.zh
    v = check(lambda *a: 1 / 0)
    assert v.state == "error" and "ZeroDivisionError" in v.en and "\n" not in v.en and "Traceback" not in v.en


def test_a_reference_solution_that_fails_stops_the_build():
    with pytest.raises(ex.ExerciseFailed, match="kv_head.*does not pass"):
        ex.check_kv_head(lambda h, n, kv: h % kv, solution=True)


def test_a_checker_wants_a_function():
    with pytest.raises(anatomy.AnatomyError, match=r"check_kv_head\(my_function\)"):
        ex.check_kv_head(3)


def test_a_verdict_shows_in_the_readers_language_and_escapes():
    v = ex.Verdict("x", "wrong", "<b>no</b>", "不对")
    html = v._repr_html_()
    assert 'lang="en"' in html and 'lang="zh"' in html and "<b>" not in html and "anatomy-verdict-wrong" in html
