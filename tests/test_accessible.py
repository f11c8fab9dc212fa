"""scripts/accessible.py: the boxes that scroll sideways take the keyboard focus and have a name."""

from __future__ import annotations

import pytest
from sitetools import script

accessible = script("accessible")

CODE = '<div class="highlight-ipynb hl-python"><pre><span class="n">x</span></pre></div>'
RESULT = '<div class="anatomy-table"><table><caption>Top <b>tokens</b> &amp; logits</caption><tr><td>1</td></tr></table></div>'
UNNAMED = '<div class="anatomy-table"><table><tr><td>1</td></tr></table></div>'
PROSE = '<p>text</p><table>\n<thead><tr><th>a</th></tr></thead></table>'


def test_a_code_cell_is_focusable_and_named_in_the_page_language():
    assert accessible.make_accessible(CODE, "zh") == \
        '<div class="highlight-ipynb hl-python" tabindex="0" role="group" aria-label="代码" data-anatomy-scroll><pre><span class="n">x</span></pre></div>'
    assert 'aria-label="程式碼"' in accessible.make_accessible(CODE, "zh-TW")


def test_a_result_table_is_named_by_its_caption_and_escaped():
    out = accessible.make_accessible(RESULT, "en")
    assert out.startswith('<div class="anatomy-table" tabindex="0" role="group" aria-label="Top tokens &amp; logits" data-anatomy-scroll><table><caption>')
    assert out.count("<table>") == 1 and "anatomy-scroll\"" not in out  # not wrapped a second time
    assert 'aria-label="Table"' in accessible.make_accessible(UNNAMED, "en")


def test_a_prose_table_is_wrapped_in_a_focusable_box():
    out = accessible.make_accessible(PROSE, "en")
    assert out == '<p>text</p><div class="anatomy-scroll" tabindex="0" role="group" aria-label="Table" data-anatomy-scroll>' + PROSE[11:] + "</div>"


def test_a_page_without_scrolling_boxes_is_unchanged():
    page = '<html lang="en"><body><p>Just <code>text</code>.</p></body></html>'
    assert accessible.make_accessible(page, "en") == page


def test_an_unknown_language_is_a_clear_error():
    with pytest.raises(ValueError, match="no names for the language 'fr'"):
        accessible.make_accessible(CODE, "fr")


def test_the_search_dialog_is_named():
    page = '<div class="md-search" data-md-component="search" role="dialog"><label></label></div>'
    assert accessible.make_accessible(page, "zh-TW") == \
        '<div class="md-search" data-md-component="search" role="dialog" aria-label="搜尋"><label></label></div>'


def test_a_markdown_code_block_is_focusable():
    block = '<div class="highlight"><pre><span></span>make test\n</pre></div>'
    assert accessible.make_accessible(block, "en") == \
        '<div class="highlight"><pre tabindex="0" role="group" aria-label="Code" data-anatomy-scroll><span></span>make test\n</pre></div>'
