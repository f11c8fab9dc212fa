"""Write the book's own prose as a text corpus: src/anatomy/data/corpus_<lang>.txt.

Chapters that look for what a neuron or a sparse-autoencoder feature responds to need running text
in both languages that installs offline and that we may redistribute. The book's own prose is that
text (our writing, same licence as the project). One paragraph per line; code blocks, math, HTML,
tables and headings are left out; Markdown links and emphasis are reduced to their words.

    python scripts/make_corpus.py        # run after chapters change, then commit the two files
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "anatomy" / "data"
LANGS = ("en", "zh")


def paragraphs(text: str) -> list[str]:
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)           # jupytext header
    text = re.sub(r"^```.*?^```[^\n]*$", "\n", text, flags=re.S | re.M)  # code blocks
    text = re.sub(r"\$\$.*?\$\$", "\n", text, flags=re.S)                # display math
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        if not lines or lines[0].startswith(("#", "|", "<", "!!!", "???", ">", "---")):
            continue
        para = " ".join(ln for ln in lines if ln) if not re.search(r"[\u4e00-\u9fff]", block) else "".join(lines)
        para = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", para)                 # images
        para = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", para)              # links -> their words
        para = re.sub(r"\$([^$]+)\$", lambda m: re.sub(r"\\[a-zA-Z]+|[{}\\]", "", m.group(1)), para)  # inline math -> its symbols
        para = re.sub(r"`([^`]*)`", r"\1", para)                            # inline code -> its text
        para = para.replace("*", "")                                      # emphasis marks
        para = re.sub(r"\{[#.][^}]*\}", "", para)                          # attr_list
        para = re.sub(r"\s+", " ", para).strip()
        if len(para) >= 40 and not para.startswith(("- ", "1. ", "* ")):
            out.append(para)
        elif para.startswith(("- ", "* ")) and len(para) >= 40:
            out.extend(p.strip() for p in re.split(r"(?:^| )[-*] ", para) if len(p.strip()) >= 40)
    return out


def main() -> None:
    for lang in LANGS:
        pages = sorted(p for p in (ROOT / "docs" / lang).glob("*.md") if p.stem != "glossary")
        paras = [p for page in pages for p in paragraphs(page.read_text(encoding="utf-8"))]
        (OUT / f"corpus_{lang}.txt").write_text("\n".join(paras) + "\n", encoding="utf-8")
        print(lang, len(paras), "paragraphs,", sum(len(p) for p in paras), "characters")


if __name__ == "__main__":
    main()
