"""Task vectors: the vector at one layer that carries a task shown by few-shot examples (Chapter 15).

Three papers found such vectors, each in its own way; this module builds the first:

* Hendel et al. (2023, arXiv 2310.15916), *task vectors*: the mean output of one layer at the
  last token of few-shot prompts, patched into the same place of a zero-shot prompt (measured on
  Pythia 2.8B to 12B, GPT-J-6B and LLaMA 7B to 30B).
* Todd et al. (2024, ICLR, arXiv 2310.15213), *function vectors*: the summed mean outputs of the
  attention heads with the largest average indirect effect on shuffled-label prompts, added to one
  layer (about a third of the depth) at the last token.
* Liu et al. (2023, arXiv 2311.06668), *in-context vectors*: the first principal direction of the
  differences h(y) - h(x) between the latent states of each demonstration's output y and input x,
  added to every layer at every position while the model reads a new query.

The recipe, in the lecture's vocabulary:

    prompts = few_shot_prompts(train_pairs, n_prompts=12, n_shots=5, seed=0)   # "hot: cold\\nbig: small\\n...\\nfast:"
    v = task_vectors(model, prompts)[layer]             # mean last-token output of that layer, [d]
    task_accuracy(model, held_out, layer, v)            # patch v into "wet:" alone: does "dry" come out?
    t = task_vector_test(model, train, dev, test, layers)   # layer chosen on dev, controls on test
    cross_task(model, {task: t, ...}, {task: test, ...})    # each task's vector on the others' queries

A prompt is ``"x: y"`` lines, one per example, and ends with ``"x:"``; the answer is the first token
of ``" y"`` as the model reads it right after the prompt.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import hooks, run
from .errors import AnatomyError
from .lm_head import logits_from_hidden
from .show import Table
from .tokens import continuation_id, readable

__all__ = ["Correct", "CrossTask", "TaskVectorTest", "cross_task", "decode_vector", "few_shot_prompts",
           "task_accuracy", "task_vector_table", "task_vector_test", "task_vectors", "wilson", "zero_shot_prompt"]


def _pairs(pairs, what: str = "pairs") -> list[tuple[str, str]]:
    ok = isinstance(pairs, Sequence) and not isinstance(pairs, str) and len(pairs) > 0
    ok = ok and all(isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(w, str) and w.strip() for w in p) for p in pairs)
    if not ok:
        raise AnatomyError(f"{what} must be a non-empty list of (input, answer) word pairs, e.g. [('hot', 'cold'), ('big', 'small')].")
    return [(str(a), str(b)) for a, b in pairs]


def zero_shot_prompt(word: str) -> str:
    """The query alone, with no examples: ``"wet:"``."""
    return f"{word}:"


def few_shot_prompts(pairs, n_prompts: int = 12, n_shots: int = 5, *, seed: int = 0,
                     shuffle_labels: bool = False) -> list[str]:
    """``n_prompts`` few-shot prompts, each ``n_shots`` example lines and a query, drawn from ``pairs`` (seeded).

    Every prompt ends with the query ``"x:"`` of one more pair, whose answer is not shown. With
    ``shuffle_labels=True`` each example gets the answer of another example of the same prompt
    (a cyclic shift): the same words, but no mapping to learn (Todd et al. 2024's corrupted prompts).
    """
    pairs = _pairs(pairs)
    if isinstance(n_shots, bool) or not isinstance(n_shots, int) or not 1 <= n_shots < len(pairs):
        raise AnatomyError(f"n_shots={n_shots!r} is not allowed: use 1 to {len(pairs) - 1} (each prompt needs its examples and one more pair as the query).")
    if isinstance(n_prompts, bool) or not isinstance(n_prompts, int) or n_prompts < 1:
        raise AnatomyError(f"n_prompts={n_prompts!r} is not allowed: ask for at least one prompt, e.g. 12.")
    rng = random.Random(seed)
    prompts = []
    for _ in range(n_prompts):
        chosen = rng.sample(pairs, n_shots + 1)  # the last one is the query
        shown = chosen[:-1]
        answers = [y for _, y in shown[1:] + shown[:1]] if shuffle_labels else [y for _, y in shown]
        lines = [f"{x}: {y}" for (x, _), y in zip(shown, answers)]
        prompts.append("\n".join(lines + [zero_shot_prompt(chosen[-1][0])]))
    return prompts


def task_vectors(model, prompts) -> torch.Tensor:
    """The mean over few-shot prompts of each layer's output at the last token (the query's ':'). [L, d] (Chapter 15).

    Row l is the task vector of layer l. One batched forward pass.
    """
    if isinstance(prompts, str) or not isinstance(prompts, Sequence) or len(prompts) == 0:
        raise AnatomyError("prompts must be a non-empty list of few-shot prompts; build them with few_shot_prompts(pairs).")
    places = [f"layers.{i}" for i in range(model.n_layers)]
    seen = run.last_tokens(model, run.batch(model, list(prompts)), places)  # [B, d] per place
    return torch.stack([seen[p].mean(0) for p in places])  # [L, d]


@torch.no_grad()
def _accuracies(model, pairs, layer: int | None, vectors: torch.Tensor, mode: str, prompts=None) -> torch.Tensor:
    """Accuracy on the pairs' zero-shot prompts (or ``prompts``) with each of K vectors put at the last token. [K]

    One batched pass of K * N rows; with ``layer=None`` nothing is put in (K = 1, the plain model).
    """
    prompts = [zero_shot_prompt(x) for x, _ in pairs] if prompts is None else prompts
    targets = torch.tensor([continuation_id(model, p, y) for p, (_, y) in zip(prompts, pairs)])  # [N]
    n, k = len(prompts), len(vectors)
    b = run.batch(model, prompts).repeat(k)  # [K*N, T]
    rows = torch.arange(k * n)
    last = (b.lengths - 1).to(b.ids.device)
    put = vectors.float().repeat_interleave(n, dim=0)  # [K*N, d]: prompt copy i gets vector i // N

    def change(h):  # h: [K*N, T, d]; only each prompt's last real token changes
        h = h.clone()
        v = put.to(device=h.device, dtype=h.dtype)
        h[rows, last] = v if mode == "patch" else h[rows, last] + v
        return h

    with contextlib.ExitStack() as stack:  # the layers and the final norm; the LM head runs below, on the right rows only
        if layer is not None:
            stack.enter_context(hooks.edit(model, f"layers.{layer}", change))
        h = run.last(run.run_to(model, b, "final_norm"), b).float()  # [K*N, d]
    guess = logits_from_hidden(model, h.to(model.lm_head.weight.dtype)).argmax(-1)  # [K*N]
    return (guess == targets.repeat(k)).float().view(k, n).mean(1)  # [K]


def _mode(mode: str) -> str:
    if mode not in ("patch", "add"):
        raise AnatomyError(f"mode={mode!r} is not allowed: use 'patch' (replace the last token's vector) or 'add' (add to it).")
    return mode


def task_accuracy(model, pairs, layer: int | None = None, vector: torch.Tensor | None = None, *, mode: str = "patch") -> float:
    """Top-1 accuracy on the pairs' zero-shot prompts ``"x:"``, with ``vector`` put at the last token of ``layer``.

    ``mode="patch"`` replaces the output of that layer at the last token (Hendel et al. 2023);
    ``mode="add"`` adds to it (as Todd et al. 2024 add their function vector). Without a layer and
    vector: the zero-shot baseline.
    """
    pairs, mode = _pairs(pairs), _mode(mode)
    if (layer is None) != (vector is None):
        raise AnatomyError("Give both a layer and a vector (or neither, for the zero-shot baseline).")
    if layer is None:
        return float(_accuracies(model, pairs, None, torch.zeros(1, model.d_model), mode)[0])
    layer, vector = hooks.layer_index(model, layer), run.check_vector(model, vector)
    return float(_accuracies(model, pairs, layer, vector[None], mode)[0])


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n (95 % for z = 1.96): (low, high) in [0, 1]."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or not 0 <= k <= n:
        raise AnatomyError(f"wilson needs 0 <= k <= n and n >= 1, got k={k!r}, n={n!r}.")
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Correct:
    """k right answers out of n held-out queries, with its 95 % Wilson interval."""

    k: int
    n: int

    @property
    def accuracy(self) -> float:
        return self.k / self.n

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    def __str__(self) -> str:
        lo, hi = self.interval
        return f"{self.k}/{self.n} ({lo:.0%}–{hi:.0%})"


@dataclass(frozen=True)
class TaskVectorTest:
    """A task vector's layer chosen on dev queries, then tried on held-out queries beside its controls (Chapter 15).

    ``dev_accuracy[i]``: the task vector of ``layers[i]`` patched into the dev zero-shot prompts;
    ``layer``: the best of them (earliest on a tie). At that layer, on the test queries:
    ``task_vector`` (the mean few-shot vector), ``shuffled`` (the same from demonstrations whose
    answers are shuffled among the inputs), ``zero_mean`` (the mean vector of zero-shot prompts);
    ``zero_shot`` and ``few_shot`` are the plain prompts. ``vectors`` [L, d]: the task vectors of
    every layer (for cross-task controls, ``cross_task``).
    """

    model_name: str
    task: str
    layers: tuple[int, ...]
    dev_accuracy: torch.Tensor  # [n_layers]
    layer: int
    task_vector: Correct
    shuffled: Correct
    zero_mean: Correct
    zero_shot: Correct
    few_shot: Correct
    vectors: torch.Tensor  # [L, d]

    def table(self) -> Table:
        rows = (("task vector", self.task_vector), ("shuffled-label vector", self.shuffled),
                ("mean zero-shot vector", self.zero_mean), ("zero-shot prompt", self.zero_shot),
                ("few-shot prompt", self.few_shot))
        return Table(("held-out queries", "right (95 % interval)"), tuple((a, str(b)) for a, b in rows),
                     caption=f"{self.model_name}, {self.task}: layer {self.layer} (chosen on dev)")


def task_vector_table(tests) -> Table:
    """Several ``TaskVectorTest`` results side by side: one row per model and task (Chapter 15)."""
    tests = list(tests)
    if not tests or not all(isinstance(t, TaskVectorTest) for t in tests):
        raise AnatomyError("task_vector_table takes a list of task_vector_test(...) results.")
    return Table(("model", "task", "layer (dev)", "task vector", "shuffled labels", "mean zero-shot", "zero-shot",
                  "few-shot"),
                 tuple((t.model_name, t.task, t.layer, str(t.task_vector), str(t.shuffled), str(t.zero_mean),
                        str(t.zero_shot), str(t.few_shot)) for t in tests),
                 caption="right answers on held-out test queries (95 % Wilson interval)")


def _correct(model, pairs, layer, vectors, mode="patch", prompts=None) -> list[Correct]:
    acc = _accuracies(model, pairs, layer, vectors, mode, prompts)  # [K]
    n = len(pairs)
    return [Correct(int(round(float(a) * n)), n) for a in acc]


def task_vector_test(model, train_pairs, dev_pairs, test_pairs, layers: Sequence[int] | None = None, *, task: str = "",
                     n_prompts: int = 12, n_shots: int = 5, seed: int = 0) -> TaskVectorTest:
    """Task vectors from ``train_pairs``; the layer chosen on ``dev_pairs``; results on ``test_pairs`` (Chapter 15).

    Cost: three batched passes for the vectors (few-shot, shuffled-label, zero-shot prompts of the
    training pairs), one small pass per layer on the dev queries, two on the test queries and one
    for the few-shot baseline.
    """
    train, dev, test = _pairs(train_pairs, "train_pairs"), _pairs(dev_pairs, "dev_pairs"), _pairs(test_pairs, "test_pairs")
    layers = tuple(range(model.n_layers)) if layers is None else tuple(hooks.layer_index(model, i) for i in layers)
    if not layers:
        raise AnatomyError("Give at least one layer to try, e.g. layers=range(0, model.n_layers, 2).")
    vectors = task_vectors(model, few_shot_prompts(train, n_prompts, n_shots, seed=seed))  # [L, d]
    shuffled = task_vectors(model, few_shot_prompts(train, n_prompts, n_shots, seed=seed, shuffle_labels=True))
    zero = task_vectors(model, [zero_shot_prompt(x) for x, _ in train])  # [L, d]
    dev_acc = torch.tensor([float(_accuracies(model, dev, layer, vectors[layer][None], "patch")[0]) for layer in layers])
    best = layers[int(dev_acc.argmax())]
    tv, sh, zm = _correct(model, test, best, torch.stack([vectors[best], shuffled[best], zero[best]]))
    plain = _correct(model, test, None, torch.zeros(1, model.d_model))[0]
    shots = random.Random(seed + 1)
    icl = [few_shot_prompts(train, 1, n_shots, seed=shots.randrange(10**9))[0].rsplit("\n", 1)[0] + "\n" + zero_shot_prompt(x)
           for x, _ in test]
    few = _correct(model, test, None, torch.zeros(1, model.d_model), prompts=icl)[0]
    return TaskVectorTest(model.name, task, layers, dev_acc, best, tv, sh, zm, plain, few, vectors)


@dataclass(frozen=True)
class CrossTask:
    """Each task's vector patched into every task's held-out queries, at the queries' task's chosen layer (Chapter 15).

    ``correct[i][j]``: right answers on task ``tasks[j]``'s test queries with the vector of ``tasks[i]``.
    """

    model_name: str
    tasks: tuple[str, ...]
    correct: tuple[tuple[Correct, ...], ...]

    def off_diagonal_max(self) -> float:
        """The best accuracy a vector of another task reaches on a task's queries."""
        return max(c.accuracy for i, row in enumerate(self.correct) for j, c in enumerate(row) if i != j)

    def table(self) -> Table:
        return Table(("vector of \\ queries of", *self.tasks),
                     tuple((t, *(str(c) for c in row)) for t, row in zip(self.tasks, self.correct)),
                     caption=f"{self.model_name}: right answers on held-out queries (95 % interval)")


