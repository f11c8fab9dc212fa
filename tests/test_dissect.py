"""Chapter 13, the dissection lab: parameter counts by role, named parameters, attention weights, heads, sinks."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import anatomy  # noqa: E402
from anatomy import hooks  # noqa: E402

PROMPT = "the apple is green. what color is the apple?"


@pytest.fixture(scope="module")
def attention(model):
    return anatomy.attention_weights(model, PROMPT)


def _numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- parameters ------------------------------------------------------------------------------


def test_breakdown_adds_up_to_num_parameters(model):
    b = anatomy.parameter_breakdown(model)
    assert b.total == model.hf.num_parameters()
    assert sum(b.totals.values()) == model.hf.num_parameters()
    assert b.lm_head == 0 and b.other == 0 and b.tied
    # state_dict() lists the tied LM head under its own name too: summing it counts the table twice
    state_sum = sum(v.numel() for v in model.hf.state_dict().values())
    assert state_sum - b.total == model.embedding_table.numel()


def test_breakdown_matches_per_module_sums(model):
    b = anatomy.parameter_breakdown(model)
    assert b.embedding == model.vocab_size * model.d_model
    assert b.final_norm == _numel(model.final_norm) == model.d_model
    for i, layer in enumerate(model.layers):
        attn, norms_in_attn = layer.self_attn, sum(_numel(m) for m in layer.self_attn.modules() if "Norm" in type(m).__name__)
        assert int(b.per_layer[i].sum()) == _numel(layer)
        assert int(b.per_layer[i, 0]) == _numel(attn) - norms_in_attn
        assert int(b.per_layer[i, 1]) == _numel(layer.mlp)
    qk_norm = model.arch.blocks[-1].attn.q_norm is not None  # Gemma 3 normalizes queries and keys
    assert norms_in_attn == (2 * model.head_dim if qk_norm else 0)  # q_norm and k_norm


def test_attention_count_matches_the_shapes(model):
    d, H, KV, hd = model.d_model, model.n_heads, model.n_kv_heads, model.head_dim
    expected = d * H * hd + 2 * d * KV * hd + H * hd * d  # W_Q, W_K, W_V (grouped), W_O; no biases
    assert (anatomy.parameter_breakdown(model).per_layer[:, 0] == expected).all()


def test_gemma_keeps_most_parameters_in_its_embedding_table(gemma):
    b = anatomy.parameter_breakdown(gemma)
    assert b.embedding == 262_144 * 640
    assert b.embedding / b.total > 0.6


def test_parameter_groups_and_list(model):
    names = [n for n, _ in model.hf.named_parameters()]
    assert not any(n.startswith("lm_head") for n in names)  # tied: not listed a second time
    groups = anatomy.parameter_groups(model)
    by_name = {row[0]: row for row in groups.rows}
    q = next(k for k in by_name if k.endswith("self_attn.q_proj.weight"))
    assert by_name[q][2] == model.n_layers and ".N." in q
    assert groups.rows[-1][2] == len(names)
    full = anatomy.parameter_list(model)
    assert len(full.content.rows) == len(names)
    assert full._repr_html_().startswith("<details><summary>")


def test_details_escapes_text():
    d = anatomy.Details("<b>x</b>", anatomy.Table(("a",), (("<script>",),)))
    assert "<script>" not in d._repr_html_() and "&lt;b&gt;" in d._repr_html_()


def test_layer_parameters(model):
    t = anatomy.layer_parameters(model, 0)
    rows = {r[0]: r for r in t.rows}
    assert rows["self_attn.k_proj.weight"][2] == f"{model.d_model} → {model.n_kv_heads * model.head_dim}"
    assert rows["mlp.down_proj.weight"][4] == "feed-forward"
    with pytest.raises(anatomy.AnatomyError, match="out of range"):
        anatomy.layer_parameters(model, model.n_layers)


# --- attention -------------------------------------------------------------------------------


def test_attention_rows_sum_to_one_and_are_causal(model, attention):
    T = len(anatomy.tokenize(model, PROMPT))
    assert attention.weights.shape == (model.n_layers, model.n_heads, T, T)
    assert torch.allclose(attention.weights.sum(-1), torch.ones(model.n_layers, model.n_heads, T), atol=1e-5)
    upper = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    assert (attention.weights[..., upper] == 0).all()


def test_head_search_matches_a_direct_computation(model, attention):
    src, tgt = attention.position("apple", occurrence=1), attention.position("green")
    search = anatomy.find_heads(attention, src, tgt, k=3)
    ids = model.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.hf(input_ids=ids, output_attentions=True)
    best, best_w = None, -1.0
    for layer, a in enumerate(out.attentions):  # a: [1, H, T, T]
        for head in range(a.shape[1]):
            w = float(a[0, head, src, tgt])
            if w > best_w:
                best, best_w = (layer, head), w
    assert search.top[0][:2] == best
    assert search.top[0][2] == pytest.approx(best_w, abs=1e-6)
    assert search.top[0][2] >= search.top[1][2] >= search.top[2][2]
    layer, head = best
    row = out.attentions[layer][0, head, src]
    assert int(search.ranks[layer, head]) == int((row > row[tgt]).sum()) + 1


@torch.no_grad()
def test_llama_weights_are_softmax_of_queries_dot_keys(smollm2):
    """Recompute one layer of SmolLM2 by hand: RoPE on q and k, q·k/sqrt(d_head), causal mask, softmax."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    layer = 9
    att = anatomy.attention_weights(smollm2, PROMPT)
    ids = smollm2.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    T, H, KV, hd = ids.shape[1], smollm2.n_heads, smollm2.n_kv_heads, smollm2.head_dim
    with hooks.capture(smollm2, f"layers.{layer}.attn.q", f"layers.{layer}.attn.k") as seen:
        smollm2.hf(input_ids=ids)
    q = seen[f"layers.{layer}.attn.q"].view(1, T, H, hd).transpose(1, 2)  # [1, H, T, hd]
    k = seen[f"layers.{layer}.attn.k"].view(1, T, KV, hd).transpose(1, 2)  # [1, KV, T, hd]
    cos, sin = smollm2.hf.model.rotary_emb(q, torch.arange(T)[None])
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    k = k.repeat_interleave(H // KV, dim=1)  # grouped-query attention: each K/V head serves H/KV query heads
    scores = q @ k.transpose(-1, -2) / hd**0.5  # [1, H, T, T]
    scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    assert torch.allclose(scores.softmax(-1)[0], att.weights[layer], atol=1e-5)


def test_sink_share(model, attention):
    s = anatomy.sink_share(attention)
    assert s.shape == (model.n_layers, model.n_heads)
    assert torch.allclose(s, attention.weights[:, :, 1:, 0].mean(-1))
    assert float(s.mean()) > 0.3  # the first position collects a large share in both models


def test_bad_positions_raise(attention):
    with pytest.raises(anatomy.AnatomyError, match="causal"):
        anatomy.find_heads(attention, attention.position("green"), attention.position("apple", occurrence=1))
    with pytest.raises(anatomy.AnatomyError, match="occurs 0 time"):
        attention.position("banana")
    with pytest.raises(anatomy.AnatomyError, match="occurs 2 time"):
        attention.position("apple", occurrence=2)
    with pytest.raises(anatomy.AnatomyError, match="not a position"):
        anatomy.find_heads(attention, 99, 0)
    with pytest.raises(anatomy.AnatomyError, match="Head"):
        attention.head(0, attention.n_heads)


def test_sink_needs_two_tokens(smollm2):
    with pytest.raises(anatomy.AnatomyError, match="single token"):
        anatomy.sink_share(anatomy.attention_weights(smollm2, "apple"))


# --- figures ---------------------------------------------------------------------------------


def test_figures(model, attention):
    try:
        grid = anatomy.plot.head_grid(attention)
        images = [im for ax in grid.axes for im in ax.get_images()]
        n_cells = sum(int((~torch.isnan(torch.as_tensor(im.get_array().filled(float("nan"))))).sum()) for im in images)
        T = len(attention.tokens)
        assert n_cells == model.n_layers * model.n_heads * T * T  # every head of every layer drawn once
        assert len({id(im.norm) for im in images}) == 1  # one shared colour scale
        link = anatomy.plot.svg_download(grid, 'grid".svg')
        assert link.text.lstrip().startswith("<?xml") and "<svg" in link.text
        assert 'download="grid&quot;.svg"' in link._repr_html_()
        with pytest.raises(anatomy.AnatomyError, match=".svg"):
            anatomy.plot.svg_download(grid, "grid.png")
        head = anatomy.plot.head_map(attention, 0, 0)
        assert [t.get_text() for t in head.axes[0].get_yticklabels()] == attention.labels
        corner = anatomy.plot.weight_corner(model.layers[0].mlp.up_proj.weight)
        assert corner.axes[0].get_images()[0].get_array().shape == (100, 100)
        anatomy.plot.parameter_breakdown([anatomy.parameter_breakdown(model)])
        anatomy.plot.sink_shares({model.name: anatomy.sink_share(attention)})
    finally:
        plt.close("all")
