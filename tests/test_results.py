"""scripts/results.py: result sentences reach the page as prose, glued values reach the Markdown,
and a placeholder that no block fills fails the build (issue 22)."""

import copy

import nbformat
import pytest
from sitetools import _script

import anatomy

results = _script("results")


def _output(obj) -> dict:
    """The display_data output Jupyter makes of an object (its mime bundle), as nbformat stores it."""
    return nbformat.v4.new_output("display_data", data=obj._repr_mimebundle_())


def _notebook(markdown: str, claim_block: str, outputs: list, other_block: str = "x = 1") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), nbformat.v4.new_code_cell(other_block),
                nbformat.v4.new_code_cell(claim_block)]
    nb.cells[2].outputs = outputs
    return nb


CLAIMS = '''anatomy.claim("Loss {d:.2f}.", d < 1, zh="损失 {d:.2f}。", about=smol, d=d)
anatomy.glue(n=n)'''


def test_glued_values_replace_their_placeholders_and_their_output_is_dropped():
    outs = [_output(anatomy.claim("Loss {d:.2f}.", True, zh="损失 {d:.2f}。", about="./m", d=0.5)),
            _output(anatomy.glue(n=23043))]
    nb = results.render(_notebook("We used {glue}`n` prompts; {glue}`n` again.", CLAIMS, outs))
    assert nb.cells[0].source == "We used 23,043 prompts; 23,043 again."
    assert [anatomy.claims.GLUE_MIME in o["data"] for o in nb.cells[2].outputs] == [False]


def test_a_block_of_claims_and_glue_is_hidden_and_each_claim_unfolds_its_own_code():
    outs = [_output(anatomy.claim("Loss {d:.2f}.", True, zh="损失 {d:.2f}。", about="./m", d=0.5)),
            _output(anatomy.glue(n=3))]
    nb = results.render(_notebook("{glue}`n`", CLAIMS, outs))
    assert results.HIDDEN in nb.cells[2].metadata["tags"] and results.HIDDEN not in nb.cells[1].metadata.get("tags", [])
    shown = nb.cells[2].outputs[0]["data"]["text/html"]
    assert '<code>anatomy.claim("Loss {d:.2f}.", d &lt; 1, zh="损失 {d:.2f}。", about=smol, d=d)</code>' in shown


def test_a_block_that_also_computes_stays_visible():
    block = "d = 0.5\nanatomy.claim('x', d < 1, zh='x', about=smol)"
    nb = results.render(_notebook("text", block, [_output(anatomy.claim("x", True, zh="x", about="./m"))]))
    assert results.HIDDEN not in nb.cells[2].metadata.get("tags", [])


def test_a_placeholder_that_no_block_fills_fails_and_says_what_to_add():
    nb = _notebook("The best layer is {glue}`best`.", "anatomy.glue(n=3)", [_output(anatomy.glue(n=3))])
    with pytest.raises(results.ResultsError, match=r"glue\}`best`.*glued: n.*anatomy.glue\(best=\.\.\.\)"):
        results.render(nb, "docs/en/x.md")


def test_two_different_values_under_one_name_fail():
    nb = _notebook("{glue}`n`", "anatomy.glue(n=3)\nanatomy.glue(n=4)",
                   [_output(anatomy.glue(n=3)), _output(anatomy.glue(n=4))])
    with pytest.raises(results.ResultsError, match="different values"):
        results.render(nb)


def test_glued_text_is_escaped_on_the_page_and_plain_in_the_notebook():
    nb = _notebook("token {glue}`t`", "anatomy.glue(t=t)", [_output(anatomy.glue(t="<script>"))])
    values = results.glued(nb)
    assert results.fill_markdown(copy.deepcopy(nb), values).cells[0].source == "token <script>"
    assert results.render(nb).cells[0].source == "token &lt;script&gt;"
