"""Chapter 16: sparse autoencoders trained on one layer's residual vectors."""

import pytest
import torch

import anatomy
from anatomy import AnatomyError
from anatomy import sae as S
from anatomy.hooks import capture

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
