"""Linear relational embeddings: a model of the model for one relation (Chapter 18).

Hernandez et al. (2023) read a relation such as country → capital at two places of a few-shot prompt
("France: Paris\\nJapan: Tokyo\\n...\\nSpain:"): the subject vector ``s`` (the output of layer ℓ at the
subject's last token) and the object vector ``o`` (the output of the last layer at the last token,
which the final norm and the LM head turn into the answer). The map s → o is what the layers above
ℓ compute; its first-order model is affine,

    LRE(s) = β W s + b,    W = mean over examples of ∂o/∂s,    b = mean of (o − W s),

with the Jacobian taken at a few training subjects and β > 1 making up for the Jacobian's
underestimate of the slope. The map is *faithful* when LRE(s), read through the LM head, gives the
model's own answer for held-out subjects; it is *causal* when moving s by
Δs = (βW)⁺ (o' − o) makes the real model give the answer of another subject (o' its object vector).

This module computes only the rows of W that the LM head reads for the relation's answers (one
row per candidate token: the token's LM-head row times the final norm's gain), so one backward pass
with one row per candidate gives them at every layer at once: a full d × d Jacobian costs d rows.
Among those candidates the argmax of the map's logits is exactly what the full map would rank
first (an RMS norm only divides by a positive number). The shared demonstrations are read once
(``run.prefix``); every subject then costs only its own few tokens.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import hooks, run
from .corpus import book_text
from .errors import AnatomyError
from .families.base import gain
from .sae import next_token_loss
from .show import Table
from .tokens import answer_id, readable

__all__ = ["RelationEdits", "RelationFaithfulness", "RelationMap", "RelationReading", "read_relation", "relation_faithfulness",
           "relation_edits", "relation_map", "relation_prompt", "relation_table"]


def _pairs(pairs, what: str = "pairs") -> list[tuple[str, str]]:
    if isinstance(pairs, str) or not isinstance(pairs, Sequence) or len(pairs) == 0:
        raise AnatomyError(f"{what} must be a non-empty list of (subject, object) pairs, e.g. [('France', 'Paris')].")
    out = []
    for p in pairs:
        if not (isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(x, str) and x.strip() for x in p)):
            raise AnatomyError(f"{p!r} in {what} is not a (subject, object) pair of words, e.g. ('France', 'Paris').")
        out.append((p[0], p[1]))
    return out


def relation_prompt(demos, subject: str) -> str:
    """The few-shot prompt of a relation: one ``subject: object`` line per demonstration, then ``subject:`` (Chapter 18)."""
    return "".join(f"{a}: {b}\n" for a, b in _pairs(demos, "demos")) + f"{subject}:"


# --- reading the model on a relation -----------------------------------------------------------------
@dataclass(frozen=True)
class RelationReading:
    """What the model computes for each subject of a relation: its answer, its subject and object vectors (Chapter 18)."""

    model_name: str
    relation: str
    demos: tuple[tuple[str, str], ...]
    subjects: tuple[str, ...]
    objects: tuple[str, ...]  # the expected answers (the model's own answer may differ)
    expected: torch.Tensor  # [n] the expected answers' first tokens
    answers: torch.Tensor  # [n] the model's own next token after "subject:" (argmax over the whole vocabulary)
    candidates: torch.Tensor  # [k] token IDs the map chooses among: the objects' first tokens and the model's answers
    layers: tuple[int, ...]
    vectors: torch.Tensor  # [n, len(layers), d] s: each layer's output at the subject's last token
    final: torch.Tensor  # [n, d] o: the last layer's output at the last token (before the final norm)
    suffixes: tuple[tuple[int, ...], ...]  # each prompt's token IDs after the demonstrations (subject tokens, then ":")

    @property
    def accuracy(self) -> float:
        """The share of subjects whose answer is the expected object's first token (how well the model knows the relation)."""
        return float((self.answers == self.expected).float().mean())


def _read_out_rows(model, ids: torch.Tensor) -> torch.Tensor:
    """The directions of the last residual stream that the LM head reads for tokens ``ids``: W_U[t] ⊙ gain. [k, d]."""
    rows = model.lm_head.weight[ids].detach().float()  # [k, d]
    norm = model.arch.final_norm
    if norm is not None:
        rows = rows * gain(model.decoder, norm)
        if norm.kind == "layer":  # a LayerNorm also centers the vector it reads
            rows = rows - rows.mean(-1, keepdim=True)
    return rows


