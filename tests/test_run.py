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


def test_bad_input_says_what_to_do(smollm2):
    with pytest.raises(anatomy.AnatomyError, match="non-empty list of prompts"):
        run.prompts("one prompt")
    with pytest.raises(anatomy.AnatomyError, match="batch_size"):
        next(run.batches(smollm2, PROMPTS, 0))
    with pytest.raises(anatomy.AnatomyError, match="Unknown place"):
        run.run_to(smollm2, run.batch(smollm2, PROMPTS), "layers.2.nowhere")
    with pytest.raises(anatomy.AnatomyError, match="out of range"):
        run.pause(smollm2, run.batch(smollm2, PROMPTS), 99)
