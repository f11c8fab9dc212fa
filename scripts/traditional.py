"""繁體中文（台灣）: the Traditional Chinese edition, generated at build time from the Simplified pages.

docs/zh holds the only Chinese text anyone writes. Before mkdocs collects the files, the build
writes docs/zh-TW/ (git-ignored) from it: the prose goes through OpenCC's ``s2twp`` conversion
(Traditional characters, Taiwan phrases: 資訊, 程式碼, 預設, 機率, 記憶體) after the project's own
dictionary (``scripts/traditional_terms.tsv``) has fixed the terms that OpenCC gets wrong on our
pages (参数 is 參數, not 引數). What must not change is protected and copied byte for byte:

* the jupytext header, fenced code blocks and inline code (so a Traditional page runs exactly
  the code of its Simplified page, and the build executes the chapter once for the three);
* math ($...$, $$...$$, \\(...\\), \\[...\\]), HTML tags and comments, URLs and link targets;
* tokens and prompts quoted in the prose: a quoted span (“…”, "…", 「…」, ‘…’) whose text
  occurs in a string of the page's own code is what the model was given or gave back
  (“天气” in the logit-lens chapter is the Simplified prompt, next to the Traditional “天氣”);
* glosses that give the Simplified form of a Traditional word, 天氣（天气）, which would
  otherwise become 天氣（天氣）.

A dictionary entry with a quotation mark in it names a quote that is a word, not a token
(看不出任何"苹果"的意思: the idea of an apple): it is converted, as the entry says.

Outputs of the code are not converted: they are what the model printed. The Chinese sentence of a
checked claim (``anatomy.claim(..., zh=...)``) is prose, not output: the zh-TW page shows it converted
(``convert_claims``, at render time, so the three languages still share one execution).

Run by hand: ``python scripts/traditional.py`` writes docs/zh-TW as the build does and says what it wrote.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE, TARGET = "zh", "zh-TW"
TERMS = Path(__file__).resolve().parent / "traditional_terms.tsv"

_CJK = re.compile(r"[\u3400-\u9fff]")

# What is copied unchanged, in the order it is recognised (an earlier kind hides its text from later ones).
_STRUCTURE = [
    re.compile(r"\A---\n.*?\n---\n", re.S),  # jupytext header
    re.compile(r"^[ \t]*(`{3,}|~{3,}).*?^[ \t]*\1[ \t]*$", re.S | re.M),  # fenced code
    re.compile(r"<!--.*?-->", re.S),  # HTML comment
    re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)", re.S),  # inline code
    re.compile(r"\$\$.+?\$\$", re.S),  # display math
    re.compile(r"\\\[.+?\\\]|\\\(.+?\\\)", re.S),
    re.compile(r"(?<![\\$])\$(?!\s)[^$\n]+?(?<![\s\\])\$"),  # inline math
    re.compile(r"</?[A-Za-z][^<>\n]*>"),  # HTML tag, autolink
    re.compile(r"\]\([^()\s]*(?:\([^()\s]*\)[^()\s]*)*(?:\s+\"[^\"]*\")?\)"),  # link target
    re.compile(r"^[ \t]*\[[^\]\n]+\]:[ \t]*\S+.*$", re.M),  # link reference definition
    re.compile(r"https?://[^\s)>\]）]+"),  # bare URL
]
_QUOTED = re.compile(r"“([^”\n\0]+)”|\"([^\"\n\0]+)\"|「([^」\n\0]+)」|‘([^’\n\0]+)’")
_GLOSS = re.compile(r"（([^（）\n\0]{1,40})）")


@functools.cache
def _opencc():
    import opencc

    return opencc.OpenCC("s2twp"), opencc.OpenCC("s2t")


def read_terms(path: Path = TERMS) -> list[tuple[re.Pattern, str]]:
    """The project dictionary: (pattern, replacement) pairs, longest Simplified phrase first.

    A line is ``simplified<TAB>traditional``; a Simplified side starting with ``re:`` is a regular
    expression (its replacement may use \\1). ``#`` starts a comment.
    """
    literal, regex = {}, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"{path.name}:{number}: expected 'simplified<TAB>traditional', got {line!r}")
        if parts[0].startswith("re:"):
            regex.append((re.compile(parts[0][3:]), parts[1]))
        else:
            literal[parts[0]] = parts[1]
    words = sorted(literal, key=len, reverse=True)
    return regex + [(re.compile(re.escape(w)), literal[w]) for w in words]


@functools.cache
def _terms() -> tuple:
    return tuple(read_terms())


_QUOTES = "“”\"「」‘’"


def context_terms() -> list[re.Pattern]:
    """Dictionary entries with a quotation mark: quotes that are words, converted like prose."""
    return [pattern for pattern, _ in _terms() if any(q in pattern.pattern for q in _QUOTES)]


def _is_claim(node: ast.AST) -> bool:
    """A call of ``anatomy.claim(...)`` (or ``claim(...)``)."""
    return isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "claim"


def claim_sentences(markdown: str) -> list[str]:
    """The Chinese sentences (``zh=...``) of the checked claims in a page's python blocks, in order."""
    sentences = []
    for body in re.findall(r"^```python[^\n]*\n(.*?)^```", markdown, re.S | re.M):
        try:
            tree = ast.parse(body)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if _is_claim(node):
                sentences += [k.value.value for k in node.keywords
                              if k.arg == "zh" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)]
    return sentences


