"""Chapter 16: sparse autoencoders trained on one layer's residual vectors."""

import pytest
import torch

import anatomy
from anatomy import AnatomyError
from anatomy import sae as S
from anatomy.hooks import capture, edit

TEXTS = anatomy.book_text("en")[:6] + anatomy.book_text("zh")[:6]


@pytest.fixture(scope="module")
def acts(smollm2):
    return S.residual_vectors(smollm2, TEXTS, smollm2.n_layers // 2, max_tokens=16)


@pytest.fixture(scope="module")
def sae(acts):
    return S.train_sae(acts, 128, l1=1.0, steps=150, batch_size=64, lr=3e-3, seed=0)


def test_vectors_are_the_layer_output_of_each_text_alone(smollm2, acts):
    """Batched and padded, each kept vector equals the layer's output when its text runs alone."""
    layer = smollm2.n_layers // 2
    d = smollm2.d_model
    assert acts.vectors.shape == (len(acts.tokens), d) == (len(acts.contexts), d)
    for i in (0, 7):  # one English text, one Chinese text
        ids = smollm2.tokenizer(TEXTS[i], return_tensors="pt")["input_ids"][:, :16]
        with torch.no_grad(), capture(smollm2, f"layers.{layer}") as seen:
            smollm2.hf(input_ids=ids)
        mine = acts.vectors[acts.text_index == i]  # [n, d]
        assert acts.position[acts.text_index == i].tolist() == list(range(S.SKIP, ids.shape[1]))
        torch.testing.assert_close(mine, seen[f"layers.{layer}"][0, S.SKIP:].float(), atol=1e-3, rtol=1e-4)


def test_shapes_and_unit_norm_decoder(acts, sae):
    d, m = acts.vectors.shape[1], 128
    f = sae.encode(acts.vectors)
    assert f.shape == (len(acts.vectors), m) and (f >= 0).all()
    assert sae(acts.vectors).shape == acts.vectors.shape
    assert sae.W_dec.shape == (d, m) and sae.W_enc.shape == (m, d)
    torch.testing.assert_close(sae.W_dec.norm(dim=0), torch.ones(m))
    torch.testing.assert_close(sae.direction(5), sae.W_dec[:, 5])


def test_reconstruction_beats_the_mean_vector(acts, sae):
    x = acts.vectors
    err_sae = ((sae(x) - x) ** 2).sum()
    err_mean = ((acts.mean - x) ** 2).sum()
    assert err_sae < 0.6 * err_mean
    met = S.sae_metrics(sae, acts)
    assert met.fve == pytest.approx(float(1 - err_sae / err_mean), rel=1e-4)
    assert met.fve > 0.4
    assert met.dead == int((met.frequency == 0).sum())


def test_seeded_training_is_reproducible(acts):
    one, again, other = (S.train_sae(acts, 128, l1=1.0, steps=30, batch_size=64, lr=3e-3, seed=s) for s in (0, 0, 1))
    for name, p in one.state_dict().items():
        assert torch.equal(p, again.state_dict()[name]), name
    assert not torch.equal(one.W_dec, other.W_dec)


def test_l0_is_a_hand_count(acts, sae):
    x = acts.vectors[:20]
    counts = S.l0(sae, x)
    for n in range(len(x)):
        pre = (x[n] / sae.scale - sae.b_dec) @ sae.W_enc.T + sae.b_enc  # [m] before the ReLU
        assert int(counts[n]) == sum(1 for v in pre.tolist() if v > 0)
    assert 0 < float(counts.float().mean()) < 128


def test_splicing_the_exact_vector_changes_nothing(smollm2, acts, sae):
    layer = smollm2.n_layers // 2
    texts = anatomy.book_text("en")[6:9]
    clean = S.next_token_loss(smollm2, texts, layer, max_tokens=16)
    same = S.next_token_loss(smollm2, texts, layer, lambda h: h, max_tokens=16)
    assert same == pytest.approx(clean, abs=1e-4)
    flat = S.next_token_loss(smollm2, texts, layer, lambda h: acts.mean.expand_as(h), max_tokens=16)
    assert flat > clean + 0.5  # the mean vector throws the layer's information away


def test_feature_page(smollm2, acts, sae):
    page = S.feature_page(smollm2, sae, acts, 3, k=4)
    f = sae.encode(acts.vectors)[:, 3]
    assert [a for _, _, a in page.top] == pytest.approx(f.topk(4).values.tolist())
    assert len(page.promoted) == 4 and page.frequency == pytest.approx(float((f > 0).float().mean()))


def test_bad_input(smollm2, acts, sae):
    with pytest.raises(AnatomyError, match="out of range"):
        S.feature_page(smollm2, sae, acts, 128)
    with pytest.raises(AnatomyError, match="non-empty"):
        S.residual_vectors(smollm2, [], 3)
    with pytest.raises(AnatomyError, match="n_latents"):
        S.train_sae(acts, 0)


def test_report_figure(smollm2, acts, sae):
    losses = S.spliced_losses(smollm2, anatomy.book_text("en")[6:8], sae, acts.mean, max_tokens=16)
    assert losses.clean < losses.mean_vector and losses.layer == acts.layer
    assert losses.recovered == pytest.approx((losses.mean_vector - losses.reconstruction) / (losses.mean_vector - losses.clean))
    fig = anatomy.plot.sae_report(S.sae_metrics(sae, acts), losses)
    assert len(fig.axes) == 2
    assert smollm2.name in fig.description["en"] and f"第 {acts.layer} 层" in fig.description["zh"]


HELD_OUT = anatomy.book_text("en")[20:26] + anatomy.book_text("zh")[20:26]


def test_held_out_variance_explained_beats_the_mean_vector(smollm2, acts, sae):
    """On texts it never saw, the SAE rebuilds the layer better than the training mean vector does."""
    held = S.residual_vectors(smollm2, HELD_OUT, smollm2.n_layers // 2, max_tokens=16)
    met = S.sae_metrics(sae, held, mean=acts.mean, data="held-out")
    x = held.vectors
    err_sae, err_mean = float(((sae(x) - x) ** 2).sum()), float(((acts.mean - x) ** 2).sum())
    assert met.fve == pytest.approx(1 - err_sae / err_mean, rel=1e-4)
    assert err_sae < 0.7 * err_mean and met.fve > 0.3
    assert met.n_vectors == len(x) and "held-out" in str(S.metrics_table(met))


def test_select_keeps_rows_and_neurons(smollm2):
    every = S.residual_vectors(smollm2, TEXTS[:3], smollm2.n_layers // 2, max_tokens=12, skip=0, neurons=True)
    assert every.neurons.shape[0] == len(every.ids) and every.neurons.shape[1] > smollm2.d_model
    kept = every.select(every.position >= S.SKIP)
    assert kept.position.min() == S.SKIP and len(kept.tokens) == len(kept.ids) == kept.vectors.shape[0]
    mask = every.position >= S.SKIP
    torch.testing.assert_close(kept.neurons, every.neurons[mask])
    layer = smollm2.n_layers // 2
    ids = smollm2.tokenizer(TEXTS[0], return_tensors="pt")["input_ids"][:, :12]
    with torch.no_grad(), capture(smollm2, f"layers.{layer}.mlp.neurons") as seen:
        smollm2.hf(input_ids=ids)
    first = every.text_index == 0
    torch.testing.assert_close(every.neurons[first], seen[f"layers.{layer}.mlp.neurons"][0, every.position[first]].float(),
                               atol=1e-3, rtol=1e-4)
    with pytest.raises(AnatomyError, match="True/False"):
        every.select(torch.ones(3, dtype=torch.bool))


def test_saes_trained_together_learn_as_if_alone(acts):
    """Stacked training gives each SAE the weights it gets when trained alone (same seed, same batches)."""
    both = S.train_saes(acts, 64, l1s=(1.0,), ks=(8,), steps=20, batch_size=32, lr=3e-3, seed=2)
    alone = (S.train_sae(acts, 64, l1=1.0, steps=20, batch_size=32, lr=3e-3, seed=2),
             S.train_sae(acts, 64, k=8, steps=20, batch_size=32, lr=3e-3, seed=2))
    for a, b in zip(both, alone):
        for name, p in a.state_dict().items():
            torch.testing.assert_close(p, b.state_dict()[name], atol=1e-5, rtol=1e-4, msg=name)
    assert both[1].k == 8 and both[0].k is None and both[0].label == "L1 λ = 1" and both[1].label == "TopK k = 8"
    assert int(S.l0(both[1], acts.vectors).max()) <= 8  # TopK: L0 ≤ k by construction
    with pytest.raises(AnatomyError, match="at least one"):
        S.train_saes(acts, 64)


def test_losses_resumed_from_the_layer_equal_the_hooked_run(smollm2, acts, sae):
    layer, texts = acts.layer, anatomy.book_text("en")[6:9]
    clean, rebuilt = S._losses(smollm2, texts, layer, (sae,), max_tokens=16)
    assert clean == pytest.approx(S.next_token_loss(smollm2, texts, layer, max_tokens=16), abs=1e-4)
    assert rebuilt == pytest.approx(S.next_token_loss(smollm2, texts, layer, sae, max_tokens=16), abs=1e-4)


def test_frontier(smollm2, acts):
    saes = S.train_saes(acts, 64, l1s=(0.5, 4.0), ks=(4,), steps=60, batch_size=64, lr=3e-3, seed=0)
    held = S.residual_vectors(smollm2, HELD_OUT[:4], acts.layer, max_tokens=16)
    fr = S.sae_frontier(smollm2, HELD_OUT[:4], saes, train=acts, held_out=held, max_tokens=16)
    assert [q.label for q in fr.points] == ["L1 λ = 0.5", "L1 λ = 4", "TopK k = 4"]
    small, large = fr.point("L1 λ = 0.5"), fr.point("L1 λ = 4")
    assert large.mean_l0 < small.mean_l0  # a larger λ: sparser
    assert fr.point("TopK k = 4").mean_l0 <= 4
    q = fr.points[0]
    assert q.recovered == pytest.approx((fr.mean_vector - q.loss) / (fr.mean_vector - fr.clean))
    assert q.fve == pytest.approx(S.sae_metrics(saes[0], held, mean=acts.mean).fve)
    fig = anatomy.plot.sae_frontier(fr, chosen="L1 λ = 4")
    assert len(fig.axes) == 2 and "L1 λ = 4" in fig.description["en"]
    with pytest.raises(AnatomyError, match="No point"):
        fr.point("L1 λ = 3")


def test_basis_stats_by_hand(acts):
    values = torch.zeros(len(acts.ids), 3)
    values[:, 0] = (acts.ids == acts.ids[0]).float() * torch.arange(len(acts.ids)).float()  # only on one token
    values[:, 1] = torch.arange(len(acts.ids)).float()  # grows along the corpus: the last 8 tokens are its top
    st = S.basis_stats(values, acts, "toy", k=8)
    n_first = int((acts.ids == acts.ids[0]).sum())
    if n_first >= 8:
        assert st.top_share[0] == 1.0 and st.top_token[0] == acts.ids[0]
    last8 = acts.ids[-8:]
    assert st.top_share[1] == pytest.approx(float((last8 == last8.mode().values).float().mean()))
    assert st.top_share[2].isnan() and not st.alive[2]
    assert 0 < st.positive_share < 1 and 0 < st.mass90_share <= 1


def test_gallery_escapes_tokens_and_draws_the_sample(smollm2, acts, sae):
    picks = S.random_latents(sae, 3, seed=1)
    assert picks == S.random_latents(sae, 3, seed=1) and len(set(picks)) == 3 and list(picks) == sorted(picks)
    gal = S.feature_gallery(smollm2, sae, acts, picks, k=4)
    assert [p.latent for p in gal.pages] == list(picks)
    page = gal.pages[0]
    assert all(row[-1][0] == tok for (tok, _, _), row in zip(page.top, page.highlights))
    assert all(row[-1][1] == pytest.approx(a) for (_, _, a), row in zip(page.top, page.highlights))
    bad = S.FeaturePage("m", 1, 0, 0.1, (("<script>", "ctx", 1.0),), ("<b>",), ((("<script>", 1.0),),))
    out = S.FeatureGallery((bad,))._repr_html_()
    assert "<script>" not in out and "&lt;script&gt;" in out and "&lt;b&gt;" in out
    with pytest.raises(AnatomyError, match="Cannot draw"):
        S.random_latents(sae, 0)


def test_ablating_a_latent(smollm2, acts, sae):
    f = sae.encode(acts.vectors)
    j = int((f > 0).float().mean(0).argmax())  # the latent active most often
    one = S.ablate_latent(smollm2, TEXTS, sae, acts, j, contexts=4, controls=3, seed=0, features=f, max_tokens=16)
    again = S.ablate_latent(smollm2, TEXTS, sae, acts, j, contexts=4, controls=3, seed=0, features=f, max_tokens=16)
    assert one.change == again.change and torch.equal(one.control_changes, again.control_changes)
    assert one.contexts == 4 and one.control_changes.shape == (3,) and len(one.promoted) == 8
    assert 0 <= one.beats <= 1
    # the cached one-token edit equals a full run with the latent's term removed at that position
    ids, f_j = S.promoted_ids(smollm2, sae, j, 8).tolist(), f[:, j]
    changes = []
    for n in f_j.topk(4).indices.tolist():
        toks = smollm2.tokenizer(TEXTS[int(acts.text_index[n])], return_tensors="pt")["input_ids"][:, :16]
        t = int(acts.position[n])

        def remove(h, n=n, t=t):
            h = h.clone()
            h[0, t] -= f_j[n] * sae.scale * sae.W_dec[:, j]
            return h

        with torch.no_grad():
            clean = torch.log_softmax(smollm2.hf(input_ids=toks).logits[0, t].float(), -1)[ids].mean()
            with edit(smollm2, f"layers.{acts.layer}", remove):
                cut = torch.log_softmax(smollm2.hf(input_ids=toks).logits[0, t].float(), -1)[ids].mean()
        changes.append(float(cut - clean))
    assert one.change == pytest.approx(sum(changes) / len(changes), abs=1e-3)
    with pytest.raises(AnatomyError, match="not the ones"):
        S.ablate_latent(smollm2, list(reversed(TEXTS)), sae, acts, j, contexts=4, controls=1, features=f, max_tokens=16)
    losses = S.ablation_losses(smollm2, anatomy.book_text("en")[6:8], sae, [j], max_tokens=16)
    assert set(losses.ablated) == {j} and losses.largest_change == pytest.approx(abs(losses.ablated[j] - losses.clean))
