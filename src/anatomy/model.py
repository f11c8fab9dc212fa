"""A loaded model: the Hugging Face model and tokenizer, its architecture description, its parts by role (Start here)."""

from __future__ import annotations

import torch

from . import families
from .devices import execution_device
from .families.base import get

__all__ = ["Model"]


class Model:
    """A loaded model: the plain Hugging Face model and tokenizer, plus its parts by role.

    ``model.hf`` and ``model.tokenizer`` are the ordinary transformers objects, so everything the
    lecture does with them works (``model.hf.num_parameters()``, ``output_hidden_states=True``...).
    ``model.arch`` is the architecture description (``anatomy.families``), resolved once here:
    where every norm, projection and sub-layer sits and how it computes. The rest names the parts
    the book talks about, whatever the model family.
    """

    def __init__(self, name: str, hf: torch.nn.Module, tokenizer, source: str):
        self.name = name
        self.hf = hf
        self.tokenizer = tokenizer
        self.source = source  # where the weights came from, in words
        self.config = hf.config.get_text_config()
        #: the architecture description (frozen): norms, projections, rotary, FFN, residual, per layer
        self.arch: families.Arch = families.describe(hf)
        a = self.arch
        final = f"{a.decoder}.{a.final_norm.path}" if a.final_norm else None
        #: the module path of each role, e.g. {"layers": "model.layers", "final_norm": "model.norm"}
        self.paths = {"decoder": a.decoder, "layers": f"{a.decoder}.{a.layers}", "final_norm": final}
        self.decoder = get(hf, a.decoder)
        self.layers: torch.nn.ModuleList = get(self.decoder, a.layers)
        self.final_norm: torch.nn.Module | None = get(self.decoder, a.final_norm.path) if a.final_norm else None
        self.embedding: torch.nn.Embedding = hf.get_input_embeddings()
        self.lm_head: torch.nn.Linear = hf.get_output_embeddings()

    # --- sizes, read from the architecture description ----------------------------------------
    @property
    def family(self) -> str:
        """The family file that describes the model: 'llama', 'gemma3', 'gpt2'... (the same as ``arch.family``).

        ``config.model_type`` keeps transformers' own name ('gemma3_text').
        """
        return self.arch.family

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_heads(self) -> int:
        return self.arch.blocks[0].attn.n_heads

    @property
    def n_kv_heads(self) -> int:
        return self.arch.blocks[0].attn.n_kv_heads

    @property
    def d_model(self) -> int:
        return self.embedding_table.shape[1]

    @property
    def head_dim(self) -> int:
        return self.arch.blocks[0].attn.head_dim

    @property
    def vocab_size(self) -> int:
        """Rows of the embedding table (can exceed the tokens the tokenizer actually uses)."""
        return self.embedding_table.shape[0]

    # --- parameters by role ---------------------------------------------------------------
    @property
    def embedding_table(self) -> torch.Tensor:
        """The V x d table of token embeddings (the parameter itself, not a copy). Shape [V, d]."""
        return self.embedding.weight

    @property
    def embed_scale(self) -> float:
        """What the model multiplies a table row by before layer 0: sqrt(d) for Gemma, 1 for Llama."""
        return self.arch.embed_scale

    @property
    def tied(self) -> bool:
        """True when the LM head is the embedding table itself (shared storage)."""
        if self.lm_head.weight.device.type == "meta":  # offloaded by a device map (anatomy.devices): no storage to compare
            return bool(getattr(self.config, "tie_word_embeddings", False))
        return self.lm_head.weight.data_ptr() == self.embedding_table.data_ptr()

    @property
    def device(self) -> torch.device:
        """Where inputs go: the device that runs the embedding (with a device map, its execution device)."""
        return execution_device(self.hf, self.embedding)

    def device_of(self, module: torch.nn.Module) -> torch.device:
        """The device that runs ``module``: the same for every module, unless a device map spread the model."""
        return execution_device(self.hf, module)

    @property
    def dtype(self) -> torch.dtype:
        return self.embedding_table.dtype

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}: {type(self.hf).__name__}, {self.n_layers} layers, d={self.d_model}, "
            f"{self.n_heads} heads ({self.n_kv_heads} K/V), vocabulary {self.vocab_size:,}, "
            f"{self.dtype} on {self.device})"
        )
