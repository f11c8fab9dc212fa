"""Chapter 18: linear relational embeddings (Hernandez et al. 2023) on few-shot relation prompts."""

import pytest
import torch

import anatomy
from anatomy import AnatomyError, run
from anatomy.hooks import capture
from anatomy.relations import _jacobian_rows, _read_out_rows, read_relation, relation_faithfulness, relation_edits, relation_map, relation_prompt

CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Germany", "Berlin"), ("Spain", "Madrid"),
            ("Russia", "Moscow"), ("China", "Beijing"), ("Egypt", "Cairo"), ("Greece", "Athens"), ("Canada", "Ottawa"),
            ("England", "London"), ("Ireland", "Dublin"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Norway", "Oslo"),
            ("Sweden", "Stockholm"), ("Poland", "Warsaw"), ("Austria", "Vienna")]
DEMOS, PAIRS = CAPITALS[:4], CAPITALS[4:]


def test_relation_prompt_and_bad_input(smollm2):
    assert relation_prompt(DEMOS[:2], "Spain") == "France: Paris\nJapan: Tokyo\nSpain:"
    with pytest.raises(AnatomyError, match="pair"):
        relation_prompt([("France",)], "Spain")
    with pytest.raises(AnatomyError, match="non-empty"):
        relation_prompt("France: Paris", "Spain")
    with pytest.raises(AnatomyError, match="demonstration"):
        read_relation(smollm2, CAPITALS[:6], [3], name="capital", demos=DEMOS)
    with pytest.raises(AnatomyError, match="rows, tokens"):
        run.run_after(smollm2, run.prefix(smollm2, "France: Paris\n"), torch.tensor([1, 2]))


def test_reading_equals_the_full_prompt(model):
    """The demonstrations read once and the subject run after them give the full prompt's values."""
    layer = model.n_layers // 2
    r = read_relation(model, PAIRS[:4], [layer], name="capital", demos=DEMOS)
    for i, (subject, _) in enumerate(PAIRS[:4]):
        ids = model.tokenizer(relation_prompt(DEMOS, subject), return_tensors="pt")["input_ids"]
        last = f"layers.{model.n_layers - 1}"
        with capture(model, f"layers.{layer}", last) as seen, torch.no_grad():
            logits = model.hf(input_ids=ids).logits[0, -1]
        assert int(r.answers[i]) == int(logits.argmax())
        assert torch.allclose(r.vectors[i, 0], seen[f"layers.{layer}"][0, -2].float(), atol=1e-3, rtol=1e-4)
        assert torch.allclose(r.final[i], seen[last][0, -1].float(), atol=1e-2, rtol=1e-4)
    assert set(r.answers.tolist()) <= set(r.candidates.tolist())


def test_jacobian_rows_match_finite_differences(smollm2):
    """rows @ ∂o/∂s from one backward pass equals the central difference of the read-out along a direction."""
    m = smollm2
    layer = m.n_layers // 2
    r = read_relation(m, PAIRS[:2], [layer], name="capital", demos=DEMOS)
    rows = _read_out_rows(m, r.candidates[:5])  # [5, d]
    pre = run.prefix(m, relation_prompt(DEMOS, "")[:-1])
    before = [len(blk._forward_hooks) for blk in m.layers]
    jac = _jacobian_rows(m, pre, r.suffixes[0], [layer], rows)[0]  # [5, d]
    assert [len(blk._forward_hooks) for blk in m.layers] == before  # its hooks are gone after the backward pass
    v = torch.randn(m.d_model, generator=torch.Generator().manual_seed(0))
    v = v / v.norm() * 0.01 * r.vectors[0, 0].norm()
    j = len(r.suffixes[0]) - 2

    def readout(delta):
        def put(h):
            h = h.clone()
            h[:, j] += delta.to(h)
            return h
        with anatomy.edit(m, f"layers.{layer}", put), torch.no_grad():
            o = run.run_after(m, pre, torch.tensor([r.suffixes[0]]), f"layers.{m.n_layers - 1}")[0, -1].float()
        return rows @ o

    fd = (readout(v) - readout(-v)) / 2
    assert torch.allclose(jac @ v, fd, rtol=0.02, atol=0.02 * float(fd.abs().max()))


@pytest.fixture(scope="module")
def capital_map(smollm2):
    layer = smollm2.n_layers // 2
    r = read_relation(smollm2, PAIRS, [layer], name="capital", demos=DEMOS)
    train, dev = list(range(0, 5)), list(range(5, 9))
    return r, relation_map(smollm2, r, train=train, dev=dev, betas=(1.0, 3.0)), train, dev


def test_map_reproduces_training_answers_far_above_chance(smollm2, capital_map):
    r, lre, train, dev = capital_map
    f = relation_faithfulness(smollm2, lre, r, test=list(range(9, len(PAIRS))), train=train)
    assert lre.weight.shape == (1, len(r.candidates), smollm2.d_model)
    assert f.lre_train >= 0.8 and f.chance < 0.1  # at least 4 of 5 training subjects, against one candidate in 10+
    assert f.bias_only <= 0.4  # the bias alone cannot do it: the model's answers differ
    with pytest.raises(AnatomyError, match="disjoint"):
        relation_map(smollm2, r, train=[0, 1], dev=[1, 2])


def test_edits_are_seeded(smollm2, capital_map):
    r, lre, _, _ = capital_map
    test = [9, 10, 11]
    a = relation_edits(smollm2, lre, r, test=test, draws=2, seed=0, n_texts=2)
    b = relation_edits(smollm2, lre, r, test=test, draws=2, seed=0, n_texts=2)
    assert a == b
    assert a.n == 3 and a.draws == 2 and 0 <= a.random_success <= 1 and a.loss_clean > 0
    with pytest.raises(AnatomyError, match="draws"):
        relation_edits(smollm2, lre, r, test=test, draws=0)


def test_relation_layers_figure(capital_map):
    _, lre, _, _ = capital_map
    fig = anatomy.plot.relation_layers(lre)
    assert fig.description["en"].startswith("For each relation") and "开发集" in fig.description["zh"]
    with pytest.raises(AnatomyError, match="No maps"):
        anatomy.plot.relation_layers([])
