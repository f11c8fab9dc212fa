"""mkdocs hooks for the reference pages: tables on the API overview generated from the library itself.

docs/en/api/index.md holds two markers that are replaced when the site is built:

* ``<!-- anatomy:families-table -->``: one row per file of ``anatomy.families``: the family, the
  transformers ``model_type`` values it handles, where the layers, norms, attention and MLP sit,
  and what is special, read from the ``Arch`` the file returns for the default configuration of
  its model type (no weights are made or loaded) and from the file's docstring;
* ``<!-- anatomy:modules-table -->``: one row per module page of docs/en/api, with the first line
  of the module's docstring.

The API pages themselves are ``::: anatomy.x`` stubs rendered by mkdocstrings; tests/test_reference.py
checks that every public module has one and that none names a module that does not exist.
"""

from __future__ import annotations

import ast
import html
import re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "anatomy"
FAMILIES_MARK = "<!-- anatomy:families-table -->"
MODULES_MARK = "<!-- anatomy:modules-table -->"

_NORM_KIND = {"rms": "RMSNorm", "rms_1p": "RMSNorm, gain 1 + w", "layer": "LayerNorm"}


def _code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


def _norm(norm, where: str = "") -> str:
    return _code(where + norm.path)


def _proj(proj) -> str:
    fused = " (rows of a fused matrix)" if proj.rows is not None else ""
    conv = " (Conv1D)" if proj.conv1d else ""
    return _code(proj.path) + fused + conv


def _inline(text: str) -> str:
    """A docstring's line as HTML: escaped, with its ``code`` and *emphasis* marked up."""
    text = html.escape(text)
    text = re.sub(r"``(.+?)``", r"<code>\1</code>", text)
    return re.sub(r"\*(\w[^*]*?)\*", r"<em>\1</em>", text)


def _summary(module) -> str:
    """The first line of a family file's docstring, without the family's name before the colon."""
    first = (module.__doc__ or "").strip().splitlines()[0]
    return first.split(": ", 1)[1] if ": " in first else first


def _config(model_type: str):
    """transformers' default configuration of a model type (no weights)."""
    from transformers import AutoConfig

    cfg = AutoConfig.for_model(model_type)
    return cfg.get_text_config()


def family_rows() -> list[list[str]]:
    """One row per family file: family, model types, layers, norms, attention, MLP, what is special."""
    from anatomy import families

    rows = []
    for file in families._FILES:
        cfg = _config(file.MODEL_TYPES[0])
        arch = file.describe(cfg)
        block = arch.blocks[0]
        a, f = block.attn, block.ffn
        layer_path = f"{arch.decoder}.{arch.layers}[i]"
        norms = [f"{label}: {_norm(n)}" for label, n in (("before attention", block.attn_norm), ("before the MLP", block.ffn_norm),
                                                         ("after attention", block.post_attn_norm), ("after the MLP", block.post_ffn_norm))
                 if n is not None]
        if arch.final_norm is not None:
            norms.append(f"final: {_norm(arch.final_norm, arch.decoder + '.')}")
        kinds = dict.fromkeys(_NORM_KIND[n.kind] for n in (block.attn_norm, block.ffn_norm, block.post_attn_norm,
                                                           block.post_ffn_norm, arch.final_norm) if n is not None)
        norms.append("all " + " / ".join(kinds))
        if a.q.path == a.k.path == a.v.path:  # one fused matrix for q, k and v
            attn = [_code(a.path) + ":", "q, k, v " + _proj(a.q) + ",", "o " + _proj(a.o)]
        else:
            attn = [_code(a.path) + ":", "q " + _proj(a.q) + ",", "k " + _proj(a.k) + ",", "v " + _proj(a.v) + ",", "o " + _proj(a.o)]
        if a.q_norm is not None:
            attn.append(f"; QK-norm {_code(a.q_norm.path)}, {_code(a.k_norm.path)} ({'per head' if a.qk_norm_per_head else 'over all heads'})")
        mlp = [_code(f.path) + ":"]
        if f.gate is not None and f.gate.path == f.up.path:  # gate and up in one fused matrix
            mlp += [f"gate, up {_proj(f.up)},"]
        else:
            mlp += [f"gate {_proj(f.gate)}," if f.gate is not None else "", f"up {_proj(f.up)},"]
        mlp += [f"down {_proj(f.down)};", f"activation {f.activation}"]
        summary = _summary(file).rstrip(".")
        special = [_inline(summary)]
        said = lambda *words: any(w in summary for w in words)  # noqa: E731  (the docstring says it already)
        if any(b.parallel for b in arch.blocks) and not said("parallel"):
            special.append("parallel residual")
        if arch.rotary is None and not said("positions"):
            special.append("learned positions (no RoPE)")
        elif a.rotary_dim and a.rotary_dim < a.head_dim:
            special.append(f"RoPE on {a.rotary_dim} of {a.head_dim} dimensions per head")
        if arch.embed_scale != 1.0 and not said("sqrt(d)", "√d"):
            special.append("embeddings multiplied by √d")
        if (a.softcap is not None or arch.final_softcap is not None) and not said("soft-capped"):
            special.append("soft-capped " + " and ".join(w for w, c in (("scores", a.softcap), ("logits", arch.final_softcap)) if c is not None))
        if a.n_kv_heads < a.n_heads:
            special.append(f"grouped-query attention in the default configuration ({a.n_heads} query heads, {a.n_kv_heads} K/V heads)")
        if arch.local_layers:
            share = "every layer" if not arch.global_layers else f"{len(arch.local_layers)} of {arch.n_layers} layers"
            special.append(f"sliding-window attention on {share} in the default configuration")
        family = f"<strong>{html.escape(arch.family)}</strong><br>model_type: " + ", ".join(_code(t) for t in file.MODEL_TYPES)
        rows.append([family, "<br>".join([f"layer i: {_code(layer_path)}", *norms]), " ".join(attn),
                     " ".join(m for m in mlp if m), "; ".join(special) + "."])
    return rows


