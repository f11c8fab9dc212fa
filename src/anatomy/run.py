"""Run a model, or part of it: a padded batch of prompts, a whole pass, up to a place, from a layer, last tokens, chosen LM-head rows.

Every chapter module runs the model through these few functions (Chapters 1-18):

    ids = check_prompt(model, prompt)                # one prompt as the model reads it, [1, T]; a clear error if empty or too long
    out = forward(model, ids, hidden_states=True)    # one whole pass: transformers' own output (.logits, .hidden_states...)
    b = batch(model, prompts)                        # each prompt as the model reads it alone, padded on the right
    h = run_to(model, b, "layers.5")                 # the layers up to layer 5's output; nothing after it runs
    v = last(h, b)                                   # each prompt's vector at its last real token, [B, d]
    p = pause(model, b, 6)                           # one pass that keeps what enters layer 6 ...
    h = resume(model, p, copies=3)                   # ... then layers 6..L-1 and the final norm on 3 copies
    pre = prefix(model, "France: Paris\n")          # a shared beginning, read once (its keys and values) ...
    h = run_after(model, pre, ids, "layers.29")      # ... then only the tokens after it, in many rows
    logits = head(model, v, rows=[id_a, id_b])       # the LM head, only the rows asked for (soft-capped)
    out = generate(model, batch(model, chats, left=True), 6)  # greedy continuations of a left-padded batch

Nothing here replaces a module's ``forward``: every layer that a partial run passes through is
called as a module, so a hook on it (``hooks.capture``, ``hooks.edit``) sees its true values, and a
layer the run does not reach is simply not called.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from . import hooks
from .devices import weights_on
from .errors import AnatomyError

__all__ = ["Batch", "Paused", "Prefix", "batch", "batches", "check_prompt", "check_vector", "forward", "generate", "head", "last",
           "last_tokens", "pad", "pause", "prefix", "prompts", "resume", "run_after", "run_to", "soft_cap"]


def check_prompt(model, prompt: str) -> torch.Tensor:
    """Tokenize a prompt the way the model will read it; reject empty or too long prompts. Shape [1, T], on the model's device."""
    if not isinstance(prompt, str) or prompt.strip() == "":
        raise AnatomyError("The prompt is empty: give the model some text to continue, e.g. 'The capital of France is'.")
    ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"]
    window = getattr(model.config, "max_position_embeddings", None)
    if window is not None and ids.shape[1] > window:
        raise AnatomyError(f"The prompt is {ids.shape[1]} tokens, longer than {model.name}'s window of {window}; shorten it.")
    return ids.to(model.device)


def prompts(texts, what: str = "prompts") -> list[str]:
    """A non-empty list of prompts, or a clear error naming the argument ``what``."""
    if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0:
        raise AnatomyError(f"{what} must be a non-empty list of prompts, e.g. ['The weather today is', 'My friend said'].")
    return list(texts)


def check_vector(model, vector) -> torch.Tensor:
    """One finite vector of the model's width d ([d]), as steering and patching add it; a clear error otherwise."""
    d = model.d_model
    if not isinstance(vector, torch.Tensor) or vector.ndim != 1 or vector.shape[0] != d:
        shape = tuple(vector.shape) if isinstance(vector, torch.Tensor) else type(vector).__name__
        raise AnatomyError(f"The steering vector has shape {shape}, but {model.name} needs one vector of size {d} ([d]); use direction(model, prompts_a, prompts_b, layer).")
    if not torch.isfinite(vector).all():
        raise AnatomyError("The steering vector contains NaN or infinite values; recompute it from real prompts.")
    return vector


# --- batching with padding -------------------------------------------------------------------------
@dataclass(frozen=True)
class Batch:
    """Prompts tokenized one by one as the model reads each alone, padded on the right.

    With causal attention a real token never sees the padding after it, and its positions stay
    0, 1, 2... as if it were alone, so each prompt's real tokens get exactly their unpadded values.
    """

    ids: torch.Tensor  # [B, T] token IDs (padding after each prompt's last real token), on the model's device
    mask: torch.Tensor  # [B, T] 1 = real token, 0 = padding, on the model's device
    lengths: torch.Tensor  # [B] real tokens per prompt, on the CPU
    left: bool = False  # True: the padding is on the left, every prompt ends at the last column

    def __len__(self) -> int:
        return self.ids.shape[0]

    def repeat(self, copies: int) -> Batch:
        """The whole batch ``copies`` times, one after the other: row r is prompt r % B. Shape [copies*B, T]."""
        return Batch(self.ids.repeat(copies, 1), self.mask.repeat(copies, 1), self.lengths.repeat(copies), self.left)


