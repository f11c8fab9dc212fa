"""Tables escape whatever they show: vocabularies contain `<script>`."""

import anatomy


def test_table_escapes_tokens(gemma):
    nasty = "<script>alert(1)</script> </td> &amp; \u200f"
    html = anatomy.token_table(anatomy.tokenize(gemma, nasty))._repr_html_()
    assert "<script>" not in html and "</td> &amp;" not in html
    assert "&lt;script&gt;" in html or "&lt;" in html
    assert html.count("<tr>") == len(anatomy.tokenize(gemma, nasty)) + 1


def test_table_text_form():
    t = anatomy.Table(("a", "b"), ((1, 0.123456), ("<x>", "y")), caption="c")
    assert str(t).splitlines() == ["c", "a    b", "---  ------", "1    0.1235", "<x>  y"]