def code_strings(markdown: str) -> set[str]:
    """The string constants (with Chinese in them) of a page's python blocks: tokens, prompts, data.

    The Chinese sentence of a claim (``anatomy.claim(..., zh=...)``) is not one of them: it is the
    author's prose, so a word the prose quotes is not kept Simplified because a claim uses it.
    """
    strings = set()
    for body in re.findall(r"^```python[^\n]*\n(.*?)^```", markdown, re.S | re.M):
        try:
            tree = ast.parse(body)
        except SyntaxError:
            strings |= {a or b for a, b in re.findall(r'"([^"\n]*)"|\'([^\'\n]*)\'', body)}
            continue
        prose = {id(k.value) for node in ast.walk(tree) if _is_claim(node) for k in node.keywords if k.arg == "zh"}
        strings |= {n.value for n in ast.walk(tree)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in prose}
    return {s for s in strings if _CJK.search(s)}


def protected_spans(markdown: str, strings: set[str] | None = None) -> list[tuple[int, int]]:
    """(start, end) of every part of a Simplified page that the conversion copies unchanged, sorted.

    ``strings``: the code strings whose quotes are kept (by default, those of the page's own code).
    """
    masked = markdown
    spans: list[tuple[int, int]] = []

    def protect(start: int, end: int):
        nonlocal masked
        assert "\0" not in masked[start:end], f"overlapping protected spans at {start}"
        spans.append((start, end))
        masked = masked[:start] + "\0" * (end - start) + masked[end:]

    for pattern in _STRUCTURE:
        for m in list(pattern.finditer(masked)):
            protect(m.start(), m.end())
    for pattern in context_terms():  # hidden from the rules below, converted by the dictionary
        for m in list(pattern.finditer(masked)):
            masked = masked[: m.start()] + "\0" * (m.end() - m.start()) + masked[m.end() :]
    strings = code_strings(markdown) if strings is None else strings
    for m in list(_QUOTED.finditer(masked)):
        group = next(i for i in range(1, 5) if m.group(i) is not None)
        text = m.group(group).strip()
        if _CJK.search(text) and any(text in s for s in strings):
            protect(m.start(group), m.end(group))
    s2twp, s2t = _opencc()
    for m in list(_GLOSS.finditer(masked)):
        gloss = m.group(1)
        forms = {s2twp.convert(gloss), s2t.convert(gloss)} - {gloss, ""}
        if _CJK.search(gloss) and any(masked[: m.start()].endswith(f) for f in forms):
            protect(m.start(1), m.end(1))
    return sorted(spans)


