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
    assert str(t).splitlines() == ["c", "a    b", "---  -----", "1    0.123", "<x>  y"]  # numbers as anatomy.show.readable writes them


def test_a_folded_table_is_closed_details_with_an_escaped_summary():
    t = anatomy.Table(("<a>", "b"), (("<script>x</script>", 1),), caption="<cap>")
    assert "<details" not in t._repr_html_()
    folded = t.fold("All <rows> & more")
    html = folded._repr_html_()
    assert html.startswith('<details class="anatomy-fold"><summary>') and html.endswith("</details>")
    assert " open" not in html.split(">")[0]  # closed until clicked
    assert "All &lt;rows&gt; &amp; more (1 row)" in html
    assert "<script>" not in html and "<cap>" not in html and "&lt;cap&gt;" in html
    assert folded.rows == t.rows and str(folded) == str(t)  # the text form is unchanged
    assert "&lt;cap&gt; (1 row)" in anatomy.Table(("a",), ((1,),), caption="<cap>", folded=True)._repr_html_()