@torch.no_grad()
def read_relation(model, pairs, layers, *, name: str, demos) -> RelationReading:
    """Run the relation's prompt for every subject of ``pairs``; keep answers and vectors at ``layers`` (Chapter 18).

    ``demos`` are the demonstration pairs written before every subject (``relation_prompt``); the
    subjects must not be among them. The demonstrations are read once (``run.prefix``); then the
    subjects of each token length run in one batch.
    """
    demos, pairs = _pairs(demos, "demos"), _pairs(pairs)
    shown = {a for a, _ in demos}
    if any(a in shown for a, _ in pairs):
        raise AnatomyError("A subject of pairs is also a demonstration; keep the demonstrations out of pairs.")
    layers = tuple(hooks.layer_index(model, int(layer)) for layer in layers)
    pre = run.prefix(model, relation_prompt(demos, "")[:-1])  # the demonstrations, read once
    head = pre.ids[0].tolist()
    suffixes = []
    for a, _ in pairs:
        ids = run.batch(model, [relation_prompt(demos, a)]).ids[0].tolist()
        if ids[:len(head)] != head or len(ids) - len(head) < 2:
            raise AnatomyError(f"{a!r} changes how the demonstrations are split into tokens for {model.name}; pick another subject.")
        suffixes.append(tuple(ids[len(head):]))  # the subject's tokens, then ":"
    last = f"layers.{model.n_layers - 1}"
    places = [f"layers.{layer}" for layer in layers] + [last]
    n, d = len(pairs), model.d_model
    answers = torch.zeros(n, dtype=torch.long)
    vectors, final = torch.zeros(n, len(layers), d), torch.zeros(n, d)
    for size in sorted({len(x) for x in suffixes}):  # subjects of the same length in one batch
        idx = [i for i, x in enumerate(suffixes) if len(x) == size]
        with hooks.capture(model, *places) as seen:
            h = run.run_after(model, pre, torch.tensor([suffixes[i] for i in idx]), "final_norm")  # [m, S, d]
        answers[idx] = run.head(model, h[:, -1]).argmax(-1).cpu()
        vectors[idx] = torch.stack([seen[p][:, size - 2].float().cpu() for p in places[:-1]], 1)  # the subject's last token
        final[idx] = seen[last][:, -1].float().cpu()
    expected = torch.tensor([answer_id(model, " " + o) for _, o in pairs])
    candidates = torch.unique(torch.cat([expected, answers]))
    return RelationReading(model.name, name, tuple(demos), tuple(a for a, _ in pairs), tuple(o for _, o in pairs),
                           expected, answers, candidates, layers, vectors, final, tuple(suffixes))


# --- the map: Jacobian rows at every layer in one backward pass ---------------------------------------
def _jacobian_rows(model, pre: run.Prefix, suffix: Sequence[int], layers: Sequence[int], rows: torch.Tensor) -> torch.Tensor:
    """rows @ ∂o/∂s at every layer of ``layers`` for one subject: [len(layers), k, d].

    One row of the batch per read-out direction; the gradient of Σ_r rows[r] · o_r with respect to
    each layer's output at the subject's last token is, in batch row r, rows[r] @ ∂o/∂s.
    """
    k = rows.shape[0]
    ids = torch.tensor([list(suffix)] * k)  # [k, S]
    j = len(suffix) - 2  # the subject's last token among the suffix's positions
    kept: dict[int, torch.Tensor] = {}

    def keeper(layer):
        def fn(h):
            if not h.requires_grad:  # the first layer kept: the graph starts here
                h = h.detach().requires_grad_(True)
            kept[layer] = h
            return h
        return fn

    last = f"layers.{model.n_layers - 1}"
    with torch.enable_grad():
        with contextlib.ExitStack() as stack:  # every hook removed on exit, even on error
            for layer in layers:
                stack.enter_context(hooks.edit(model, f"layers.{layer}", keeper(layer)))
            o = run.run_after(model, pre, ids, last)[:, -1].float()  # [k, d]
        target = (o * rows.to(o)).sum()
        grads = torch.autograd.grad(target, [kept[layer] for layer in layers])
    return torch.stack([g[:, j].float().cpu() for g in grads])  # [len(layers), k, d]