def families_table() -> str:
    """The table as HTML, in the box that scrolls sideways on a narrow screen (docs/assets/extra.css)."""
    head = ["Family", "Layers and norms", "Attention", "MLP", "What is special"]
    rows = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in family_rows())
    return ('<div class="anatomy-table"><table><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
            + f"</tr></thead><tbody>{rows}</tbody></table></div>")


def _first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def documented_modules(api_dir: Path) -> dict[str, list[str]]:
    """{page name: the modules its ``::: anatomy.x`` lines document} for every page of an API folder."""
    pattern = re.compile(r"^:::\s+(anatomy(?:\.\w+)*)\s*$", re.M)
    return {p.name: pattern.findall(p.read_text(encoding="utf-8")) for p in sorted(api_dir.glob("*.md"))}


def public_modules() -> list[str]:
    """Every module of anatomy whose name does not start with an underscore, subpackages' modules included."""
    names = ["anatomy"]
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if any(part.startswith("_") for part in parts[:-1]) or (parts[-1].startswith("_") and parts[-1] != "__init__"):
            continue
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if parts:
            names.append("anatomy." + ".".join(parts))
    return names


def modules_table(api_dir: Path) -> str:
    rows = []
    for page, modules in documented_modules(api_dir).items():
        if page == "index.md" or not modules:
            continue
        module = modules[0]
        rel = Path(*module.split(".")[1:])
        path = SRC / rel / "__init__.py" if (SRC / rel).is_dir() else SRC / rel.with_suffix(".py")
        summary = _first_line(path).replace("|", "\\|")
        rows.append(f"| [`{module}`]({page}) | {summary} |")
    return "\n".join(rows)


# --- the references page: every entry says which pages cite it ------------------------------
REFERENCES = "references.md"
_ENTRY = re.compile(r'^- <a id="([\w-]+)"></a>')
_CITATION = re.compile(r"\]\(references\.md#([\w-]+)\)")
_CITED_IN = {"en": "Cited in: ", "zh": "引用于：", "zh-TW": "引用於："}


def entry_anchors(text: str) -> list[str]:
    """The anchors of a references page's entries, in page order."""
    return [m.group(1) for line in text.splitlines() if (m := _ENTRY.match(line))]


def citations(folder: Path, order: list[str] | None = None) -> dict[str, list[Path]]:
    """{anchor: the pages of a language folder that link to it}, pages in ``order`` (file names; the others after)."""
    order = order or []
    rank = lambda p: (order.index(p.name) if p.name in order else len(order), p.name)  # noqa: E731
    cited: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.md"), key=rank):
        if path.name == REFERENCES:
            continue
        for anchor in dict.fromkeys(_CITATION.findall(path.read_text(encoding="utf-8"))):
            cited.setdefault(anchor, []).append(path)
    return cited


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def with_back_links(markdown: str, folder: Path, lang: str, order: list[str] | None = None) -> str:
    """Each entry of a references page followed by links to the pages of its language that cite it."""
    cited = citations(folder, order)
    lines = markdown.splitlines()
    out, current = [], None
    for i, line in enumerate(lines):
        out.append(line)
        if m := _ENTRY.match(line):
            current = m.group(1)
        elif not (current and line.startswith("  ")):  # not a continuation line of an entry
            current = None
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if following.startswith("  ") and not _ENTRY.match(following):
            continue  # the entry goes on
        pages = cited.get(current, [])
        if pages:
            links = ", ".join(f"[{_title(p)}]({p.name})" for p in pages)
            out.append(f"  <br><small class=\"anatomy-cited\">{_CITED_IN.get(lang, _CITED_IN['en'])}{links}</small>")
    return "\n".join(out) + "\n"


@lru_cache(maxsize=None)
def _families_table_cached() -> str:
    return families_table()


def on_page_markdown(markdown, page, config, files):
    if FAMILIES_MARK in markdown:
        markdown = markdown.replace(FAMILIES_MARK, _families_table_cached())
    if Path(page.file.src_uri).name == REFERENCES:
        parts = Path(page.file.src_uri).parts
        lang = parts[0] if len(parts) > 1 else "en"
        nav = [item if isinstance(item, str) else next(iter(item.values())) for item in config["nav"] or []]
        order = [Path(str(entry)).name for entry in nav if isinstance(entry, str)]
        markdown = with_back_links(markdown, Path(page.file.abs_src_path).parent, lang, order)
    if MODULES_MARK in markdown:
        markdown = markdown.replace(MODULES_MARK, modules_table(Path(page.file.abs_src_path).parent))
    return markdown
