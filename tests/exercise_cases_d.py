"""Exercise cases of Chapters 13-15 (read by tests/test_exercises.py): checker -> (a right solution,
[(a typical wrong solution, words of the sentence that must name it), ...])."""

import math

import torch

import anatomy


# --- Chapter 13 -------------------------------------------------------------------------------------
def _by_role(model, unit=True, twice=False, qk_in_attention=False):
    counts = {"embedding table": 0, "attention": 0, "feed-forward": 0, "norms": 0}
    params = model.hf.state_dict().items() if twice else model.hf.named_parameters()
    for name, p in params:
        n = p.numel() if unit else 1
        if "norm" in name and not (qk_in_attention and ("q_norm" in name or "k_norm" in name)):
            counts["norms"] += n
        elif "embed" in name or name == "lm_head.weight":
            counts["embedding table"] += n
        elif "self_attn" in name:
            counts["attention"] += n
        elif "mlp" in name:
            counts["feed-forward"] += n
    return counts


def _top(w, source, target, k, n=None, largest=True):
    scores = w[:, :, source, target]
    n = n or w.shape[1]
    return [(int(f) // n, int(f) % n) for f in scores.flatten().topk(k, largest=largest).indices]


# --- Chapter 14 -------------------------------------------------------------------------------------
def _loss(model, text, shift=1, reduce="mean", base=math.e):
    ids = model.tokenizer(text, return_tensors="pt")["input_ids"]
    logits = model.hf(ids).logits[0]
    T = ids.shape[1]
    nll = -torch.log_softmax(logits[:T - shift], -1).gather(-1, ids[0, shift:, None])[:, 0] / math.log(base)
    return float(nll.sum() if reduce == "sum" else nll.mean())


def _acts(model, prompt, layer):
    place = f"layers.{layer}.mlp.neurons"
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with anatomy.capture(model, place) as seen:
        model.hf(ids)
    return seen[place][0]  # [T, m]


def _means(model, prompts, layer, pooled=False, swap=False, shift=0):
    acts = [_acts(model, p, layer + shift) for p in prompts]
    first = torch.stack([a[0] for a in acts]).mean(0)
    rest = torch.cat([a[1:] for a in acts]).mean(0)
    if pooled:
        first = rest = torch.cat(acts).mean(0)
    return (rest, first) if swap else (first, rest)


def _ffn_loss(model, texts, layer, means, zero=False, pooled=False):
    def put(x):  # [B, T, m]
        x = x.clone()
        x[:, :1] = 0 if zero else (means.neurons if pooled else means.first_neurons)
        x[:, 1:] = 0 if zero else means.neurons
        return x

    with anatomy.edit(model, f"layers.{layer}.mlp.neurons", put):
        return anatomy.next_token_loss(model, texts, layer)


# --- Chapter 15 -------------------------------------------------------------------------------------
def _task_vector(model, prompts, layer, shift=1, first_only=False):
    rows = []
    for p in prompts:
        ids = model.tokenizer(p, return_tensors="pt")["input_ids"]
        rows.append(model.hf(ids, output_hidden_states=True).hidden_states[layer + shift][0, -1])
    return rows[0] if first_only else torch.stack(rows).mean(0)


def _patched(model, word, layer, vector, add=False, every=False):
    ids = model.tokenizer(anatomy.zero_shot_prompt(word), return_tensors="pt")["input_ids"]

    def put(h):
        h = h.clone()
        if every:
            h[:] = vector
        else:
            h[:, -1] = h[:, -1] + vector if add else vector
        return h

    with anatomy.edit(model, f"layers.{layer}", put):
        return model.hf(ids).logits[0, -1]


def _remove(x, d):
    u = d / d.norm()
    return x - (x @ u)[..., None] * u


CASES = {
    "parameters_by_role": (_by_role, [
        (lambda m: _by_role(m, unit=False), "tensors, not numbers"),
        (lambda m: _by_role(m, twice=True), "counted twice"),
        (lambda m: _by_role(m, qk_in_attention=True), "q_norm and k_norm")]),
    "sink_share": (lambda w: w[:, :, 1:, 0].mean(-1), [
        (lambda w: w[:, :, :, 0].mean(-1), "own row"),
        (lambda w: w[:, :, 0, 1:].mean(-1), "column 0"),
        (lambda w: w[:, :, 1:, 0].sum(-1), "added the weights")]),
    "find_heads": (_top, [
        (lambda w, s, t, k: _top(w, s, t, k, n=w.shape[0]), "f // H"),
        (lambda w, s, t, k: _top(w, s, t, k, largest=False), "smallest"),
        (lambda w, s, t, k: _top(w, t, s, k), "swapped")]),
    "next_token_loss": (_loss, [
        (lambda m, t: _loss(m, t, shift=0), "not shifted"),
        (lambda m, t: _loss(m, t, reduce="sum"), "added the losses"),
        (lambda m, t: _loss(m, t, base=2), "bits")]),
    "position_means": (_means, [
        (lambda m, p, layer: _means(m, p, layer, pooled=True), "pooled"),
        (lambda m, p, layer: _means(m, p, layer, swap=True), "swapped"),
        (lambda m, p, layer: _means(m, p, layer, shift=1), "one layer off")]),
    "ffn_mean_ablation": (_ffn_loss, [
        (lambda m, t, layer, means: _ffn_loss(m, t, layer, means, zero=True), "zero ablation"),
        (lambda m, t, layer, means: _ffn_loss(m, t, layer, means, pooled=True), "its own mean"),
        (lambda m, t, layer, means: _ffn_loss(m, t, layer + 1, means), "one layer off")]),
    "task_vector": (_task_vector, [
        (lambda m, p, layer: _task_vector(m, p, layer, shift=0), "one layer off"),
        (lambda m, p, layer: _task_vector(m, p, layer, first_only=True), "first prompt"),
        (lambda m, p, layer: torch.stack([m.hf(m.tokenizer(q, return_tensors="pt")["input_ids"],
                                               output_hidden_states=True).hidden_states[layer + 1][0].mean(0)
                                          for q in p]).mean(0), "every position")]),
    "patched_logits": (_patched, [
        (lambda m, w, layer, v: _patched(m, w, layer, v, add=True), "added the vector"),
        (lambda m, w, layer, v: _patched(m, w, layer, v, every=True), "every position"),
        (lambda m, w, layer, v: _patched(m, w, layer - 1, v), "one layer off")]),
    "remove_direction": (_remove, [
        (lambda x, d: x - (x @ d)[..., None] * d, "not normalised"),
        (lambda x, d: (x @ (d / d.norm()))[..., None] * (d / d.norm()), "component along"),
        (lambda x, d: d - (x @ d)[..., None] * x / (x * x).sum(-1, keepdim=True), "wrong vector")]),
}