def _ids(model, text: str, max_tokens: int | None, special_tokens: bool = True) -> torch.Tensor:
    if not special_tokens:  # a text that brings its own start tokens (a chat template)
        return model.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]  # [T]
    if max_tokens is None:
        return check_prompt(model, text)[0].cpu()  # [T]: empty or too long prompts get a clear error
    return model.tokenizer(text, return_tensors="pt")["input_ids"][0, :max_tokens]  # [T <= max_tokens]


def _pad_id(model) -> int:
    tok = model.tokenizer
    return next((p for p in (tok.pad_token_id, tok.eos_token_id) if p is not None), 0)


def pad(model, rows: Sequence[torch.Tensor], *, left: bool = False) -> Batch:
    """One batch of token-ID rows ([T_k] each, e.g. a prompt followed by an answer), padded on the right (or the left)."""
    lengths = torch.tensor([len(r) for r in rows])  # [B]
    width = int(lengths.max())
    ids = torch.full((len(rows), width), _pad_id(model), dtype=torch.long)  # [B, T]
    mask = torch.zeros_like(ids)  # [B, T] 1 = real token
    for k, r in enumerate(rows):
        where = slice(width - len(r), width) if left else slice(0, len(r))
        ids[k, where], mask[k, where] = r, 1
    return Batch(ids.to(model.device), mask.to(model.device), lengths, left)


def batch(model, texts: Sequence[str], *, max_tokens: int | None = None, left: bool = False, special_tokens: bool = True) -> Batch:
    """One padded batch of ``texts``, each tokenized as the model reads it alone (cut at ``max_tokens`` if given).

    Padding goes on the right, or with ``left=True`` on the left (to generate: every prompt then
    ends at the last column). ``special_tokens=False`` for texts that bring their own (a chat template).
    """
    return pad(model, [_ids(model, t, max_tokens, special_tokens) for t in texts], left=left)


def batches(model, texts: Sequence[str], batch_size: int, *, max_tokens: int | None = None) -> Iterator[tuple[list[int], Batch]]:
    """Right-padded batches of at most ``batch_size`` texts, similar lengths together (little padding).

    Yields ``(indices, batch)``: row b of the batch is ``texts[indices[b]]``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise AnatomyError(f"batch_size={batch_size!r} is not allowed: use a positive integer such as 32.")
    rows = [_ids(model, t, max_tokens) for t in texts]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield idx, pad(model, [rows[i] for i in idx])


def last(h: torch.Tensor, b: Batch) -> torch.Tensor:
    """Each prompt's vector at its own last real token: h [B, T, ...] -> [B, ...]."""
    if b.left:
        return h[:, -1]
    return h[torch.arange(h.shape[0], device=h.device), (b.lengths - 1).to(h.device)]


# --- one whole pass --------------------------------------------------------------------------------
@contextlib.contextmanager
def _eager(model):
    """Attention weights exist only with the 'eager' implementation; switch to it for the block if needed."""
    before = getattr(model.hf.config, "_attn_implementation", "eager")
    if before != "eager":
        model.hf.set_attn_implementation("eager")
    try:
        yield
    finally:
        if before != "eager":
            model.hf.set_attn_implementation(before)


_LOGITS = {"all": 0, "last": 1}  # transformers' logits_to_keep: 0 = every position


def forward(model, inputs, *, logits: str | None = "all", hidden_states: bool = False, attentions: bool = False,
            past=None, keep: bool = False):
    """One whole forward pass; transformers' own output: ``.logits``, ``.hidden_states``, ``.attentions``, ``.past_key_values``.

    ``inputs`` is a :class:`Batch` (its padding masked) or token IDs [B, T] on the model's device
    (every token real). ``logits``: at ``"all"`` positions [B, T, V], at the ``"last"`` one only
    [B, 1, V] (the LM head reads one row per prompt), or ``None``: no LM head, the decoder alone
    (``.last_hidden_state``, after the final norm). ``hidden_states=True`` keeps what enters every
    layer (``hidden_states[i]`` enters layer i; the last entry is after the final norm);
    ``attentions=True`` keeps every layer's attention weights [B, H, T, T] (with the eager
    attention, switched to for the call if the model was loaded otherwise). ``keep=True`` returns
    the keys and values (``.past_key_values``); passed back as ``past``, the next call's IDs
    continue those tokens. Hooks the caller set see the pass's true values.
    """
    if logits is not None and logits not in _LOGITS:
        raise AnatomyError(f"logits={logits!r} is not allowed: use 'all', 'last' or None (no LM head).")
    kw = {"input_ids": inputs.ids, "attention_mask": inputs.mask} if isinstance(inputs, Batch) else {"input_ids": inputs}
    if hidden_states:
        kw["output_hidden_states"] = True
    if attentions:
        kw["output_attentions"] = True
    if past is not None:
        kw["past_key_values"] = past
    kw["use_cache"] = keep or past is not None
    if logits is not None:
        kw["logits_to_keep"] = _LOGITS[logits]
    whole = model.decoder if logits is None else model.hf
    with _eager(model) if attentions else contextlib.nullcontext():
        return whole(**kw)


