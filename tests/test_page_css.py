"""scripts/page_css.py: a page keeps the rules of a large inlined stylesheet that can apply to it, and no other."""

from __future__ import annotations

import re

from sitetools import script

page_css = script("page_css")

CSS = """
:root { --jp-used: red; --jp-chain: var(--jp-used); --jp-unused: url("data:image/svg+xml;base64,AAAA"); --md-kept: 1px; }
.wrap .md-typeset__scrollwrap { margin: 0; }
.wrap .here { color: var(--jp-chain); }
.wrap .absent { color: blue; }
.absent, .here > p { margin: 0; }
.here:not(.absent) { padding: 1px; }
pre { tab-size: 4; }
@media (max-width: 500px) { .absent { color: green; } .here { color: black; } }
@media print { .absent { display: none; } }
@keyframes spin { to { transform: rotate(1turn); } }
""" + "/* padding */" * 2000


def _page(css: str) -> str:
    return f'<html><head><style>{css}</style><style>.tiny {{ color: red }}</style></head><body><div class="wrap"><p class="here">x</p></div></body></html>'


def test_rules_that_cannot_match_are_dropped_and_the_rest_kept():
    out = page_css.prune(_page(CSS))
    big = re.findall(r"<style>(.*?)</style>", out, re.S)[0]
    assert len(big) < 1000 < len(CSS)
    assert ".wrap .here{color:var(--jp-chain)}" in big
    assert ".absent,.here > p{margin:0}" in big  # one selector can match: the rule is kept whole
    assert ".here:not(.absent)" in big and "pre{tab-size:4}" in big and "@keyframes spin" in big
    assert ".wrap .absent" not in big and "@media print" not in big
    assert "@media (max-width: 500px){.here{color:black}}" in big
    assert "--jp-used:red" in big and "--jp-chain:var(--jp-used)" in big and "--jp-unused" not in big  # the lab's variables: those in use
    assert "--md-kept:1px" in big  # material's stylesheet reads its own variables
    assert ".wrap .md-typeset__scrollwrap{margin:0}" in big  # material's script adds that class at run time
    assert "<style>.tiny { color: red }</style>" in out  # small blocks are the page's own: untouched


def test_a_page_without_a_large_style_block_is_unchanged():
    html = _page(".here { color: red }")
    assert page_css.prune(html) == html
