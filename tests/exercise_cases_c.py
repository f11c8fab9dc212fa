"""CASES for the exercises of Chapters 9-12 added by ex-c (read by tests/test_exercises.py)."""

import torch


def _rope(x, positions, theta, interleaved=False, sign=1.0, shift=0):
    angle = (positions.float() + shift)[:, None] * theta[None, :]
    cos, sin = angle.cos(), sign * angle.sin()
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2)
    half = theta.shape[0]
    a, b = x[..., :half], x[..., half:]
    return torch.cat((a * cos - b * sin, a * sin + b * cos), -1)


def _after(model, layer, x, attn_out, post=True):
    norm = model.arch.blocks[layer].post_attn_norm
    if post and norm is not None:
        attn_out = model.layers[layer].get_submodule(norm.path)(attn_out)
    return x + attn_out


def _share(head_out, W_o, head, strided=False):
    hd = head_out.shape[-1]
    cols = slice(head, None, W_o.shape[1] // hd) if strided else slice(head * hd, (head + 1) * hd)
    return head_out @ W_o[:, cols].T


def _gqa(q, k, scale, tile=False, mask=True):
    g = q.shape[0] // k.shape[0]
    k = k.repeat(g, 1, 1) if tile else k.repeat_interleave(g, 0)
    s = q @ k.transpose(-1, -2) * scale
    if mask:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1)


def _ffn_share(model, per_layer=3, tied_twice=False):
    import anatomy

    w = anatomy.ffn_weights(model, 0)
    ffn = model.n_layers * per_layer * model.d_model * w.n_neurons
    total = sum(p.numel() for p in model.hf.parameters())
    return ffn / (total + (model.lm_head.weight.numel() if tied_twice else 0))


def _value_neuron(model, layer, token_id, key="down", pick="argmax"):
    import anatomy

    w = anatomy.ffn_weights(model, layer)
    u = model.lm_head.weight[token_id]
    s = u @ w.down if key == "down" else getattr(w, key) @ u
    return int(getattr(s, pick)())


def _nudge(n_layers, n_tokens, layer, position, same_row=False, shift=1):
    moved = torch.zeros(n_layers + 1, n_tokens, dtype=torch.bool)
    r = layer + shift
    moved[r, position] = True
    moved[r + 1:, position:] = True
    if same_row:
        moved[r, position:] = True
    return moved


def _schedule(n_prompt, n_new, n_layers, one_by_one=False, wait=0):
    T, L = n_prompt + n_new, n_layers
    s = torch.zeros(T, L + 1, dtype=torch.long)
    for t in range(T):
        s[t, 0] = (t if one_by_one else 0) if t < n_prompt else s[t - 1, L] + wait
        for layer in range(1, L + 1):
            s[t, layer] = s[: t + 1, layer - 1].max() + 1
    return s[:, 1:]


def _kv(model, n_tokens, heads=None, kv=2):
    return n_tokens * model.n_layers * kv * (heads or model.n_kv_heads) * model.head_dim


CASES = {
    "rope": (_rope, [
        (lambda x, p, t: _rope(x, p, t, interleaved=True), "neighbouring dimensions"),
        (lambda x, p, t: _rope(x, p, t, sign=-1.0), "wrong way"),
        (lambda x, p, t: _rope(x, p, t, shift=1), "one position off")]),
    "after_attention": (_after, [
        (lambda m, layer, x, a: _after(m, layer, x, a, post=False), "normalizes the attention output"),
        (lambda m, layer, x, a: x + m.layers[layer].post_attention_layernorm(a), "in front of the FFN"),
        (lambda m, layer, x, a: _after(m, layer, x, a) - x, "residual connection")]),
    "head_share": (_share, [
        (lambda x, W, h: _share(x, W, h, strided=True), "consecutive columns"),
        (lambda x, W, h: x @ W[h * x.shape[-1]:(h + 1) * x.shape[-1]], "sliced rows")]),
    "gqa_weights": (_gqa, [
        (lambda q, k, s: _gqa(q, k, s, tile=True), "repeat_interleave"),
        (lambda q, k, s: _gqa(q, k, s, mask=False), "causal mask"),
        (lambda q, k, s: _gqa(q, k, 1.0), "scale")]),
    "ffn_share": (_ffn_share, [
        (lambda m: _ffn_share(m, per_layer=2), "three"),
        (lambda m: _ffn_share(m, tied_twice=True), "tied"),
        (lambda m: _ffn_share(m) / m.n_layers, "one layer")]),
    "value_neuron": (_value_neuron, [
        (lambda m, layer, t: _value_neuron(m, layer, t, key="up"), "key"),
        (lambda m, layer, t: _value_neuron(m, layer, t, pick="argmin"), "lowers")]),
    "nudge": (_nudge, [
        (lambda L, T, layer, p: _nudge(L, T, layer, p, same_row=True), "to the right in the nudged layer"),
        (lambda L, T, layer, p: _nudge(L, T, layer, p, shift=0), "one row off")]),
    "schedule": (_schedule, [
        (lambda p, n, L: _schedule(p, n, L, one_by_one=True), "one per step"),
        (lambda p, n, L: _schedule(p, n, L, wait=1), "a step too many")]),
    "kv_cache": (_kv, [
        (lambda m, n: _kv(m, n, heads=m.n_heads), "K/V heads only"),
        (lambda m, n: _kv(m, n, kv=1), "values too")]),
}