@torch.no_grad()
def generate(model, b: Batch, max_new_tokens: int):
    """Greedy continuations of a left-padded batch (``batch(..., left=True)``), with the KV cache; hooks around apply.

    transformers' own output: ``.sequences`` [B, T + n] (the prompt columns, then the new tokens,
    padded after an end of text) and ``.logits``, one [B, V] per new token.
    """
    if not b.left:
        raise AnatomyError("generate needs a left-padded batch (batch(model, texts, left=True)): every prompt must end at the last column.")
    return model.hf.generate(input_ids=b.ids, attention_mask=b.mask, do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=_pad_id(model), temperature=None, top_p=None, top_k=None,
                             output_logits=True, return_dict_in_generate=True)


# --- running up to a place ---------------------------------------------------------------------------
class _Stop(Exception):
    """Raised by a hook to end a forward pass once the value asked for is in hand."""


def _value(s: hooks.Site, args, output) -> torch.Tensor:
    x = args[0] if s.is_input else output
    return s.take(x[0] if isinstance(x, tuple) else x)


def run_to(model, b: Batch, place: str = "final_norm") -> torch.Tensor:
    """Run the layers on a batch until ``place`` has been computed; return its value there (Chapters 5-18).

    Nothing after ``place`` runs (no later layer, no LM head). Hooks the caller set on places
    before it see their true values. Not a copy: under ``torch.enable_grad`` it keeps the graph.
    """
    return _run_until(model, place, input_ids=b.ids, attention_mask=b.mask, use_cache=False)


def _run_until(model, place: str, **inputs) -> torch.Tensor:
    """The decoder run on ``inputs`` until ``place`` is computed; its value there (nothing after it runs)."""
    s = hooks.site(model, place)
    out = {}

    def grab(mod, args, output):
        out["v"] = _value(s, args, output)
        raise _Stop

    handle = s.module.register_forward_hook(grab)
    try:
        model.decoder(**inputs)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "v" not in out:
        raise AnatomyError(f"The forward pass of {model.name} never reached {place!r}; check the place name with anatomy.places(model).")
    return out["v"]


@torch.no_grad()
def last_tokens(model, b: Batch, places: Sequence[str]) -> dict[str, torch.Tensor]:
    """One pass (to the final norm, no LM head); each place's vector at every prompt's last real token. [B, d] per place."""
    with hooks.capture(model, *places) as seen:
        run_to(model, b, "final_norm")
    return {p: last(seen[p], b).float().cpu() for p in places}


# --- running from a layer ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Paused:
    """A (right-padded) batch's pass kept at the entrance of ``layer``: what enters it, and what the decoder gives each later layer."""

    layer: int
    batch: Batch
    hidden: torch.Tensor  # [B, T, d] the residual stream entering `layer` (the output of layer - 1)
    calls: tuple[tuple[tuple, dict], ...]  # for layers layer..L-1: the (args, kwargs) the decoder passed, hidden state aside
    final: torch.Tensor  # [B, T, d] the final-norm output of this (unchanged) pass


def pause(model, b: Batch, layer: int) -> Paused:
    """Run the batch once through every layer, keeping what enters ``layer`` and the inputs of the layers after it.

    :func:`resume` then runs many copies of the batch from ``layer`` on, without recomputing the
    layers before it. This pass is a normal one: hooks the caller set see their true values.
    """
    layer = hooks.layer_index(model, layer)
    calls: list = []
    hidden = {}

    def keep(mod, args, kwargs, i):
        h = args[0] if args else kwargs["hidden_states"]
        if i == layer:
            hidden["h"] = h.detach()
        calls.append((args[1:], {k: v for k, v in kwargs.items() if k != "hidden_states"}))

    handles = [model.layers[i].register_forward_pre_hook(lambda m, a, k, i=i: keep(m, a, k, i), with_kwargs=True)
               for i in range(layer, model.n_layers)]
    try:
        with torch.no_grad():
            final = run_to(model, b, "final_norm")
    finally:
        for h in handles:
            h.remove()
    return Paused(layer, b, hidden["h"], tuple(calls), final.detach())