@dataclass(frozen=True)
class RelationMap:
    """A linear relational embedding LRE(s) = β W s + b, read through the LM head on the candidates (Chapter 18).

    ``weight`` holds the rows of the mean Jacobian W that the LM head reads for the candidate tokens,
    at every layer tried; ``layer`` and ``beta`` are the ones chosen on the dev subjects.
    """

    model_name: str
    relation: str
    layers: tuple[int, ...]
    candidates: torch.Tensor  # [k] token IDs
    weight: torch.Tensor  # [len(layers), k, d] read-out rows of W = mean Jacobian at each layer
    bias: torch.Tensor  # [len(layers), k] read-out of b = mean (o - W s)
    train: tuple[str, ...]  # the subjects the Jacobians were taken at
    betas: tuple[float, ...]
    dev_faithfulness: torch.Tensor  # [len(layers), len(betas)] share of dev subjects where the map gives the model's answer
    layer: int  # chosen on dev
    beta: float  # chosen on dev
    seconds_per_jacobian: float  # wall time of one subject's Jacobian rows (all layers)

    def _at(self, layer: int | None) -> int:
        return self.layers.index(self.layer if layer is None else layer)

    def logits(self, s: torch.Tensor, layer: int | None = None, beta: float | None = None) -> torch.Tensor:
        """The map's logits on the candidates for subject vectors s [n, d] (up to a positive factor per row): [n, k]."""
        i = self._at(layer)
        beta = self.beta if beta is None else beta
        return beta * s @ self.weight[i].T + self.bias[i]

    def predict(self, s: torch.Tensor, layer: int | None = None, beta: float | None = None) -> torch.Tensor:
        """The token the map gives for each subject vector s [n, d]: [n] token IDs."""
        return self.candidates[self.logits(s, layer, beta).argmax(-1)]


def relation_map(model, reading: RelationReading, *, train: Sequence[int], dev: Sequence[int],
                 betas: Sequence[float] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)) -> RelationMap:
    """Estimate the relation's LRE from the subjects ``train`` (indices into ``reading``); choose layer and β on ``dev`` (Chapter 18).

    W is the mean of the Jacobians ∂o/∂s taken at the train subjects (their own prompts), b the mean
    of o − W s there (Hernandez et al. 2023). Only the rows the LM head reads for the candidates
    are computed, at all of ``reading.layers`` at once. The layer and β with the most dev subjects
    whose map answer equals the model's own answer are kept (ties: the earlier layer, the smaller β).
    """
    train, dev = list(train), list(dev)
    if not train or not dev or set(train) & set(dev):
        raise AnatomyError("train and dev must be non-empty and disjoint lists of subject indices.")
    if not betas or any(b <= 0 for b in betas):
        raise AnatomyError(f"betas={tuple(betas)!r}: give positive scales, such as (1.0, 2.0, 4.0).")
    rows = _read_out_rows(model, reading.candidates.to(model.lm_head.weight.device))  # [k, d]
    pre = run.prefix(model, relation_prompt(reading.demos, "")[:-1])
    start = time.perf_counter()
    jac = torch.stack([_jacobian_rows(model, pre, reading.suffixes[i], reading.layers, rows) for i in train])  # [n, L, k, d]
    seconds = (time.perf_counter() - start) / len(train)
    s = reading.vectors[train]  # [n, L, d]
    z = reading.final[train] @ rows.cpu().T  # [n, k] the read-out of o
    weight = jac.mean(0)  # [L, k, d]
    bias = (z[:, None] - torch.einsum("nlkd,nld->nlk", jac, s)).mean(0)  # [L, k]
    grid = torch.zeros(len(reading.layers), len(betas))
    answers = reading.answers[dev]
    for li in range(len(reading.layers)):
        for bi, beta in enumerate(betas):
            logits = beta * reading.vectors[dev, li] @ weight[li].T + bias[li]
            grid[li, bi] = (reading.candidates[logits.argmax(-1)] == answers).float().mean()
    best = int(grid.flatten().argmax())  # the first maximum: earliest layer, then smallest beta
    li, bi = divmod(best, len(betas))
    return RelationMap(model.name, reading.relation, reading.layers, reading.candidates, weight, bias,
                       tuple(reading.subjects[i] for i in train), tuple(float(b) for b in betas), grid,
                       reading.layers[li], float(betas[bi]), seconds)


# --- faithfulness -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RelationFaithfulness:
    """How often the map, and simpler maps, give the model's own answer on held-out subjects (Chapter 18)."""

    model_name: str
    relation: str
    layer: int
    beta: float
    n: int  # held-out subjects
    n_candidates: int
    distinct_answers: int  # how many different answers the model gave on them
    known: float  # share of them the model answers with the expected object's first token
    lre: float  # the map β W s + b
    lre_train: float  # the same map on its own training subjects
    bias_only: float  # b alone: the same answer for every subject
    identity: float  # s read directly through the LM head (the logit lens of the subject vector)

    @property
    def chance(self) -> float:
        """One candidate in k, picked blindly."""
        return 1 / self.n_candidates


