"""anatomy.run: batches with padding, runs up to a place and from a layer, last tokens, chosen LM-head rows."""

import pytest
import torch

import anatomy
from anatomy import hooks, run

PROMPTS = ["The capital of France is", "My favourite food is pizza, and on Sundays I", "Hello"]


def _alone(model, prompt, layer):
    """The output of ``layer`` at the last token, for the prompt run alone. [d]"""
    return anatomy.hidden_states(model, prompt).states[layer + 1, -1]


@torch.no_grad()
def test_batch_pads_on_the_right_and_last_reads_each_prompts_own_last_token(model):
    b = run.batch(model, PROMPTS)
    assert b.ids.shape == (3, int(b.lengths.max())) and b.mask.sum(1).tolist() == b.lengths.tolist()
    assert all(b.mask[k, :n].all() and not b.mask[k, n:].any() for k, n in enumerate(b.lengths.tolist()))
    h = run.last(run.run_to(model, b, "layers.3"), b).float().cpu()  # [3, d]
    for k, p in enumerate(PROMPTS):
        torch.testing.assert_close(h[k], _alone(model, p, 3), rtol=1e-4, atol=1e-4)


def test_batches_keep_every_text_once_with_its_index(smollm2):
    seen = {}
    for idx, b in run.batches(smollm2, PROMPTS * 3, 4):
        assert len(idx) == len(b) <= 4
        for row, i in enumerate(idx):
            seen[i] = b.ids[row, :int(b.lengths[row])].tolist()
    assert sorted(seen) == list(range(9))
    assert all(seen[i] == smollm2.tokenizer(t)["input_ids"] for i, t in enumerate(PROMPTS * 3))


@torch.no_grad()
def test_run_to_stops_after_the_place(smollm2):
    b = run.batch(smollm2, PROMPTS)
    called = []
    handles = [layer.register_forward_hook(lambda *a, i=i: called.append(i)) for i, layer in enumerate(smollm2.layers)]
    try:
        run.run_to(smollm2, b, "layers.2")
    finally:
        for h in handles:
            h.remove()
    assert called == [0, 1, 2]


@torch.no_grad()
def test_a_hook_on_a_layer_that_a_partial_run_passes_through_sees_the_true_values(model):
    b = run.batch(model, PROMPTS)
    places = ["layers.0", "layers.1.mlp.neurons", "layers.2"]
    with hooks.capture(model, *places) as full:
        model.hf(input_ids=b.ids, attention_mask=b.mask)
    with hooks.capture(model, *places) as partial:
        run.run_to(model, b, "layers.2")
    for p in places:
        torch.testing.assert_close(partial[p], full[p])


