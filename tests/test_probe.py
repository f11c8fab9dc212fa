"""Chapter 5: last-token states in batches, ridge probes, held-out R², the shuffled control, the figures."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

import anatomy
from anatomy import AnatomyError


def _toy(n=40, d=6, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.5, 5, d, dtype=torch.float64) + 3
    W = torch.randn(d, k, generator=g, dtype=torch.float64)
    return X, W


# --- the data ---------------------------------------------------------------------------------
def test_cities_are_a_world_sample_with_valid_coordinates():
    places = anatomy.cities()
    n = len(places.names)
    assert 300 <= n <= 600
    assert places.coordinates.shape == (n, 2) and len(places.continents) == len(places.countries) == n
    assert set(places.continents) == {"Africa", "Asia", "Europe", "North America", "South America", "Oceania"}
    assert places.latitude.abs().max() <= 90 and places.longitude.abs().max() <= 180
    assert len(set(places.names)) == n  # one city per name
    paris = places.names.index("Paris")
    assert abs(float(places.latitude[paris]) - 48.85) < 0.1 and abs(float(places.longitude[paris]) - 2.35) < 0.1
    assert places.continents[places.names.index("Sydney")] == "Oceania"
    assert (places.population[:-1] >= places.population[1:]).all()  # largest first


def test_split_is_seeded_disjoint_and_complete():
    tr, te = anatomy.split(100, test_fraction=0.25, seed=3)
    assert len(te) == 25 and len(tr) == 75
    assert sorted(tr.tolist() + te.tolist()) == list(range(100))
    tr2, te2 = anatomy.split(100, test_fraction=0.25, seed=3)
    assert torch.equal(te, te2) and not torch.equal(te, anatomy.split(100, test_fraction=0.25, seed=4)[1])
    with pytest.raises(AnatomyError, match="test_fraction"):
        anatomy.split(100, test_fraction=1.5)


# --- ridge regression and R² ------------------------------------------------------------------
def test_r2_is_one_for_perfect_and_zero_for_the_mean():
    y = torch.tensor([[1.0, 2.0], [2.0, 0.0], [4.0, 1.0]])
    assert torch.allclose(anatomy.r2_score(y, y), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(anatomy.r2_score(y, y.mean(0).expand_as(y)), torch.zeros(2, dtype=torch.float64))
    assert float(anatomy.r2_score(y[:, 0], -y[:, 0])) < 0  # worse than the mean


def test_ridge_solves_the_normal_equations():
    X, W = _toy()
    y = X @ W + 0.3 * torch.randn(40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    tr, te = torch.arange(30), torch.arange(30, 40)
    alpha = 3.0
    p = anatomy.fit_probe(X, y, tr, te, alpha=alpha)
    Z = (X[tr] - X[tr].mean(0)) / X[tr].std(0)
    Yc = y[tr] - y[tr].mean(0)
    direct = torch.linalg.solve(Z.T @ Z + alpha * torch.eye(6, dtype=torch.float64), Z.T @ Yc)
    assert p.weight.shape == (6, 2) and p.bias.shape == (2,) and p.prediction.shape == (10, 2)
    assert torch.allclose(p.weight, direct, atol=1e-10)
    assert torch.allclose((Z.T @ Z + alpha * torch.eye(6, dtype=torch.float64)) @ p.weight, Z.T @ Yc, atol=1e-9)
    assert torch.allclose(p.predict(X[te]), p.prediction)
    assert torch.allclose(p.r2, anatomy.r2_score(y[te], p.prediction))


def test_perfect_linear_target_gives_r2_one():
    X, W = _toy(n=60)
    y = X @ W - 7.0
    p = anatomy.fit_probe(X, y, torch.arange(45), torch.arange(45, 60), alpha=1e-9)
    assert torch.allclose(p.r2, torch.ones(2, dtype=torch.float64), atol=1e-8)


def test_alpha_is_chosen_on_training_rows_only():
    X, W = _toy(n=50, d=30)
    y = X @ W + torch.randn(50, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    tr, te = torch.arange(35), torch.arange(35, 50)
    grid = (0.1, 10.0, 1000.0)
    a = anatomy.fit_probe(X, y, tr, te, alpha=grid)
    y2 = y.clone()
    y2[te] = 1e6  # the held-out answers must not influence the fit
    b = anatomy.fit_probe(X, y2, tr, te, alpha=grid)
    assert a.alpha in grid and a.alpha == b.alpha
    assert torch.equal(a.weight, b.weight)


def test_fit_probe_rejects_bad_input():
    X, W = _toy()
    y = X @ W
    with pytest.raises(AnatomyError, match="overlap"):
        anatomy.fit_probe(X, y, torch.arange(30), torch.arange(25, 40))
    with pytest.raises(AnatomyError, match="rows"):
        anatomy.fit_probe(X, y[:-1], torch.arange(30), torch.arange(30, 39))
    with pytest.raises(AnatomyError, match="alpha"):
        anatomy.fit_probe(X, y, torch.arange(30), torch.arange(30, 40), alpha=-1.0)
    with pytest.raises(AnatomyError, match="outside"):
        anatomy.fit_probe(X, y, torch.arange(30), torch.tensor([30, 99]))


# --- representations from the models ----------------------------------------------------------
def test_last_token_states_match_hidden_states_despite_padding(model):
    texts = ["Paris", "Rio de Janeiro", "Ouagadougou", "New York City", "Lima"]  # different lengths
    X = anatomy.last_token_states(model, texts, batch_size=3)
    assert X.shape == (len(texts), model.n_layers + 1, model.d_model)
    for i, t in enumerate(texts):
        alone = anatomy.hidden_states(model, t).states[:, -1]  # [L+1, d]
        # batching changes float rounding; compare each stage at its own scale (Gemma's raw last
        # layer has entries near 1e3 beside entries near 0, where an elementwise rtol says nothing)
        scale = alone.abs().amax(-1, keepdim=True)  # [L+1, 1]
        assert ((X[i] - alone).abs() <= 1e-3 + 1e-4 * scale).all(), t


def test_last_token_states_rejects_bad_input(smollm2):
    with pytest.raises(AnatomyError, match="No texts"):
        anatomy.last_token_states(smollm2, [])
    with pytest.raises(AnatomyError, match="empty"):
        anatomy.last_token_states(smollm2, ["Paris", "  "])


@pytest.fixture(scope="module")
def city_probes(smollm2):
    """Probes on SmolLM2 for the 200 largest cities (a small, quick version of the chapter)."""
    places = anatomy.cities()
    n = 200
    X = anatomy.last_token_states(smollm2, places.names[:n])
    tr, te = anatomy.split(n, seed=0)
    return places, anatomy.probe_layers(X, places.coordinates[:n], tr, te, seed=0)


def test_probe_beats_the_shuffled_control_on_real_cities(city_probes, smollm2):
    _, lp = city_probes
    assert lp.r2.shape == lp.control_r2.shape == (smollm2.n_layers + 1, 2)
    assert len(lp.probes) == smollm2.n_layers + 1
    best = lp.row(lp.best_layer)  # best_layer is a layer number l (row l + 1), or "embedding" (row 0)
    assert lp.best_layer == ("embedding" if best == 0 else best - 1)
    assert float(lp.mean_r2[best]) == float(lp.mean_r2.max())
    assert float(lp.mean_r2[best]) > 0.1  # some position information is linearly readable
    assert float(lp.mean_r2[best]) > float(lp.control_r2.mean(1).max()) + 0.1  # and it is not the probe's doing
    assert float(lp.control_r2.mean(1).max()) < 0.1


def test_layer_probes_reject_bad_layers(city_probes):
    _, lp = city_probes
    assert lp.probe(-1) is lp.probes[-1]
    assert lp.probe(0) is lp.probes[1] and lp.probe("embedding") is lp.probes[0]
    assert lp.stages[:2] == ("embedding", "0") and len(lp.stages) == lp.n_layers + 1
    for bad in (lp.n_layers, -lp.n_layers - 1):
        with pytest.raises(AnatomyError, match="out of range"):
            lp.probe(bad)
    with pytest.raises(AnatomyError, match="shape"):
        anatomy.probe_layers(torch.zeros(10, 4), torch.zeros(10, 2), torch.arange(8), torch.arange(8, 10))


def test_probe_figures(city_probes):
    places, lp = city_probes
    fig = anatomy.plot.probe_r2({"smollm2-135m": lp})
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    best = lp.probe(lp.best_layer)
    fig = anatomy.plot.probe_map(places, {"predicted": best})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    other = anatomy.fit_probe(torch.randn(200, 3), places.coordinates[:200], torch.arange(100), torch.arange(100, 200), alpha=1.0)
    with pytest.raises(AnatomyError, match="different held-out"):
        anatomy.plot.probe_map(places, {"a": best, "b": other})


# --- held-out countries, and a layer chosen on a validation split --------------------------------

def test_group_split_keeps_every_country_in_one_split_and_every_continent_in_each():
    places = anatomy.cities()
    tr, va, te = anatomy.group_split(places.countries, strata=places.continents, fractions=(0.2, 0.2), seed=0)
    assert sorted(torch.cat([tr, va, te]).tolist()) == list(range(len(places.names)))  # disjoint and complete
    countries = [{places.countries[i] for i in s.tolist()} for s in (tr, va, te)]
    assert not (countries[0] & countries[1]) and not (countries[0] & countries[2]) and not (countries[1] & countries[2])
    for s in (va, te):
        assert {places.continents[i] for i in s.tolist()} == set(places.continents)  # stratified by continent
        assert 0.15 < len(s) / len(places.names) < 0.3
    again = anatomy.group_split(places.countries, strata=places.continents, seed=0)
    assert all(torch.equal(a, b) for a, b in zip((tr, va, te), again))
    assert not torch.equal(te, anatomy.group_split(places.countries, strata=places.continents, seed=1)[2])


def test_group_split_rejects_bad_input():
    with pytest.raises(AnatomyError, match="at least 3"):
        anatomy.group_split(["a", "a", "b", "b"])
    with pytest.raises(AnatomyError, match="two strata"):
        anatomy.group_split(["a", "a", "b", "c"], strata=["x", "y", "x", "x"])
    with pytest.raises(AnatomyError, match="fractions"):
        anatomy.group_split(["a", "b", "c"], fractions=(0.6, 0.6))


def test_best_layer_is_chosen_on_the_validation_rows():
    """With a validation split, best_layer maximises validation R², and the test R² is reported as is."""
    X, W = _toy(n=60, d=6)
    y = X @ W
    noise = torch.randn(60, 3, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    states = torch.stack([X + 50 * noise[:, 0], X + 0.01 * noise[:, 1], X + 5 * noise[:, 2]], dim=1)  # [N, 3 layers, d]
    tr, va, te = torch.arange(0, 40), torch.arange(40, 50), torch.arange(50, 60)
    lp = anatomy.probe_layers(states, y, tr, te, val_idx=va, alpha=1.0)
    assert lp.val_r2.shape == lp.r2.shape == (3, 2)
    assert int(lp.val_r2.mean(1).argmax()) == 1 and lp.best_layer == 0  # the nearly noiseless stage: layer 0's output
    by_hand = anatomy.r2_score(y[va], lp.probe(0).predict(states[va, 1]))
    torch.testing.assert_close(lp.val_r2[1], by_hand)
    with pytest.raises(AnatomyError, match="overlaps"):
        anatomy.probe_layers(states, y, tr, te, val_idx=te, alpha=1.0)
