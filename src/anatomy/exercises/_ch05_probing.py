"""Chapter 5's exercises: held out by whole countries."""

from __future__ import annotations

import functools

import torch

from .. import run
from ..probe import cities, fit_probe, group_split, r2_score
from ._judge import Case, Mistake, Verdict, close, default_models, judge, seeded_generator


def check_country_split(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 5: ``fn(countries, seed)`` splits the cities (one country each) into (train, test) lists of
    indices: every index once, no country on both sides, between 15 % and 35 % held out."""
    from ..probe import cities

    countries = list(cities().countries)

    def parts(got):
        train, test = ([int(i) for i in part] for part in got)
        return train, test

    def right(got, _expected=None) -> bool:
        try:
            train, test = parts(got)
        except (TypeError, ValueError):
            return False
        if sorted(train + test) != list(range(len(countries))):
            return False
        shared = {countries[i] for i in train} & {countries[i] for i in test}
        return not shared and 0.15 <= len(test) / len(countries) <= 0.35

    def shares_a_country(got, cs, seed) -> bool:
        train, test = parts(got)
        return bool({cs[i] for i in train} & {cs[i] for i in test})

    cases = [Case((countries, s), f"the {len(countries)} cities with seed {s}", f"{len(countries)} 个城市、种子 {s}", None)
             for s in (0, 1)]
    mistakes = (
        Mistake("some country has cities on both sides: you held out cities, not countries, so the probe can "
                "recognise the country instead of reading a position.",
                "有的国家两边都有城市：你留出的是城市而不是国家，探针就能靠认出国家来作答，而不是读出位置。",
                matches=shares_a_country),
        Mistake("the two lists must hold every index exactly once, with 15–35 % of them held out.",
                "两个列表合起来要恰好包含每个下标一次，并且留出 15%–35%。",
                matches=lambda got, cs, seed: True),
    )
    return judge("country_split", fn, cases, mistakes, solution=solution, same=right)


# --- 5.2 and 5.3: the ridge probe in closed form, and its shuffled-label control ---------------------

_N_CITIES = 72  # the first cities (largest first): enough for a probe with more dimensions than rows, cheap to run


@functools.lru_cache(maxsize=4)
@torch.no_grad()
def _middle_states(model, names: tuple) -> torch.Tensor:
    """The output of the middle layer at each name's last token, [N, d] in float64 (the run stops there: no LM head)."""
    b = run.batch(model, list(names))
    return run.last(run.run_to(model, b, f"layers.{model.n_layers // 2}"), b).double()


@functools.lru_cache(maxsize=4)
def _city_rows(model):
    """The first cities' last-token vectors at the middle of the stack [N, d], their coordinates [N, 2],
    and a split by whole countries (train, test), all seeded."""
    places = cities()
    X = _middle_states(model, places.names[:_N_CITIES])
    countries = list(places.countries[:_N_CITIES])
    train, _, test = group_split(countries, fractions=(0.2, 0.2), seed=0)  # validation unused
    return X, places.coordinates[:_N_CITIES].double(), torch.as_tensor(train), torch.as_tensor(test)


def _random_rows(seed: int):
    g = seeded_generator(seed)
    X = torch.randn(40, 64, generator=g, dtype=torch.float64) * torch.linspace(0.5, 4, 64, dtype=torch.float64)
    y = X[:, :3] @ torch.randn(3, 2, generator=g, dtype=torch.float64) + 5 + torch.randn(40, 2, generator=g, dtype=torch.float64)
    return X, y, torch.arange(30), torch.arange(30, 40)


def _ridge(X_train, y_train, X_test, alpha, *, standardise=True, test_own=False, centre=True):
    X_train, y_train, X_test = (torch.as_tensor(t, dtype=torch.float64) for t in (X_train, y_train, X_test))
    mean, std = (X_train.mean(0), X_train.std(0)) if standardise else (0.0, 1.0)
    Z = (X_train - mean) / std
    Zt = (X_test - X_test.mean(0)) / X_test.std(0) if test_own else (X_test - mean) / std
    bias = y_train.mean(0) if centre else torch.zeros(y_train.shape[1], dtype=torch.float64)
    W = torch.linalg.solve(Z.T @ Z + alpha * torch.eye(Z.shape[1], dtype=torch.float64), Z.T @ (y_train - bias))
    return Zt @ W + bias


def check_ridge_probe(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 5: ``fn(X_train, y_train, X_test, alpha)`` fits ridge regression in closed form on standardised
    features and centred targets, and returns its predictions for ``X_test`` [n_test, k]; the right answer is
    ``anatomy.fit_probe(..., alpha=alpha).prediction``."""
    def case(X, y, tr, te, alpha, en, zh):
        expected = fit_probe(X, y, tr, te, alpha=alpha).prediction
        return Case((X[tr].clone(), y[tr].clone(), X[te].clone(), alpha), en, zh, expected)

    X, y, tr, te = _random_rows(0)
    cases = [case(X, y, tr, te, 100.0, "seeded random vectors (40 rows, 64 features), alpha = 100",
                  "种子固定的随机向量（40 行、64 个特征）、alpha = 100")]
    for m in default_models():
        X, y, tr, te = _city_rows(m)
        cases.append(case(X, y, tr, te, 1000.0, f"{m.name}'s city vectors at layer {m.n_layers // 2}, alpha = 1000",
                          f"{m.name} 第 {m.n_layers // 2} 层的城市向量、alpha = 1000"))
    mistakes = (
        Mistake("you standardised the held-out rows with their own mean and standard deviation; use the training "
                "rows' statistics for both (the held-out rows must not shape the probe).",
                "你用留出行自己的均值和标准差去标准化它们；两边都要用训练行的统计量（留出行不能影响探针）。",
                wrong=lambda a, b, c, alpha: _ridge(a, b, c, alpha, test_own=True)),
        Mistake("you did not centre the targets: subtract the training mean of y before solving, and add it back "
                "as the bias (the penalty must not shrink the average position).",
                "你没有把目标值中心化：求解前减去训练集 y 的均值，最后再作为偏置加回去（惩罚项不该把平均位置也压缩掉）。",
                wrong=lambda a, b, c, alpha: _ridge(a, b, c, alpha, centre=False)),
        Mistake("you did not standardise the features: subtract the training mean and divide by the training "
                "standard deviation of each feature first, so that one alpha weighs every feature alike.",
                "你没有标准化特征：先减去每个特征在训练行上的均值、再除以标准差，这样同一个 alpha 对每个特征一样重。",
                wrong=lambda a, b, c, alpha: _ridge(a, b, c, alpha, standardise=False)),
    )
    return judge("ridge_probe", fn, cases, mistakes, solution=solution,
                 same=lambda g, e: close(g, e, atol=1e-3, rtol=1e-3))


def _control(X, y, tr, te, seed, *, shuffle_test=False, shuffle=True, score_train=False):
    y = torch.as_tensor(y, dtype=torch.float64)
    tr, te = torch.as_tensor(tr), torch.as_tensor(te)
    y_shuffled = y.clone()
    if shuffle_test:
        rows = torch.cat([tr, te])
        y_shuffled[rows] = y[rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))]]
    elif shuffle:
        y_shuffled[tr] = y[tr[torch.randperm(len(tr), generator=torch.Generator().manual_seed(seed))]]
    p = fit_probe(X, y_shuffled, tr, te)
    if score_train:
        return p.train_r2
    return p.r2 if shuffle_test else r2_score(y[te], p.prediction)


def check_control_r2(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 5: ``fn(X, y, train, test, seed)`` is the held-out R² [k] of ``anatomy.fit_probe`` fitted on the
    training rows with their targets shuffled among them (``torch.randperm(len(train))`` seeded with ``seed``),
    scored on the held-out rows' true targets."""
    cases = []
    for m in default_models():
        X, y, tr, te = _city_rows(m)
        for seed in (0, 1):
            cases.append(Case((X.clone(), y.clone(), tr.clone(), te.clone(), seed), f"{m.name}'s city vectors, seed {seed}",
                              f"{m.name} 的城市向量、种子 {seed}", _control(X, y, tr, te, seed)))
    mistakes = (
        Mistake("you shuffled the held-out targets too: shuffle only the training rows, and score on the true "
                "held-out coordinates.",
                "你把留出行的目标值也打乱了：只打乱训练行，并用留出行真实的坐标来打分。",
                wrong=lambda X, y, tr, te, s: _control(X, y, tr, te, s, shuffle_test=True)),
        Mistake("you did not shuffle: this is the real probe's score, not the control's.",
                "你没有打乱：这是真实探针的分数，不是对照组的。",
                wrong=lambda X, y, tr, te, s: _control(X, y, tr, te, s, shuffle=False)),
        Mistake("you returned the R² on the training rows; the control is scored on the held-out rows.",
                "你返回的是训练行上的 R²；对照组要在留出行上打分。",
                wrong=lambda X, y, tr, te, s: _control(X, y, tr, te, s, score_train=True)),
    )
    return judge("control_r2", fn, cases, mistakes, solution=solution,
                 same=lambda g, e: close(g, e, atol=1e-3, rtol=1e-3))