@torch.no_grad()
def test_resume_runs_the_later_layers_as_modules_with_true_values(model):
    b = run.batch(model, PROMPTS)
    start = model.n_layers // 2
    later, earlier = f"layers.{start + 1}", f"layers.{start - 1}"
    with hooks.capture(model, later, "final_norm") as full:
        paused = run.pause(model, b, start)
    torch.testing.assert_close(paused.final, full["final_norm"])
    with hooks.capture(model, later, earlier, "final_norm") as seen:
        out = run.resume(model, paused, copies=2)  # [2B, T, d]
    assert earlier not in seen  # a layer before the start is not run again, so its hook sees nothing (never a wrong value)
    for c in range(2):
        rows = slice(c * len(b), (c + 1) * len(b))
        real = b.mask.bool()
        torch.testing.assert_close(seen[later][rows][real], full[later][real], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out[rows][real], full["final_norm"][real], rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_an_edit_during_resume_changes_only_its_copy(smollm2):
    b = run.batch(smollm2, PROMPTS)
    paused = run.pause(smollm2, b, 4)
    n = len(b)

    def zero_second_copy(x):  # x: [2n, T, m]
        x = x.clone()
        x[n:] = 0
        return x

    with hooks.edit(smollm2, "layers.4.mlp.neurons", zero_second_copy):
        out = run.last(run.resume(smollm2, paused, copies=2), b.repeat(2))
    with hooks.edit(smollm2, "layers.4.mlp.neurons", torch.zeros_like):
        ablated = run.last(run.run_to(smollm2, b, "final_norm"), b)
    torch.testing.assert_close(out[:n], run.last(paused.final, b), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[n:], ablated, rtol=1e-4, atol=1e-4)


def test_pause_and_resume_on_every_family(tiny):
    family, model = tiny
    b = run.batch(model, PROMPTS)
    with torch.no_grad():
        paused = run.pause(model, b, 1)
        out = run.resume(model, paused, copies=3)
    real = b.repeat(3).mask.bool()
    torch.testing.assert_close(out[real], paused.final.repeat(3, 1, 1)[real], rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_head_rows_are_the_full_heads_columns(model):
    h = run.last(run.run_to(model, run.batch(model, PROMPTS), "final_norm"), run.batch(model, PROMPTS))  # [3, d]
    rows = [5, 17, 300]
    torch.testing.assert_close(run.head(model, h, rows), anatomy.logits_from_hidden(model, h)[:, rows], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(anatomy.logits_from_hidden(model, h[-1]), anatomy.next_token(model, PROMPTS[-1]).logits, rtol=1e-4, atol=1e-4)


def test_soft_cap(smollm2):
    x = torch.tensor([-100.0, 0.0, 3.0])

    class Capped:
        class arch:
            final_softcap = 30.0

    assert torch.equal(run.soft_cap(smollm2, x), x)  # no final soft-cap in Llama
    torch.testing.assert_close(run.soft_cap(Capped, x), 30.0 * torch.tanh(x / 30.0))
    assert float(run.soft_cap(Capped, torch.tensor(1e6))) <= 30.0


@torch.no_grad()
def test_forward_of_a_batch_gives_each_prompt_its_values_alone(model):
    b = run.batch(model, PROMPTS)
    out = run.forward(model, b, hidden_states=True)  # [B, T, V], L + 1 hidden states [B, T, d]
    assert out.logits.shape == (3, b.ids.shape[1], model.vocab_size) and len(out.hidden_states) == model.n_layers + 1
    for k, p in enumerate(PROMPTS):
        alone = anatomy.next_token(model, p).logits
        torch.testing.assert_close(run.last(out.logits, b)[k].float().cpu(), alone, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(run.last(out.hidden_states[3], b)[k].float().cpu(), _alone(model, p, 2), rtol=1e-4, atol=1e-4)
    last = run.forward(model, b.ids[2:, :int(b.lengths[2])], logits="last").logits  # [1, 1, V]: the LM head on the last row only
    assert last.shape == (1, 1, model.vocab_size)
    torch.testing.assert_close(last[0, -1].float().cpu(), anatomy.next_token(model, PROMPTS[2]).logits, rtol=1e-4, atol=1e-3)
    decoder = run.forward(model, b, logits=None)  # the decoder alone: final-norm vectors, no LM head
    assert "logits" not in decoder
    torch.testing.assert_close(decoder.last_hidden_state, run.run_to(model, b, "final_norm"))


@torch.no_grad()
def test_forward_continues_from_the_keys_and_values_it_kept(smollm2):
    ids = run.check_prompt(smollm2, PROMPTS[0])  # [1, T]
    first = run.forward(smollm2, ids[:, :-1], keep=True)
    assert first.past_key_values is not None and run.forward(smollm2, ids).past_key_values is None  # kept only when asked
    nxt = run.forward(smollm2, ids[:, -1:], past=first.past_key_values).logits[0, -1]  # one token, after the cache
    torch.testing.assert_close(nxt, run.forward(smollm2, ids).logits[0, -1], rtol=1e-4, atol=1e-3)


@torch.no_grad()
def test_forward_keeps_attention_weights_with_the_eager_attention_and_switches_back(smollm2):
    ids = run.check_prompt(smollm2, PROMPTS[1])  # [1, T]
    smollm2.hf.set_attn_implementation("sdpa")
    try:
        out = run.forward(smollm2, ids, attentions=True)
        assert smollm2.hf.config._attn_implementation == "sdpa"  # switched back after the call
    finally:
        smollm2.hf.set_attn_implementation("eager")
    T = ids.shape[1]
    assert len(out.attentions) == smollm2.n_layers and out.attentions[0].shape == (1, smollm2.n_heads, T, T)
    torch.testing.assert_close(out.attentions[3].sum(-1), torch.ones(1, smollm2.n_heads, T))
    assert torch.all(out.attentions[3][0].triu(diagonal=1) == 0)  # causal: no weight on later tokens


@torch.no_grad()
def test_generate_continues_every_prompt_as_if_alone(smollm2):
    b = run.batch(smollm2, PROMPTS, left=True)
    out = run.generate(smollm2, b, 4)
    assert out.sequences.shape == (3, b.ids.shape[1] + 4) and len(out.logits) == 4
    for k, p in enumerate(PROMPTS):
        assert tuple(out.sequences[k, b.ids.shape[1]:].tolist()) == anatomy.greedy(smollm2, p, 4)


def test_pad_puts_token_rows_in_one_batch(smollm2):
    rows = [torch.tensor([5, 6, 7]), torch.tensor([8])]
    b = run.pad(smollm2, rows)
    assert b.ids[:, :1].tolist() == [[5], [8]] and b.ids[0].tolist() == [5, 6, 7] and b.lengths.tolist() == [3, 1]
    assert b.mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    left = run.pad(smollm2, rows, left=True)
    assert left.left and left.ids[1, -1] == 8 and left.mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_bad_input_says_what_to_do(smollm2):
    with pytest.raises(anatomy.AnatomyError, match="non-empty list of prompts"):
        run.prompts("one prompt")
    with pytest.raises(anatomy.AnatomyError, match="batch_size"):
        next(run.batches(smollm2, PROMPTS, 0))
    with pytest.raises(anatomy.AnatomyError, match="Unknown place"):
        run.run_to(smollm2, run.batch(smollm2, PROMPTS), "layers.2.nowhere")
    with pytest.raises(anatomy.AnatomyError, match="out of range"):
        run.pause(smollm2, run.batch(smollm2, PROMPTS), 99)
    with pytest.raises(anatomy.AnatomyError, match="prompt is empty"):
        run.check_prompt(smollm2, "  ")
    with pytest.raises(anatomy.AnatomyError, match="logits="):
        run.forward(smollm2, run.batch(smollm2, PROMPTS), logits="first")
    with pytest.raises(anatomy.AnatomyError, match="left-padded"):
        run.generate(smollm2, run.batch(smollm2, PROMPTS), 2)
