"""Right and typical wrong solutions for the exercises of Chapters 5–8 (probing, steering, logit lens, patchscopes):
checker -> (a right solution, [(a typical wrong solution, words of the sentence that must name it), ...])."""

import torch

import anatomy


def _ridge(X_train, y_train, X_test, alpha, standardise=True, test_own=False, centre=True):
    X_train, y_train, X_test = (torch.as_tensor(t, dtype=torch.float64) for t in (X_train, y_train, X_test))
    mean, std = (X_train.mean(0), X_train.std(0)) if standardise else (0.0, 1.0)
    Z = (X_train - mean) / std
    Zt = (X_test - X_test.mean(0)) / X_test.std(0) if test_own else (X_test - mean) / std
    bias = y_train.mean(0) if centre else 0.0
    W = torch.linalg.solve(Z.T @ Z + alpha * torch.eye(Z.shape[1], dtype=torch.float64), Z.T @ (y_train - bias))
    return Zt @ W + bias


def _control(X, y, train, test, seed, everywhere=False, shuffle=True, on_train=False):
    y = torch.as_tensor(y, dtype=torch.float64)
    rows = torch.cat([train, test]) if everywhere else train
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    shuffled = y.clone()
    if shuffle:
        shuffled[rows] = y[rows[order]]
    probe = anatomy.fit_probe(X, shuffled, train, test)
    if on_train:
        return probe.train_r2
    return anatomy.r2_score((shuffled if everywhere else y)[test], probe.prediction)


CASES = {
    "ridge_probe": (_ridge, [
        (lambda a, b, c, alpha: _ridge(a, b, c, alpha, test_own=True), "their own mean"),
        (lambda a, b, c, alpha: _ridge(a, b, c, alpha, centre=False), "did not centre"),
        (lambda a, b, c, alpha: _ridge(a, b, c, alpha, standardise=False), "did not standardise")]),
    "control_r2": (_control, [
        (lambda X, y, tr, te, s: _control(X, y, tr, te, s, everywhere=True), "held-out targets too"),
        (lambda X, y, tr, te, s: _control(X, y, tr, te, s, shuffle=False), "did not shuffle"),
        (lambda X, y, tr, te, s: _control(X, y, tr, te, s, on_train=True), "training rows")]),
}


def _steered(model, prompt, layer, vector, alpha, last_only=False, place=None):
    def add(h):
        if last_only:
            h = h.clone()
            h[:, -1] += alpha * vector.to(h.dtype)
            return h
        return h + alpha * vector.to(h.dtype)

    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with anatomy.edit(model, place or f"layers.{layer}", add), torch.no_grad():
        return torch.softmax(model.hf(ids).logits[0, -1].float(), -1)


def _loss_rise(model, texts, layer, vector, alpha, sign=1, steer=True, absolute=False):
    clean = anatomy.next_token_loss(model, texts, layer)
    with anatomy.steer(model, layer, vector, alpha if steer else 0.0):
        steered = anatomy.next_token_loss(model, texts, layer)
    return steered if absolute else sign * (steered - clean)


CASES.update({
    "steered_probs": (_steered, [
        (lambda m, p, layer, v, a: _steered(m, p, layer, v, a, place=f"layers.{layer - 1}"), "one layer off"),
        (lambda m, p, layer, v, a: _steered(m, p, layer, v, a, last_only=True), "last position only"),
        (lambda m, p, layer, v, a: _steered(m, p, layer, v, -a), "wrong way"),
        (lambda m, p, layer, v, a: _steered(m, p, layer, v, 0.0), "nothing changed")]),
    "loss_rise": (_loss_rise, [
        (lambda m, t, layer, v, a: _loss_rise(m, t, layer, v, a, sign=-1), "wrong sign"),
        (lambda m, t, layer, v, a: _loss_rise(m, t, layer, v, a, absolute=True), "steered loss itself"),
        (lambda m, t, layer, v, a: _loss_rise(m, t, layer, v, a, steer=False), "no change")]),
})