def cross_task(model, tests, test_pairs) -> CrossTask:
    """Patch every task's vector into every task's test queries (at the layer chosen for the queries' task).

    ``tests``: {task: TaskVectorTest} of one model; ``test_pairs``: {task: held-out pairs}.
    """
    if not isinstance(tests, dict) or not tests or set(tests) != set(test_pairs):
        raise AnatomyError("cross_task needs {task: task_vector_test(...)} and {task: test pairs} with the same tasks.")
    tasks = tuple(tests)
    cols = []
    for t in tasks:  # queries of task t, at its layer: every task's vector in one batched pass
        layer = tests[t].layer
        cols.append(_correct(model, _pairs(test_pairs[t]), layer, torch.stack([tests[s].vectors[layer] for s in tasks])))
    return CrossTask(model.name, tasks, tuple(tuple(cols[j][i] for j in range(len(tasks))) for i in range(len(tasks))))


@torch.no_grad()
def decode_vector(model, vector: torch.Tensor, k: int = 8) -> tuple[str, ...]:
    """What the LM head reads in a vector: final norm, then the LM head, top ``k`` tokens (Chapter 15)."""
    vector = run.check_vector(model, vector)
    h = model.final_norm(vector.to(device=model.lm_head.weight.device, dtype=model.lm_head.weight.dtype)[None])[0]  # [d]
    top = logits_from_hidden(model, h).topk(k).indices  # [k]
    return tuple(readable(model.tokenizer, int(i)) for i in top)