def relation_faithfulness(model, lre: RelationMap, reading: RelationReading, *, test: Sequence[int],
                          train: Sequence[int]) -> RelationFaithfulness:
    """The map's faithfulness on the subjects ``test``, and on its ``train`` subjects, against two baselines (Chapter 18).

    Baselines: the bias alone (one answer for every subject: does the subject matter?) and the
    identity (the subject vector read directly through the LM head: is the answer already there,
    with no map at all?). Agreement is with the model's own answer, whatever it is.
    """
    test, train = list(test), list(train)
    li = lre.layers.index(lre.layer)
    s = reading.vectors[test, li]  # [n, d]
    answers = reading.answers[test]
    agree = lambda pred: float((pred == answers).float().mean())  # noqa: E731
    rows = _read_out_rows(model, lre.candidates.to(model.lm_head.weight.device)).cpu()  # [k, d]
    bias_only = lre.candidates[lre.bias[li].argmax()].expand(len(test))
    identity = lre.candidates[(s @ rows.T).argmax(-1)]
    train_score = float((lre.predict(reading.vectors[train, li]) == reading.answers[train]).float().mean())
    return RelationFaithfulness(model.name, lre.relation, lre.layer, lre.beta, len(test), len(lre.candidates),
                        len(set(answers.tolist())),
                        float((answers == reading.expected[test]).float().mean()), agree(lre.predict(s)), train_score, agree(bias_only), agree(identity))


# --- editing -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RelationEdits:
    """Edits of the subject vector on held-out subjects: the map's inverse against random edits of the same size (Chapter 18)."""

    model_name: str
    relation: str
    layer: int
    n: int  # edited subjects
    draws: int  # random edits per subject
    success: float  # share of subjects whose answer became the target after the LRE edit
    random_success: float  # the same share for random edits of the same length (all draws)
    random_changed: float  # share of random edits that changed the answer at all
    patch_success: float  # replacing s by the target subject's own vector (the reference)
    edit_norm: float  # mean |Δs| / |s|
    loss_clean: float  # next-token loss on ordinary text (the book's prose)
    loss_edit: float  # with the first subject's LRE edit added to one token of each text, at the layer
    loss_random: float  # with a random edit of the same length added there instead
    examples: tuple[tuple[str, str, str, str], ...]  # (subject, answer, target, answer after the edit)

    def table(self) -> Table:
        rows = [(s, a, t, e) for s, a, t, e in self.examples]
        return Table(("subject", "answer", "target", "answer after the edit"), tuple(rows),
                     caption=f"{self.model_name}, {self.relation}: the edit at layer {self.layer}")