def _lens_rows(model, prompt, norm=True, twice=False):
    """Top token ID at every stage and position [L + 1, T], from anatomy.hidden_states (raw rows)."""
    with torch.no_grad():
        if twice:  # transformers' own hidden states: the last row comes already normed
            ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
            h = torch.stack(model.hf(ids, output_hidden_states=True).hidden_states)[:, 0]
        else:
            h = anatomy.hidden_states(model, prompt).states.to(model.dtype)
        return model.lm_head(model.final_norm(h) if norm else h).argmax(-1)


def _first_top1(model, prompt, norm=True, row=False):
    if norm:
        top = anatomy.logit_lens(model, prompt, k=1).top_ids[:, -1, 0]  # [L + 1]
    else:  # the rows read without the final norm, compared with their own last row
        with torch.no_grad():
            top = model.lm_head(anatomy.hidden_states(model, prompt).states[:, -1].to(model.dtype)).argmax(-1)
    r = int((top == top[-1]).nonzero()[0])
    return r if row else ("embedding" if r == 0 else r - 1)


CASES.update({
    "first_top1_layer": (_first_top1, [
        (lambda m, p: _first_top1(m, p, row=True), "row of the lens"),
        (lambda m, p: _first_top1(m, p, norm=False), "final norm"),
        (lambda m, p: m.n_layers - 1, "by definition")]),
    "lens_grid": (_lens_rows, [
        (lambda m, p: _lens_rows(m, p, twice=True), "normed twice"),
        (lambda m, p: _lens_rows(m, p, norm=False), "final norm"),
        (lambda m, p: _lens_rows(m, p).T, "transposed"),
        (lambda m, p: _lens_rows(m, p)[1:], "embedding row is missing")]),
})


def _placeholder(model, prompt, placeholder, special=True, strip=True):
    ids = model.tokenizer(prompt, return_tensors="pt", add_special_tokens=special)["input_ids"][0]
    texts = [model.tokenizer.decode([int(i)]) for i in ids]
    hits = [p for p, t in enumerate(texts) if (t.strip() if strip else t) == placeholder]
    return hits[0] if hits else -1


def _patched(model, source, target, layer, placeholder, source_layer=None, last=False, position=-1, patch=True):
    vector = anatomy.source_vector(model, source, layer if source_layer is None else source_layer, position)
    ids = model.tokenizer(target, return_tensors="pt")["input_ids"]
    where = ids.shape[1] - 1 if last else anatomy.placeholder_position(model, target, placeholder)
    with torch.no_grad():
        if not patch:
            return torch.softmax(model.hf(ids).logits[0, -1].float(), -1)
        with anatomy.patching(model, layer, where, vector):
            return torch.softmax(model.hf(ids).logits[0, -1].float(), -1)


def _repeating(model, source, layers, keep=True, whole=False):
    last = source if whole else model.tokenizer.decode(model.tokenizer(source)["input_ids"][-1:]).strip()
    scopes = anatomy.patchscope_sweep(model, source, target_prompt="cat → cat; 1135 → 1135; hello → hello; ? →",
                                      placeholder="?", layers=layers, max_new_tokens=1)
    return [s.source_layer for s in scopes if (s.continuation.strip() == last) == keep]


CASES.update({
    "placeholder_position": (_placeholder, [
        (lambda m, p, ph: p.index(ph), "counted characters"),
        (lambda m, p, ph: _placeholder(m, p, ph, special=False), "one position too early"),
        (lambda m, p, ph: _placeholder(m, p, ph, strip=False), "no token matched")]),
    "patched_probs": (_patched, [
        (lambda m, s, t, layer, ph: _patched(m, s, t, layer, ph, source_layer=layer - 1), "one layer off"),
        (lambda m, s, t, layer, ph: _patched(m, s, t, layer, ph, last=True), "last position"),
        (lambda m, s, t, layer, ph: _patched(m, s, t, layer, ph, position=0), "first token"),
        (lambda m, s, t, layer, ph: _patched(m, s, t, layer, ph, patch=False), "nothing changed")]),
    "repeating_layers": (_repeating, [
        (lambda m, s, layers: _repeating(m, s, layers, keep=False), "does not repeat"),
        (lambda m, s, layers: _repeating(m, s, layers, whole=True), "no layer counted")]),
})
