"""scripts/headings.py: every heading of an executed chapter gets a unique, non-empty id, and the contents follow."""

from sitetools import script

headings = script("headings")

PAGE = (
    '<h1 id="9">第 9 章　亲手计算自注意力<a class="anchor-link" href="#9">¶</a></h1><p>x</p>'
    '<h2 id="">一层里面有什么<a class="anchor-link" href="#">¶</a></h2>'
    '<h2 id="query-key-value">Query, key, value<a class="anchor-link" href="#query-key-value">¶</a></h2>'
    '<h3 id="">查询、键、值<a class="anchor-link" href="#">¶</a></h3>'
    '<h2 id="">一层里面有什么<a class="anchor-link" href="#">¶</a></h2>'
    '<h2 id="query-key-value">Query &amp; <code>key</code><a class="anchor-link" href="#query-key-value">¶</a></h2>'
    '<h2>？！<a class="anchor-link" href="#">¶</a></h2>'
)


def test_chinese_headings_get_unicode_slugs_and_every_id_is_unique():
    html, found = headings.unique_ids(PAGE)
    ids = [h["id"] for h in found]
    assert ids == ["9", "一层里面有什么", "query-key-value", "查询键值", "一层里面有什么_1", "query-key", "section"]
    for ident in ids:  # the heading and its ¶ link carry the id
        assert f' id="{ident}">' in html and f'href="#{ident}">¶' in html
    assert 'id=""' not in html and 'href="#"' not in html
    assert found[5]["name"] == "Query &amp; key"  # the text, escaped as the contents print it


def test_english_ids_are_kept():
    html, found = headings.unique_ids('<h2 id="what-is-inside-mlp">What is inside <code>mlp</code><a class="anchor-link" href="#what-is-inside-mlp">¶</a></h2>')
    assert [h["id"] for h in found] == ["what-is-inside-mlp"] and html.count("what-is-inside-mlp") == 2


def test_the_contents_nest_as_the_headings_do():
    _, found = headings.unique_ids(PAGE)
    tokens = headings.toc_tokens(found)
    assert [t["id"] for t in tokens] == ["9"]
    assert [t["id"] for t in tokens[0]["children"]] == ["一层里面有什么", "query-key-value", "一层里面有什么_1", "query-key", "section"]
    assert [t["id"] for t in tokens[0]["children"][1]["children"]] == ["查询键值"]
    assert headings.toc_tokens(found, depth=1)[0]["children"] == []