def relation_edits(model, lre: RelationMap, reading: RelationReading, *, test: Sequence[int], draws: int = 8,
                   seed: int = 0, n_texts: int = 4) -> RelationEdits:
    """Move each test subject's vector so the map gives another subject's answer; does the model follow? (Chapter 18)

    The target of subject i is the next test subject (in order) whose answer differs (a subject
    with none is left out; ``n`` counts the subjects edited). The edit is
    Δs = (βW)⁺ (R o_t − R o_i) (Hernandez et al.'s inverse, on the read-out rows R): the smallest
    change of s that moves the map's logits as from o_i to o_t. Controls: ``draws`` random edits
    of the same length per subject, in directions of the subject vectors' own spread (the
    difference of two other subjects' vectors, seeded), and the target subject's vector patched in
    whole. The general check: the next-token loss on the book's text with the first subject's LRE
    edit (and a random edit of the same length) added at the layer to one token of each text, as
    the edit is used.
    """
    test = list(test)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise AnatomyError(f"draws={draws!r}: give a positive number of random edits per subject, e.g. 8.")
    li = lre.layers.index(lre.layer)
    rows = _read_out_rows(model, lre.candidates.to(model.lm_head.weight.device)).cpu()  # [k, d]
    w = lre.beta * lre.weight[li]  # [k, d]
    pinv = torch.linalg.pinv(w)  # [d, k]
    s_all = reading.vectors[:, li]  # [N, d]
    gen = torch.Generator().manual_seed(seed)
    pre = run.prefix(model, relation_prompt(reading.demos, "")[:-1])
    wins, rand_wins, rand_changed, patched, norms, examples = [], [], [], [], [], []
    deltas, rand_deltas = [], []
    for n_i, i in enumerate(test):
        t = next((test[(n_i + k) % len(test)] for k in range(1, len(test))
                  if reading.answers[test[(n_i + k) % len(test)]] != reading.answers[i]), None)
        if t is None:  # every test subject has this answer: there is nothing else to edit towards
            continue
        delta = pinv @ ((reading.final[t] - reading.final[i]) @ rows.T)  # [d]
        others = [j for j in range(len(reading.subjects)) if j not in (i, t)]
        pick = torch.stack([torch.randperm(len(others), generator=gen)[:2] for _ in range(draws)])  # [draws, 2]
        pick = torch.tensor(others)[pick]
        rand = s_all[pick[:, 0]] - s_all[pick[:, 1]]  # [draws, d]
        rand = rand / rand.norm(dim=-1, keepdim=True).clamp_min(1e-6) * delta.norm()
        adds = torch.cat([delta[None], rand, (s_all[t] - s_all[i])[None]])  # [draws+2, d]
        got = _answers_with(model, pre, reading.suffixes[i], lre.layer, adds)  # [draws+2]
        target, own = reading.answers[t], reading.answers[i]
        wins.append(float(got[0] == target))
        rand_wins += (got[1:-1] == target).float().tolist()
        rand_changed += (got[1:-1] != own).float().tolist()
        patched.append(float(got[-1] == target))
        norms.append(float(delta.norm() / s_all[i].norm()))
        deltas.append(delta)
        rand_deltas.append(rand[0])
        examples.append((reading.subjects[i], readable(model.tokenizer, int(own)), readable(model.tokenizer, int(target)),
                         readable(model.tokenizer, int(got[0]))))
    mean = lambda x: sum(x) / len(x) if x else float("nan")  # noqa: E731
    if not deltas:  # the model gave one answer for every test subject
        nan = float("nan")
        return RelationEdits(model.name, lre.relation, lre.layer, 0, draws, nan, nan, nan, nan, nan, nan, nan, nan, ())
    texts = book_text("en")[:n_texts]
    d_edit, d_rand = deltas[0], rand_deltas[0]

    def at_one(delta):  # added to the first position the loss reads, as the edit is added to one token
        def fn(h):
            h = h.clone()
            h[:, 0] += delta.to(h)
            return h
        return fn

    clean = next_token_loss(model, texts, lre.layer)
    one = next_token_loss(model, texts, lre.layer, at_one(d_edit))
    one_random = next_token_loss(model, texts, lre.layer, at_one(d_rand))
    return RelationEdits(model.name, lre.relation, lre.layer, len(test), draws, mean(wins), mean(rand_wins),
                         mean(rand_changed), mean(patched), mean(norms), clean, one, one_random, tuple(examples))


@torch.no_grad()
def _answers_with(model, pre: run.Prefix, suffix: Sequence[int], layer: int, adds: torch.Tensor) -> torch.Tensor:
    """The model's answer after ``suffix`` with each of ``adds`` [m, d] added to layer ``layer``'s output at the subject's last token: [m]."""
    ids = torch.tensor([list(suffix)] * adds.shape[0])  # [m, S]
    j = len(suffix) - 2

    def put(h):  # h: [m, S, d]
        h = h.clone()
        h[:, j] += adds.to(h)
        return h

    with hooks.edit(model, f"layers.{layer}", put):
        h = run.run_after(model, pre, ids, "final_norm")  # [m, S, d]
    return run.head(model, h[:, -1]).argmax(-1).cpu()


# --- tables --------------------------------------------------------------------------------------------
def relation_table(results: Sequence[RelationFaithfulness]) -> Table:
    """Faithfulness of every map against its baselines, one row per model and relation (Chapter 18)."""
    pct = lambda x: "–" if x != x else f"{x:.0%}"  # noqa: E731
    rows = tuple((f.model_name, f.relation, pct(f.known), f.distinct_answers, f.layer, f"{f.beta:g}", pct(f.lre),
                  pct(f.lre_train), pct(f.bias_only), pct(f.identity), pct(f.chance)) for f in results)
    return Table(("model", "relation", "answers right", "different answers", "layer ℓ", "β", "map", "map (train)",
                  "bias alone", "identity", "chance"), rows,
                 caption="On the held-out subjects: how often each map gives the model's own answer")
