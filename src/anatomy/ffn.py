"""The feed-forward layer and its neurons, by hand from the real weights (Chapter 11).

After attention, every position goes *on its own* through the same small two-layer network, the
feed-forward network (FFN; transformers calls it ``mlp``). In the models of this book it is gated:

    neurons = act(x @ W_gate.T) * (x @ W_up.T)      # [T, m]   m = intermediate size
    output  = neurons @ W_down.T                    # [T, d]

with ``act`` = SiLU (Llama, SmolLM2, Qwen) or GELU with the tanh approximation (Gemma). GPT-2 has the
classic form without a gate, with biases: ``output = gelu(x @ W_fc + b_fc) @ W_proj + b_proj``.
Neuron ``i`` is row ``i`` of W_gate and W_up (its *key*: what input it responds to) and column ``i``
of W_down (its *value*: what it adds to the residual stream when it fires), as in Geva et al. 2021,
"Transformer Feed-Forward Layers Are Key-Value Memories".
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple

import torch

from . import hooks, run
from .errors import AnatomyError
from .families.base import gain, get, weight
from .lm_head import logits_from_hidden
from .tokens import Token, readable, single_token_id, tokens_of

__all__ = [
    "CORPUS", "FFNRun", "FFNWeights", "Neuron", "NeuronActivations", "NeuronPushes", "NeuronSteps", "Push",
    "act_fn", "ffn_by_hand", "ffn_run", "ffn_weights", "neuron", "neuron_activations", "neuron_by_hand", "neuron_logit_attribution", "neurons_pushing", "promoted_tokens",
]

# A small built-in corpus for "which tokens make a neuron fire": varied topics, a few in Chinese.
CORPUS: tuple[str, ...] = (
    "The capital of France is Paris, and the capital of Japan is Tokyo.",
    "She poured a cup of hot coffee and opened the morning newspaper.",
    "The cat jumped onto the table and knocked over a glass of milk.",
    "In 1969, two astronauts walked on the surface of the Moon.",
    "The stock market fell sharply after the bank raised interest rates.",
    "He plays the guitar in a small rock band on Friday nights.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "The doctor told the patient to rest and drink plenty of water.",
    "Our team won the football match three goals to one.",
    "def add(a, b):\n    return a + b",
    "for i in range(10):\n    print(i * i)",
    "The recipe needs two eggs, a cup of flour and some sugar.",
    "It rained all day, so the children stayed inside and read books.",
    "The train to London leaves at seven o'clock from platform four.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "The judge said the law does not allow such a contract.",
    "My brother bought a new red car last Tuesday.",
    "The museum shows paintings by Monet, Van Gogh and Picasso.",
    "Mount Everest is the highest mountain in the world.",
    "The company hired twenty new engineers this year.",
    "Please send me the report by Monday morning.",
    "The old castle stands on a hill above the river.",
    "Elephants are the largest animals that live on land.",
    "She smiled, thanked him, and walked out of the room.",
    "Two plus three equals five, and ten minus four equals six.",
    "The president of the United States lives in the White House.",
    "I am learning to speak Spanish and Italian.",
    "The computer crashed because the memory was full.",
    "Winter in Canada is long, cold and snowy.",
    "The birds sang in the trees as the sun came up.",
    "今天天气真好，我们去公园散步吧。",
    "我有两颗青苹果和一个红色的橙子。",
    "北京是中国的首都，上海是最大的城市。",
    "他每天早上喝一杯咖啡，然后去上班。",
    "The violin, the cello and the piano played together.",
    "January, February, March and April are the first months of the year.",
)


# --- the weights --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FFNWeights:
    """One layer's feed-forward weights, as plain matrices in the equations' orientation (Chapter 11).

    Gated form (Llama, Qwen, Gemma): ``down @ (act(gate @ x) * (up @ x))``; ``gate`` is None for the
    classic form (GPT-2): ``down @ act(up @ x + up_bias) + down_bias``.
    """

    model_name: str
    layer: int
    activation: str  # "silu", "gelu_tanh" or "relu"
    up: torch.Tensor  # [m, d]
    down: torch.Tensor  # [d, m]
    gate: torch.Tensor | None = None  # [m, d], None without a gate
    up_bias: torch.Tensor | None = None  # [m]
    down_bias: torch.Tensor | None = None  # [d]

    @property
    def n_neurons(self) -> int:
        return self.up.shape[0]


def act_fn(name: str, z: torch.Tensor) -> torch.Tensor:
    """The activation functions of the FFN, written out (Chapter 11)."""
    if name == "silu":  # z * sigmoid(z)
        return z / (1 + torch.exp(-z))
    if name == "gelu_tanh":  # 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
        return 0.5 * z * (1 + torch.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))
    if name == "gelu":  # exact: z * Phi(z)
        return 0.5 * z * (1 + torch.erf(z / math.sqrt(2)))
    if name == "relu":  # the classic case
        return z.clamp_min(0)
    raise AnatomyError(f"Unknown activation {name!r}: anatomy knows 'silu', 'gelu_tanh', 'gelu' and 'relu'.")


def ffn_weights(model, layer: int) -> FFNWeights:
    """The feed-forward weights of one layer (0-based), whatever the family (Chapter 11).

    Read through ``model.arch``: separate or fused (Phi-3's gate_up_proj) projections, nn.Linear or
    GPT-2's Conv1D (stored transposed), all returned in nn.Linear's [out, in] orientation.
    """
    i = hooks.layer_index(model, layer)
    spec = model.arch.blocks[i].ffn
    mlp = get(model.layers[i], spec.path)
    up, up_bias = weight(mlp, spec.up)  # [m, d], [m]
    down, down_bias = weight(mlp, spec.down)  # [d, m], [d]
    gate = None if spec.gate is None else weight(mlp, spec.gate)[0]  # [m, d]
    return FFNWeights(model.name, i, spec.activation, up=up, down=down, gate=gate, up_bias=up_bias, down_bias=down_bias)


# --- the whole FFN by hand ----------------------------------------------------------------------
def _check_x(model, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[-1] != model.d_model:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise AnatomyError(f"The FFN input must have size d={model.d_model} on its last axis (shape [..., {model.d_model}]), got {shape}.")
    return x.to(device=model.device, dtype=model.dtype)


@torch.no_grad()
def ffn_by_hand(model, x: torch.Tensor, layer: int) -> torch.Tensor:
    """The feed-forward sub-layer of ``layer`` computed with plain tensor operations (Chapter 11).

    ``x`` is what the sub-layer reads, after the norm before it (place ``layers.N.mlp.input``),
    shape [..., d]; the result has the same shape and equals the model's ``mlp`` output. Each
    position is processed on its own: no position ever looks at another here.
    """
    w = ffn_weights(model, layer)
    x = _check_x(model, x)  # [..., d]
    up = x @ w.up.T  # [..., m] one weighted sum per neuron
    if w.up_bias is not None:
        up = up + w.up_bias
    if w.gate is None:  # classic: activation of the weighted sum (+ bias)
        neurons = act_fn(w.activation, up)  # [..., m]
    else:  # gated: activation of one weighted sum, times another
        neurons = act_fn(w.activation, x @ w.gate.T) * up  # [..., m]
    out = neurons @ w.down.T  # [..., d] each neuron adds its value vector, scaled by its activation
    if w.down_bias is not None:
        out = out + w.down_bias
    return out


@dataclass(frozen=True)
class FFNRun:
    """What one layer's feed-forward sub-layer read and produced for a prompt, captured from the model (Chapter 11)."""

    model_name: str
    layer: int
    prompt: str
    tokens: tuple[Token, ...]  # the T tokens the model read
    x: torch.Tensor  # [T, d] the sub-layer's input (after its norm)
    neurons: torch.Tensor  # [T, m] the neuron activations (input of the down projection)
    output: torch.Tensor  # [T, d] the sub-layer's output, before the residual add


@torch.no_grad()
def ffn_run(model, prompt: str, layer: int) -> FFNRun:
    """Run the model once and capture one layer's FFN input, neurons and output (Chapter 11)."""
    i = hooks.layer_index(model, layer)
    ids = run.check_prompt(model, prompt)  # [1, T]
    places = (f"layers.{i}.mlp.input", f"layers.{i}.mlp.neurons", f"layers.{i}.mlp")
    with hooks.capture(model, *places) as seen:
        run.forward(model, ids)
    x, neurons, out = (seen[p][0] for p in places)
    return FFNRun(model.name, i, prompt, tokens_of(model, ids[0]), x, neurons, out)


# --- one neuron ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Neuron:
    """One neuron of a feed-forward layer: its input weights (key) and its output weights (value) (Chapter 11)."""

    model_name: str
    layer: int
    index: int
    activation: str
    up: torch.Tensor  # [d] row `index` of W_up: the weights of the weighted sum
    value: torch.Tensor  # [d] column `index` of W_down: what the neuron adds to the residual stream
    gate: torch.Tensor | None = None  # [d] row `index` of W_gate (None without a gate)
    up_bias: float = 0.0
    gate_bias: float = 0.0


def _check_index(model, w: FFNWeights, index) -> int:
    m = w.n_neurons
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= int(index) < m:
        raise AnatomyError(f"Neuron {index!r} is out of range: layer {w.layer} of {model.name} has neurons 0 to {m - 1}.")
    return int(index)


def neuron(model, layer: int, index: int) -> Neuron:
    """The weights of neuron ``index`` in the FFN of ``layer`` (Chapter 11)."""
    w = ffn_weights(model, layer)
    i = _check_index(model, w, index)
    return Neuron(
        model.name, w.layer, i, w.activation, up=w.up[i], value=w.down[:, i],
        gate=None if w.gate is None else w.gate[i], up_bias=0.0 if w.up_bias is None else float(w.up_bias[i]),
    )


@dataclass(frozen=True)
class NeuronSteps:
    """One neuron's output for one input vector, step by step (Chapter 11)."""

    up_sum: float  # sum_j up_j x_j + bias
    gate_sum: float | None  # sum_j gate_j x_j (None without a gate)
    activated: float  # act(gate_sum) for a gated neuron, act(up_sum) otherwise
    output: float  # activated * up_sum for a gated neuron, activated otherwise


@torch.no_grad()
def neuron_by_hand(n: Neuron, x: torch.Tensor) -> NeuronSteps:
    """A neuron is a weighted sum of its inputs plus a bias, then an activation (Chapter 11).

    ``x`` has shape [d] (one position of ``FFNRun.x``). A gated neuron multiplies two weighted sums,
    only one of which goes through the activation.
    """
    if not isinstance(x, torch.Tensor) or x.shape != n.up.shape:
        raise AnatomyError(f"neuron_by_hand needs one input vector of shape [{n.up.shape[0]}], got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}.")
    x = x.to(n.up)
    up_sum = float((n.up * x).sum()) + n.up_bias  # a weighted sum, plus a bias
    if n.gate is None:
        a = float(act_fn(n.activation, torch.tensor(up_sum, dtype=torch.float64)))
        return NeuronSteps(up_sum, None, a, a)
    gate_sum = float((n.gate * x).sum()) + n.gate_bias
    a = float(act_fn(n.activation, torch.tensor(gate_sum, dtype=torch.float64)))
    return NeuronSteps(up_sum, gate_sum, a, a * up_sum)


# --- FFN as key-value memories (Geva et al. 2021) -------------------------------------------------
@dataclass(frozen=True)
class NeuronActivations:
    """Every neuron of one layer on every token of a corpus (Chapter 11)."""

    model_name: str
    layer: int
    tokens: tuple[Token, ...]  # all N tokens, sentence after sentence
    contexts: tuple[str, ...]  # for each token: the few tokens before it and the token, in brackets
    values: torch.Tensor  # [N, m] activation of each neuron at each token

    def top(self, index: int, k: int = 8, *, sign: int = 1) -> list[tuple[str, str, float]]:
        """The k tokens where neuron ``index`` is most positive (``sign=-1``: most negative): (token, context, activation)."""
        m = self.values.shape[1]
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= int(index) < m:
            raise AnatomyError(f"Neuron {index!r} is out of range: layer {self.layer} of {self.model_name} has neurons 0 to {m - 1}.")
        if sign not in (1, -1):
            raise AnatomyError(f"sign={sign!r} is not allowed: use 1 (most positive) or -1 (most negative).")
        v = self.values[:, int(index)]
        top = (sign * v).topk(min(k, v.shape[0]))
        return [(self.tokens[j].text, self.contexts[j], float(v[j])) for j in top.indices.tolist()]


@torch.no_grad()
def neuron_activations(model, corpus: tuple[str, ...], layer: int) -> NeuronActivations:
    """One forward pass over a corpus (a padded batch), keeping one layer's neuron activations (Chapter 11).

    The pass stops after ``layer``: nothing above it is needed. Padding sits on the right, so with
    causal attention it never changes the real tokens. The first position of each sentence is left
    out (for Gemma it is <bos>; for SmolLM2, which adds no <bos>, the first word takes that role):
    the first position is where attention parks unused weight (an "attention sink", Xiao et al.
    2023) and it carries huge activations in many neurons, whatever the word. Other special tokens
    are left out too. ``corpus`` is a list of sentences (the book uses ``anatomy.ffn.CORPUS``).
    """
    if (isinstance(corpus, str) or not isinstance(corpus, (list, tuple)) or not corpus
            or not all(isinstance(c, str) and c.strip() for c in corpus)):
        raise AnatomyError("The corpus must be a non-empty list of non-empty sentences, e.g. anatomy.ffn.CORPUS "
                           "(arguments: model, corpus, layer).")
    i = hooks.layer_index(model, layer)
    b = run.batch(model, corpus)  # [B, T], padded on the right
    rows = [b.ids[k, :n] for k, n in enumerate(b.lengths.tolist())]  # each [T_k]
    place = f"layers.{i}.mlp.neurons"
    with hooks.capture(model, place) as seen:
        run.run_to(model, b, f"layers.{i}")
    acts = seen[place]  # [B, T, m]
    special = set(model.tokenizer.all_special_ids)
    tokens, contexts, keep = [], [], []
    for b, r in enumerate(rows):
        toks = tokens_of(model, r)
        text = [tk.text for tk in toks]
        for t, tid in enumerate(r.tolist()):
            if t == 0 or tid in special:
                continue
            tokens.append(toks[t])
            contexts.append("".join(text[max(0, t - 4):t]) + f"[{text[t]}]")
            keep.append(acts[b, t])
    return NeuronActivations(model.name, i, tuple(tokens), tuple(contexts), torch.stack(keep).float().cpu())


def _read_out(model, layer: int, v: torch.Tensor) -> torch.Tensor:
    """Carry vectors [..., d] written by the FFN of ``layer`` to the LM head's input, norms included.

    Some families normalize the FFN output before adding it to the residual (Gemma 2/3, OLMo2:
    ``post_ffn_norm`` in ``model.arch``); every model applies the final norm before the LM head.
    On one vector an RMSNorm divides by a positive number and multiplies each dimension by a fixed
    gain, so the *order* of the tokens it promotes is exact, while the size of each logit is not.
    """
    post = model.arch.blocks[layer].post_ffn_norm
    if post is not None:
        v = get(model.layers[layer], post.path)(v)
    if model.final_norm is not None:
        v = model.final_norm(v)
    return v


@torch.no_grad()
def promoted_tokens(model, n: Neuron, k: int = 8, *, sign: int = 1) -> list[tuple[str, float]]:
    """The tokens a neuron's value vector pushes up, read through the LM head (Chapter 11).

    The value vector (column of W_down, shape [d]) goes through the norms that follow the FFN
    (Gemma's post-FFN norm, then the final norm) and then the LM head, like the logit lens of a
    single neuron. Returns (token, logit) pairs; only their order is meaningful. The neuron adds
    ``activation * value`` to the residual stream: a positive activation promotes these tokens,
    a negative one demotes them. ``sign=-1`` reads ``-value``: what the neuron promotes when its
    activation is negative (a gated neuron's activation can have either sign).
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise AnatomyError(f"k={k!r} is not allowed: ask for a positive number of tokens, e.g. 8.")
    if sign not in (1, -1):
        raise AnatomyError(f"sign={sign!r} is not allowed: use 1 (positive activation) or -1 (negative activation).")
    v = sign * n.value.to(device=model.device, dtype=model.dtype)  # [d]
    v = _read_out(model, n.layer, v[None, None])[0, 0]  # [d]
    logits = logits_from_hidden(model, v)  # [V]
    top = logits.topk(k)
    return [(readable(model.tokenizer, j), float(s)) for s, j in zip(top.values, top.indices.tolist())]


def _norm_scale(norm, x: torch.Tensor) -> torch.Tensor:
    """The denominator a norm divides ``x`` [..., d] by: its RMS (or standard deviation), with eps. Shape [..., 1]."""
    x = x.float()
    if norm.kind == "layer":
        x = x - x.mean(-1, keepdim=True)
    return torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)


def _linear_part(norm, u: torch.Tensor) -> torch.Tensor:
    """What a norm does to a vector once its denominator is fixed: RMSNorm keeps u, LayerNorm centers it."""
    return u - u.mean(-1, keepdim=True) if norm.kind == "layer" else u


class NeuronPushes(NamedTuple):
    """Every neuron of a layer at the last position: its activation and its direct push on a token's logit."""

    activations: torch.Tensor  # [m]
    pushes: torch.Tensor  # [m] they add up to the FFN's whole direct effect on the logit


class Push(NamedTuple):
    """One neuron that pushes a token: its index, its activation and its direct push on the logit."""

    neuron: int
    activation: float
    push: float


@torch.no_grad()
def neuron_logit_attribution(model, prompt: str, layer: int, token: str) -> NeuronPushes:
    """Each neuron's exact direct effect on ``token``'s logit at the last position of ``prompt`` (Chapter 11).

    The FFN writes y = Σᵢ aᵢ vᵢ (+ b). A post-FFN norm (Gemma 2/3, OLMo2) turns it into
    g_post ⊙ y / rms_post, with rms_post the RMS of the whole y; the final norm divides the last
    residual stream h by rms_final and multiplies by g_final before the LM head row W_U[t]. With
    both denominators fixed at their values in this run (direct-logit attribution), neuron i adds

        aᵢ · W_U[t] · (g_final ⊙ g_post ⊙ vᵢ) / (rms_post · rms_final)

    to the logit (no g_post, rms_post without a post-FFN norm; a LayerNorm also centers vᵢ). The
    contributions add up to the FFN's whole direct contribution W_U[t]·(g_final ⊙ update)/rms_final,
    except for a down-projection bias. Logit soft-capping (Gemma 2) comes after and is left out.
    Returns `NeuronPushes` (activations [m], pushes [m]), which unpacks as a pair.
    """
    i = hooks.layer_index(model, layer)
    ids = run.check_prompt(model, prompt)  # [1, T]
    tid = single_token_id(model, token)
    spec, arch = model.arch.blocks[i], model.arch
    last = f"layers.{model.n_layers - 1}"
    places = (f"layers.{i}.mlp.neurons", f"layers.{i}.mlp", last)
    with hooks.capture(model, *places) as seen:
        run.forward(model, ids)
    a = seen[places[0]][0, -1].float()  # [m] activations at the last position
    y = seen[places[1]][0, -1].float()  # [d] the FFN's output
    h = seen[places[2]][0, -1].float()  # [d] the last residual stream, before the final norm
    values = ffn_weights(model, i).down.T.float()  # [m, d] every neuron's value vector
    direction = model.lm_head.weight[tid].float()  # [d] the LM head row of the token
    if arch.final_norm is not None:
        direction = direction * gain(model.decoder, arch.final_norm) / _norm_scale(arch.final_norm, h)
        values = _linear_part(arch.final_norm, values)
    if spec.post_ffn_norm is not None:
        direction = direction * gain(model.layers[i], spec.post_ffn_norm) / _norm_scale(spec.post_ffn_norm, y)
    return NeuronPushes(a, a * (values @ direction))  # [m], [m]


@torch.no_grad()
def neurons_pushing(model, prompt: str, layer: int, token: str, k: int = 3) -> list[Push]:
    """The neurons of ``layer`` that push ``token`` up the most at the last position of ``prompt`` (Chapter 11).

    For each neuron: its activation a at the last position, and its push = its exact direct effect
    on the logit of ``token`` (:func:`neuron_logit_attribution`: through the norms' gains and their
    shared denominators, the pushes of all neurons add up to the FFN's direct effect). The layers
    above can still change what happens. Returns a `Push` (neuron, activation, push) for each of
    the k largest pushes.
    """
    acts, push = neuron_logit_attribution(model, prompt, layer, token)  # [m], [m]
    top = push.topk(k)
    return [Push(j, float(acts[j]), float(p)) for p, j in zip(top.values, top.indices.tolist())]