def convert_text(text: str) -> str:
    """Simplified prose (no Markdown structure) to Traditional with Taiwan phrases and our terms."""
    s2twp, _ = _opencc()
    pieces = [(text, False)]  # (text, already final)
    for pattern, replacement in _terms():
        out = []
        for piece, final in pieces:
            if final:
                out.append((piece, final))
                continue
            at = 0
            for m in pattern.finditer(piece):
                out += [(piece[at : m.start()], False), (m.expand(replacement), True)]
                at = m.end()
            out.append((piece[at:], False))
        pieces = [(p, f) for p, f in out if p]
    return "".join(p if final else s2twp.convert(p) for p, final in pieces)


def convert(markdown: str, strings: set[str] | None = None) -> str:
    """A Simplified page as a Traditional one: prose converted, protected spans copied unchanged."""
    out, at = [], 0
    for start, end in protected_spans(markdown, strings):
        out += [convert_text(markdown[at:start]), markdown[start:end]]
        at = end
    out.append(convert_text(markdown[at:]))
    return "".join(out)


_CLAIM_ZH = re.compile(r'()<span lang="zh">((?:(?!</?span[ >]).)*)</span>', re.S)  # only claims write lang="zh" spans


def convert_claims(html_text: str, markdown: str) -> str:
    """The Chinese text of each checked claim (anatomy.claim) on a page, in Traditional: its sentence
    and the words of its fold.

    A claim's sentence is the author's prose, written in the chapter's code as ``zh=...``; it
    reaches the page through the shared execution, so in Simplified. Quotes of the page's code
    strings stay as they are, as in the rest of the page.
    """
    import html

    strings = code_strings(markdown)

    def one(m: re.Match) -> str:  # text between tags converted, tags (a link put in the sentence) kept
        pieces = re.split(r"(<[^<>]*>)", m.group(2))
        sentence = "".join(p if p.startswith("<") else html.escape(convert(html.unescape(p), strings), quote=True)
                           for p in pieces)
        return f'{m.group(1)}<span lang="{TARGET}">{sentence}</span>'

    return _CLAIM_ZH.sub(one, html_text)


def generate(docs: Path = ROOT / "docs") -> list[Path]:
    """Write docs/zh-TW from docs/zh (only files whose content changed); returns the files written."""
    source, target = docs / SOURCE, docs / TARGET
    written, wanted = [], set()
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(source)
        wanted.add(rel)
        dest = target / rel
        data = convert(path.read_text(encoding="utf-8")).encode() if path.suffix == ".md" else path.read_bytes()
        if not dest.exists() or dest.read_bytes() != data:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            written.append(dest)
    for path in sorted(target.rglob("*"), reverse=True):  # pages deleted from docs/zh
        if path.is_file() and path.relative_to(target) not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return written


def language_config(zh: dict) -> dict:
    """The zh-TW entry's site_name and nav_translations, converted from the Simplified entry's."""
    return {
        "site_name": convert_text(zh["site_name"]) if zh.get("site_name") else None,
        "nav_translations": {k: convert_text(v) for k, v in (zh.get("nav_translations") or {}).items()},
    }


def main(argv: list[str] | None = None) -> int:
    """``python scripts/traditional.py``: write docs/zh-TW from docs/zh as the site build does."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python scripts/traditional.py",
        description="Write the Traditional Chinese (Taiwan) edition, docs/zh-TW, from the Simplified "
                    "pages in docs/zh, as the site build does (OpenCC s2twp after the project's "
                    "dictionary, scripts/traditional_terms.tsv; code, math and quoted tokens unchanged).")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs",
                        help="the docs folder that holds zh/ (default: %(default)s)")
    args = parser.parse_args(argv)
    source = args.docs / SOURCE
    if not source.is_dir():
        parser.error(f"{source} is not a folder: --docs must name the folder that holds {SOURCE}/.")
    before = {p for p in (args.docs / TARGET).rglob("*") if p.is_file()}
    written = generate(args.docs)
    after = {p for p in (args.docs / TARGET).rglob("*") if p.is_file()}
    for path in written:
        print(f"wrote {path.relative_to(args.docs)}")
    for path in sorted(before - after):
        print(f"removed {path.relative_to(args.docs)}")
    print(f"{len(after)} file(s) in {args.docs / TARGET}: {len(written)} written, "
          f"{len(before - after)} removed, {len(after) - len(written)} already up to date.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
