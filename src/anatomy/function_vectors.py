"""Function vectors: the vector at one layer that carries a task shown by few-shot examples (Chapter 15).

Hendel et al. (2023) call it a task vector, Todd et al. (2023) a function vector, Liu et al. (2023) an
in-context vector. The recipe, in the lecture's vocabulary:

    prompts = few_shot_prompts(train_pairs, n_prompts=12, n_shots=5, seed=0)   # "hot: cold\\nbig: small\\n...\\nfast:"
    v = task_vectors(model, prompts)[layer]             # mean last-token output of that layer, [d]
    task_accuracy(model, held_out, layer, v)            # patch v into "wet:" alone: does "dry" come out?
    function_vector_scan(model, train, held_out, layers)  # over layers, beside zero-shot and a random vector

A prompt is ``"x: y"`` lines, one per example, and ends with ``"x:"``; the answer is the first token
of ``" y"`` as the model reads it right after the prompt.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import hooks, run
from .errors import AnatomyError
from .lm_head import logits_from_hidden
from .show import Table
from .tokens import continuation_id, readable

__all__ = ["FunctionVectorScan", "decode_vector", "few_shot_prompts", "function_vector_scan",
           "task_accuracy", "task_vectors", "zero_shot_prompt"]


def _pairs(pairs, what: str = "pairs") -> list[tuple[str, str]]:
    ok = isinstance(pairs, Sequence) and not isinstance(pairs, str) and len(pairs) > 0
    ok = ok and all(isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(w, str) and w.strip() for w in p) for p in pairs)
    if not ok:
        raise AnatomyError(f"{what} must be a non-empty list of (input, answer) word pairs, e.g. [('hot', 'cold'), ('big', 'small')].")
    return [(str(a), str(b)) for a, b in pairs]


def zero_shot_prompt(word: str) -> str:
    """The query alone, with no examples: ``"wet:"``."""
    return f"{word}:"


def few_shot_prompts(pairs, n_prompts: int = 12, n_shots: int = 5, *, seed: int = 0) -> list[str]:
    """``n_prompts`` few-shot prompts, each ``n_shots`` example lines and a query, drawn from ``pairs`` (seeded).

    Every prompt ends with the query ``"x:"`` of one more pair, whose answer is not shown.
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
        lines = [f"{x}: {y}" for x, y in chosen[:-1]]
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
    ``mode="add"`` adds to it (Todd et al. 2023; Liu et al. 2023). Without a layer and vector: the zero-shot baseline.
    """
    pairs, mode = _pairs(pairs), _mode(mode)
    if (layer is None) != (vector is None):
        raise AnatomyError("Give both a layer and a vector (or neither, for the zero-shot baseline).")
    if layer is None:
        return float(_accuracies(model, pairs, None, torch.zeros(1, model.d_model), mode)[0])
    layer, vector = hooks.layer_index(model, layer), run.check_vector(model, vector)
    return float(_accuracies(model, pairs, layer, vector[None], mode)[0])


@dataclass(frozen=True)
class FunctionVectorScan:
    """Accuracy on held-out pairs with the task vector of each layer, beside its controls (Chapter 15).

    ``accuracy[i]``: the task vector of ``layers[i]`` put into the zero-shot prompts at that layer;
    ``random_accuracy[i]``: a random vector of the same norm there instead (seeded); ``zero_shot``:
    no examples, nothing put in; ``few_shot``: the held-out queries after a few-shot prompt's examples.
    """

    model_name: str
    task: str
    mode: str
    layers: tuple[int, ...]
    accuracy: torch.Tensor  # [n_layers]
    random_accuracy: torch.Tensor  # [n_layers]
    zero_shot: float
    few_shot: float
    n_held_out: int

    @property
    def best_layer(self) -> int:
        """The layer whose task vector gives the highest accuracy (the earliest, on a tie)."""
        return self.layers[int(self.accuracy.argmax())]

    @property
    def best_accuracy(self) -> float:
        return float(self.accuracy.max())

    def table(self) -> Table:
        return Table(("layer", "task vector", "random vector, same norm"),
                     tuple((layer, round(float(a), 2), round(float(r), 2))
                           for layer, a, r in zip(self.layers, self.accuracy, self.random_accuracy)),
                     caption=f"{self.model_name}, {self.task}: zero-shot {self.zero_shot:.2f}, few-shot {self.few_shot:.2f}, {self.n_held_out} held-out pairs")


def function_vector_scan(model, train_pairs, held_out, layers: Sequence[int] | None = None, *, task: str = "",
                         n_prompts: int = 12, n_shots: int = 5, mode: str = "patch", seed: int = 0) -> FunctionVectorScan:
    """Task vectors from few-shot prompts of ``train_pairs``, tried at each layer on ``held_out`` (Chapter 15).

    ``mode="patch"`` puts the mean few-shot vector in place of the zero-shot one; ``mode="add"``
    adds the difference of means, few-shot minus zero-shot (the in-context vector of Liu et al. 2023).
    Cost: one batched pass for the task vectors, one for the zero-shot and one for the few-shot
    baseline, and one per layer (task vector and random vector together).
    """
    train, test, mode = _pairs(train_pairs, "train_pairs"), _pairs(held_out, "held_out"), _mode(mode)
    layers = tuple(range(model.n_layers)) if layers is None else tuple(hooks.layer_index(model, i) for i in layers)
    if not layers:
        raise AnatomyError("Give at least one layer to try, e.g. layers=range(0, model.n_layers, 3).")
    vectors = task_vectors(model, few_shot_prompts(train, n_prompts, n_shots, seed=seed))  # [L, d]
    if mode == "add":  # what the examples add: few-shot mean minus the zero-shot mean of the same queries
        vectors = vectors - task_vectors(model, [zero_shot_prompt(x) for x, _ in train])
    g = torch.Generator().manual_seed(seed)
    accuracy, random_accuracy = [], []
    for layer in layers:
        r = torch.randn(model.d_model, generator=g)
        r = r / r.norm() * vectors[layer].norm()  # [d], as long as the task vector
        both = _accuracies(model, test, layer, torch.stack([vectors[layer], r]), mode)  # [2]
        accuracy.append(float(both[0]))
        random_accuracy.append(float(both[1]))
    zero = float(_accuracies(model, test, None, torch.zeros(1, model.d_model), mode)[0])
    shots = random.Random(seed + 1)
    icl = [few_shot_prompts(train, 1, n_shots, seed=shots.randrange(10**9))[0].rsplit("\n", 1)[0] + "\n" + zero_shot_prompt(x) for x, _ in test]
    few = float(_accuracies(model, test, None, torch.zeros(1, model.d_model), mode, prompts=icl)[0])
    return FunctionVectorScan(model.name, task, mode, layers, torch.tensor(accuracy), torch.tensor(random_accuracy), zero, few, len(test))


@torch.no_grad()
def decode_vector(model, vector: torch.Tensor, k: int = 8) -> tuple[str, ...]:
    """What the LM head reads in a vector: final norm, then the LM head, top ``k`` tokens (Chapter 15)."""
    vector = run.check_vector(model, vector)
    h = model.final_norm(vector.to(device=model.lm_head.weight.device, dtype=model.lm_head.weight.dtype)[None])[0]  # [d]
    top = logits_from_hidden(model, h).topk(k).indices  # [k]
    return tuple(readable(model.tokenizer, int(i)) for i in top)
