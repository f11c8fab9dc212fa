"""Right and typical wrong solutions for the exercises of Chapters 1–4 added by ex-a (read by tests/test_exercises.py).

checker -> (a right solution, [(a typical wrong solution, words of the sentence that must name it), ...])."""

import torch

import anatomy


# --- Chapter 1 ----------------------------------------------------------------------------------------------
def _count(model, text, special=False):
    return len(model.tokenizer(text, add_special_tokens=special)["input_ids"])


def _continue(model, prompt, n, keep_prompt=False, append=True):
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    start, new = ids, []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model.hf(ids if append else start).logits[0, -1].argmax())
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return ids[0].tolist() if keep_prompt else new


# --- Chapter 2 ----------------------------------------------------------------------------------------------
def _embed(model, prompt, scale=None, special=True):
    ids = model.tokenizer(prompt, add_special_tokens=special, return_tensors="pt")["input_ids"][0]
    return model.embedding_table.detach()[ids] * (model.embed_scale if scale is None else scale)


def _rank(model, a, b, c, target, cosine=True, leave_out=True, base=1):
    t = model.embedding_table.detach()
    u = t / t.norm(dim=-1, keepdim=True)
    s = (u if cosine else t) @ (u[a] - u[b] + u[c])
    if leave_out:
        s[[a, b, c]] = -float("inf")
    return int((s > s[target]).sum()) + base


# --- Chapter 3 ----------------------------------------------------------------------------------------------
def _gaps(model, a, b, layer, stage_shift=1, signed=False, hf_entries=False):
    def stage(p):
        if hf_entries:  # transformers' entries: the last one carries the final norm
            ids = model.tokenizer(p, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                return model.hf(ids, output_hidden_states=True).hidden_states[layer + stage_shift][0]
        return anatomy.hidden_states(model, p).states[layer + stage_shift]
    d = stage(a) - stage(b)
    return d.max(-1).values if signed else d.abs().max(-1).values


def _normalized(a, b, states, diagonal=False, how="rescale"):
    u = torch.nn.functional.normalize(states, dim=-1)
    sims = u @ u.T
    base = sims.mean() if diagonal else sims[~torch.eye(len(u), dtype=torch.bool)].mean()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=0)
    return {"rescale": (cos - base) / (1 - base), "divide": cos / base, "subtract": cos - base}[how]


# --- Chapter 4 ----------------------------------------------------------------------------------------------
def _logits(model, h, norm=True, scale=1.0, probs=False):
    with torch.no_grad():
        z = (model.final_norm(h) if norm else h) @ (model.lm_head.weight * scale).T
    return torch.softmax(z, -1) if probs else z


def _logprob(model, prompt, ids, shift=0, log=True, as_probability=False):
    start = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    full = torch.cat([start, torch.tensor([list(ids)])], dim=1)
    with torch.no_grad():
        logits = model.hf(full).logits[0]
    t = start.shape[1]
    rows = logits[t - 1 + shift: t - 1 + shift + len(ids)]
    scores = torch.log_softmax(rows, -1) if log else rows
    total = float(scores[torch.arange(len(ids)), torch.tensor(ids)].sum())
    return float(torch.exp(torch.tensor(total))) if as_probability else total


CASES = {
    "count_tokens": (_count, [
        (lambda m, t: len(t), "counted characters"),
        (lambda m, t: len(t.encode("utf-8")), "UTF-8 bytes"),
        (lambda m, t: _count(m, t, special=True), "<bos>")]),
    "greedy_continuation": (_continue, [
        (lambda m, p, n: _continue(m, p, n, append=False), "append each chosen token"),
        (lambda m, p, n: _continue(m, p, n, keep_prompt=True), "prompt's IDs"),
        (lambda m, p, n: _continue(m, p, n + 1), "exactly n")]),
    "embedding_step": (_embed, [
        (lambda m, p: _embed(m, p, scale=1.0), "model.embed_scale"),
        (lambda m, p: _embed(m, p, scale=m.d_model ** 0.5), "does not scale"),
        (lambda m, p: _embed(m, p, special=False), "<bos>")]),
    "analogy_rank": (_rank, [
        (lambda m, a, b, c, t: _rank(m, a, b, c, t, leave_out=False), "leave a, b and c out"),
        (lambda m, a, b, c, t: _rank(m, a, b, c, t, cosine=False), "dot product"),
        (lambda m, a, b, c, t: _rank(m, a, b, c, t, base=0), "counts from 0")]),
    "position_differences": (_gaps, [
        (lambda m, a, b, layer: _gaps(m, a, b, layer, stage_shift=0), "one stage too early"),
        (lambda m, a, b, layer: _gaps(m, a, b, layer, hf_entries=True), "final norm"),
        (lambda m, a, b, layer: _gaps(m, a, b, layer, signed=True), "absolute value")]),
    "normalized_similarity": (_normalized, [
        (lambda a, b, s: _normalized(a, b, s, diagonal=True), "paired with itself"),
        (lambda a, b, s: _normalized(a, b, s, how="divide"), "divided by the baseline"),
        (lambda a, b, s: _normalized(a, b, s, how="subtract"), "1 − baseline")]),
    "logits_by_hand": (_logits, [
        (lambda m, h: _logits(m, h, norm=False), "final norm"),
        (lambda m, h: _logits(m, h, scale=m.embed_scale), "embedding scale"),
        (lambda m, h: _logits(m, h, probs=True), "probabilities")]),
    "continuation_logprob": (_logprob, [
        (lambda m, p, ids: _logprob(m, p, ids, shift=1), "one position earlier"),
        (lambda m, p, ids: _logprob(m, p, ids, log=False), "raw logits"),
        (lambda m, p, ids: _logprob(m, p, ids, as_probability=True), "probability itself")]),
}