def _copies(x, n: int, copies: int):
    """x with every batch-sized tensor (first axis n, two axes or more) repeated ``copies`` times along that axis."""
    if isinstance(x, torch.Tensor):
        return x.repeat(copies, *([1] * (x.ndim - 1))) if x.ndim >= 2 and x.shape[0] == n else x
    if isinstance(x, tuple):
        return tuple(_copies(v, n, copies) for v in x)
    if isinstance(x, list):
        return [_copies(v, n, copies) for v in x]
    if isinstance(x, dict):
        return {k: _copies(v, n, copies) for k, v in x.items()}
    return x


@torch.no_grad()
def resume(model, p: Paused, copies: int = 1) -> torch.Tensor:
    """Run layers ``p.layer``..L-1 and the final norm on ``copies`` copies of the paused batch. Shape [copies*B, T, d].

    Each layer is called as a module with the inputs the decoder gave it in :func:`pause`, so
    hooks on those layers and their parts see their true values (e.g. ``hooks.edit`` on
    ``layers.N.mlp.neurons`` to ablate a neuron in one copy). Copy c is rows c*B..(c+1)*B-1.
    """
    n = len(p.batch)
    h = p.hidden.repeat(copies, *([1] * (p.hidden.ndim - 1)))  # [copies*B, T, d]
    for i, (args, kwargs) in zip(range(p.layer, model.n_layers), p.calls):
        out = model.layers[i](h, *_copies(args, n, copies), **_copies(kwargs, n, copies))
        h = out[0] if isinstance(out, tuple) else out
    return model.final_norm(h) if model.final_norm is not None else h


# --- a shared beginning read once ----------------------------------------------------------------------
@dataclass(frozen=True)
class Prefix:
    """The start of many prompts, read once: its token IDs and the keys and values every layer kept."""

    ids: torch.Tensor  # [1, P] the prefix's token IDs (with the tokenizer's start tokens), on the model's device
    cache: object  # the decoder's key/value cache after the prefix; never changed (run_after copies it)


@torch.no_grad()
def prefix(model, text: str) -> Prefix:
    """Read ``text`` once and keep every layer's keys and values (Chapter 18), so :func:`run_after` runs only what follows."""
    ids = check_prompt(model, text)  # [1, P]
    out = model.decoder(input_ids=ids, use_cache=True)
    return Prefix(ids, out.past_key_values)


def run_after(model, p: Prefix, ids: torch.Tensor, place: str = "final_norm") -> torch.Tensor:
    """Run the tokens ``ids`` [B, S] (the same length in every row) after the prefix ``p``; the value at ``place``, [B, S, ...].

    Every row continues the same prefix, whose keys and values are copied B times, so the prefix's
    tokens are not recomputed: what runs costs S tokens per row. Hooks the caller set see the
    values of these S positions only (position 0 is the first token after the prefix). Nothing after
    ``place`` runs; under ``torch.enable_grad`` the graph is kept (Chapter 18's Jacobians).
    """
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise AnatomyError(f"run_after needs token IDs of shape [rows, tokens], got {tuple(ids.shape)}.")
    cache = copy.deepcopy(p.cache)
    if ids.shape[0] > 1:
        cache.batch_repeat_interleave(ids.shape[0])
    return _run_until(model, place, input_ids=ids.to(model.device), past_key_values=cache, use_cache=True)


# --- the LM head -------------------------------------------------------------------------------------
def soft_cap(model, logits: torch.Tensor) -> torch.Tensor:
    """The family's final soft-cap, cap * tanh(logits / cap) (Gemma 2); the logits unchanged without one (Chapter 4)."""
    cap = model.arch.final_softcap  # from the family file (families/)
    return cap * torch.tanh(logits / cap) if cap else logits


def head(model, h: torch.Tensor, rows=None) -> torch.Tensor:
    """The LM head on final-norm vectors h [..., d]: logits [..., V], or [..., k] for the k ``rows`` (token IDs) asked for.

    Computed in h's dtype and on h's device; only the rows asked for are read from the V x d matrix.
    """
    with weights_on(model.hf, model.lm_head):  # with a device map: offloaded weights brought in for the product
        w, bias = model.lm_head.weight, model.lm_head.bias
        if rows is not None:
            w, bias = w[rows], (None if bias is None else bias[rows])
        logits = h @ w.to(h).T  # [..., V] or [..., k]
        if bias is not None:
            logits = logits + bias.to(h)
    return soft_cap(model, logits)
