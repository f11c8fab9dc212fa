"""CASES for the exercises of Chapters 16-18 (sparse autoencoders, circuits, relations): read by tests/test_exercises.py."""

import torch

import anatomy


# --- Chapter 16 -----------------------------------------------------------------------------------------
def _topk(sae, x, dim=-1, relu=True, b_dec=True, scale=True, by_size=False):
    z = x / sae.scale if scale else x
    pre = (z - sae.b_dec if b_dec else z) @ sae.W_enc.T + sae.b_enc  # [N, m]
    f = torch.relu(pre) if relu else pre
    top = (pre.abs() if by_size else f).topk(sae.k, dim=dim)
    return torch.zeros_like(f).scatter(dim, top.indices, f.gather(dim, top.indices))


def _sae_loss(sae, x, per_coordinate=False, scaled=True, sparsity=True):
    a = sae.encode(x)  # [N, m]
    e = sae.decode(a) - x  # [N, d]
    e = e / sae.scale if scaled else e
    err = (e ** 2).mean() if per_coordinate else (e ** 2).sum(-1).mean()
    return float(err + sae.l1 * a.sum(-1).mean()) if sparsity else float(err)


def _fve(sae, x, mean, own_mean=False, unexplained=False, centred=True):
    base = x.mean(0) if own_mean else mean
    err = ((x - sae.decode(sae.encode(x))) ** 2).sum()
    total = ((x - base) ** 2).sum() if centred else (x ** 2).sum()
    return float(err / total) if unexplained else float(1 - err / total)


# --- Chapter 17 -----------------------------------------------------------------------------------------
def _ids(model, prompt):
    return model.tokenizer(prompt, return_tensors="pt")["input_ids"]


def _logit_difference(model, prompt, a, b, position=-1, probs=False):
    z = model.hf(_ids(model, prompt)).logits[0, position]
    z = z.softmax(-1) if probs else z
    return float(z[a] - z[b])


def _patch(model, clean, corrupted, layer, position, a, b, shift=0, every=False, last=False, noising=False):
    if noising:
        clean, corrupted = corrupted, clean
    place = f"layers.{layer - shift}" if layer - shift >= 0 else "embedding"
    pos = -1 if last else position
    with anatomy.capture(model, place) as seen:
        model.hf(_ids(model, clean))

    def write(h):  # h: [1, T, d]
        h = h.clone()
        if every:
            h[0] = seen[place][0]
        else:
            h[0, pos] = seen[place][0, pos]
        return h

    with anatomy.edit(model, place, write):
        z = model.hf(_ids(model, corrupted)).logits[0, -1]
    return float(z[a] - z[b])


def _recovered(model, clean, corrupted, layers, a, b, shift=0, missing=False, raw=False):
    d_clean = _logit_difference(model, clean, a, b)
    d_corrupted = _logit_difference(model, corrupted, a, b)
    patched = torch.tensor([_patch(model, clean, corrupted, l, -1, a, b, shift=shift) for l in layers])
    if raw:
        return patched
    r = (patched - d_corrupted) / (d_clean - d_corrupted)
    return 1 - r if missing else r


# --- Chapter 18 -----------------------------------------------------------------------------------------
def _map_answers(w, b, beta, c, s):
    return c[(beta * s @ w.T + b).argmax(-1)]


def _faithfulness(lre, reading, test, against="answers", layer=None, every=False):
    idx = list(range(len(reading.subjects))) if every else list(test)
    li = lre.layers.index(lre.layer) if layer is None else layer
    truth = getattr(reading, against)[idx]
    return float((lre.predict(reading.vectors[idx, li]) == truth).float().mean())


# checker -> (a right solution, [(a typical wrong solution, words of the sentence that must name it)])
CASES = {
    "topk_encode": (_topk, [
        (lambda sae, x: _topk(sae, x, dim=0), "dim=0"),
        (lambda sae, x: _topk(sae, x, relu=False), "ReLU"),
        (lambda sae, x: _topk(sae, x, by_size=True), "absolute value"),
        (lambda sae, x: _topk(sae, x, b_dec=False), "b_dec"),
        (lambda sae, x: _topk(sae, x, scale=False), "sae.scale")]),
    "sae_loss": (_sae_loss, [
        (lambda sae, x: _sae_loss(sae, x, per_coordinate=True), "F.mse_loss"),
        (lambda sae, x: _sae_loss(sae, x, scaled=False), "residual units"),
        (lambda sae, x: _sae_loss(sae, x, sparsity=False), "sparsity term")]),
    "fve": (_fve, [
        (lambda sae, x, mean: _fve(sae, x, mean, own_mean=True), "training mean"),
        (lambda sae, x, mean: _fve(sae, x, mean, unexplained=True), "1 minus"),
        (lambda sae, x, mean: _fve(sae, x, mean, centred=False), "Σ‖x‖²")]),
    "logit_difference": (_logit_difference, [
        (lambda m, p, a, b: _logit_difference(m, p, b, a), "other way round"),
        (lambda m, p, a, b: _logit_difference(m, p, a, b, position=0), "first position"),
        (lambda m, p, a, b: _logit_difference(m, p, a, b, probs=True), "probabilities")]),
    "patch_one": (_patch, [
        (lambda m, c, k, l, p, a, b: _patch(m, c, k, l, p, a, b, every=True), "every position"),
        (lambda m, c, k, l, p, a, b: _patch(m, c, k, l, p, a, b, shift=1), "one layer off"),
        (lambda m, c, k, l, p, a, b: _patch(m, c, k, l, p, a, b, last=True), "last position"),
        (lambda m, c, k, l, p, a, b: _patch(m, c, k, l, p, a, b, noising=True), "noising")]),
    "recovered": (_recovered, [
        (lambda m, c, k, ls, a, b: _recovered(m, c, k, ls, a, b, missing=True), "still missing"),
        (lambda m, c, k, ls, a, b: _recovered(m, c, k, ls, a, b, raw=True), "normalise"),
        (lambda m, c, k, ls, a, b: _recovered(m, c, k, ls, a, b, shift=1), "one layer off")]),
    "relation_prompt": (anatomy.relation_prompt, [
        (lambda demos, s: anatomy.relation_prompt(demos, s) + " ", "space after the last colon"),
        (lambda demos, s: "\n".join(f"{a}: {b}" for a, b in demos) + f"{s}:", "newline"),
        (lambda demos, s: "".join(f"{a}:{b}\n" for a, b in demos) + f"{s}:", "one space after the colon")]),
    "map_answers": (_map_answers, [
        (lambda w, b, beta, c, s: (beta * s @ w.T + b).argmax(-1), "token ID"),
        (lambda w, b, beta, c, s: _map_answers(w, b, 1.0, c, s), "left out β"),
        (lambda w, b, beta, c, s: c[(beta * (s @ w.T + b)).argmax(-1)], "on the bias too"),
        (lambda w, b, beta, c, s: c[(beta * s @ w.T + b).argmax(0)], "dim=0")]),
    "faithfulness": (_faithfulness, [
        (lambda lre, r, t: _faithfulness(lre, r, t, against="expected"), "expected objects"),
        (lambda lre, r, t: _faithfulness(lre, r, t, layer=0), "first layer tried"),
        (lambda lre, r, t: _faithfulness(lre, r, t, every=True), "every subject")]),
}
