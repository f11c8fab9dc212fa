"""anatomy.claim: a sentence that reads a result fails the build on the default models when false,
and shows a note instead on any other model."""

import pytest

import anatomy


def test_a_true_claim_holds_and_names_its_models(smollm2, gemma):
    c = anatomy.claim("Both models have layers.", smollm2.n_layers > 0 and gemma.n_layers > 0,
                      zh="两个模型都有层。", about=(smollm2, gemma))
    assert c.holds and c.about_defaults
    assert c.models == ("smollm2-135m", "gemma-3-270m")
    assert "✓" in str(c)


def test_a_false_claim_about_a_default_model_fails_and_says_what_was_measured(smollm2):
    with pytest.raises(anatomy.ClaimFailed, match=r"more than 100 layers.*smollm2-135m.*measured: 30"):
        anatomy.claim("SmolLM2 has more than 100 layers.", smollm2.n_layers > 100,
                      zh="SmolLM2 有一百多层。", about=smollm2, measured=smollm2.n_layers)


def test_a_claim_about_both_default_models_fails_when_false(smollm2, gemma):
    with pytest.raises(AssertionError):  # ClaimFailed is an AssertionError, so pytest reports it as a failed check
        anatomy.claim("x", False, zh="x", about=(smollm2, gemma))


def test_a_reader_who_swapped_one_model_gets_a_note_not_a_failure(smollm2):
    c = anatomy.claim("x", False, zh="x", about=(smollm2, "./my-model"))
    assert not c.holds and not c.about_defaults


def test_on_another_model_a_false_claim_is_shown_not_raised():
    c = anatomy.claim("Layer 3 reads 'Paris'.", False, zh="第 3 层读出 'Paris'。", about="./random-llama", measured=[0.5, 0.25])
    assert not c.holds and not c.about_defaults
    assert "does not hold on ./random-llama" in str(c) and "0.5, 0.25" in str(c)
    html = c._repr_html_()
    assert "anatomy-claim-fails" in html and 'lang="zh"' in html and "0.5, 0.25" in html


def test_claim_html_escapes_its_text():
    c = anatomy.claim("<script>alert(1)</script>", True, zh="<b>", about="./m")
    assert "<script>" not in c._repr_html_() and "&lt;script&gt;" in c._repr_html_()


def test_bad_claims_say_what_to_do():
    torch = pytest.importorskip("torch")
    with pytest.raises(anatomy.AnatomyError, match="in Chinese"):
        anatomy.claim("x", True, zh="", about="./m")
    with pytest.raises(anatomy.AnatomyError, match=r"\.all\(\) or \.any\(\)"):
        anatomy.claim("x", torch.tensor([True, False]), zh="x", about="./m")
    with pytest.raises(anatomy.AnatomyError, match="about=smol"):
        anatomy.claim("x", True, zh="x", about=3)


# --- result sentences with their values formatted in (issue 22) ------------------------------------

def test_a_claim_formats_its_values_into_both_sentences():
    c = anatomy.claim("The table holds {share:.0%} of {n} parameters; loss {loss}.", True,
                      zh="嵌入表占 {n} 个参数的 {share:.0%}；损失 {loss}。", about="./m",
                      share=0.5123, n=268098176, loss=4.512345)
    assert c.text == "The table holds 51% of 268,098,176 parameters; loss 4.51."
    assert c.zh == "嵌入表占 268,098,176 个参数的 51%；损失 4.51。"
    assert dict(c.values) == {"share": "0.512", "n": "268,098,176", "loss": "4.51"}


def test_a_claim_takes_one_element_tensors_as_numbers():
    torch = pytest.importorskip("torch")
    c = anatomy.claim("{x:.2f} and {y}", True, zh="{x:.2f} 和 {y}", about="./m", x=torch.tensor(0.123456), y=torch.tensor(7))
    assert c.text == "0.12 and 7"


def test_a_sentence_that_reads_a_value_it_was_not_given_says_which():
    with pytest.raises(anatomy.AnatomyError, match=r"\{loss\}.*loss=\.\.\."):
        anatomy.claim("loss {loss}", True, zh="损失 {loss}", about="./m")
    with pytest.raises(anatomy.AnatomyError, match="cannot be formatted"):
        anatomy.claim("loss {loss:.2q}", True, zh="损失", about="./m", loss=1.0)


def test_a_claim_says_what_kind_of_fact_it_is():
    assert anatomy.claim("x", True, zh="x", about="./m").kind == "behaviour"
    c = anatomy.claim("x", True, zh="x", about="./m", kind="architecture")
    assert c.kind == "architecture" and 'data-kind="architecture"' in c._repr_html_()
    with pytest.raises(anatomy.AnatomyError, match="'behaviour' or 'architecture'"):
        anatomy.claim("x", True, zh="x", about="./m", kind="fact")


def test_a_holding_claim_reads_as_a_sentence_that_unfolds_its_check():
    html = anatomy.claim("Loss rose by {d:.2f} nats.", True, zh="损失升高 {d:.2f} 奈特。", about="./m", d=0.1234)._repr_html_()
    assert html.startswith('<details class="anatomy-claim anatomy-claim-holds"')
    summary = html[html.index("<summary>"): html.index("</summary>")]
    assert '<span lang="en">Loss rose by 0.12 nats.</span>' in summary and '<span lang="zh">损失升高 0.12 奈特。</span>' in summary
    check = html[html.index("</summary>"):]
    assert "anatomy-claim-code" in check and "<th>d</th><td>0.123</td>" in check


def test_a_failing_claim_shows_its_note_and_values_without_opening_anything():
    html = anatomy.claim("Loss rose by {d:.2f} nats.", False, zh="损失升高 {d:.2f} 奈特。", about="./m", d=3.0)._repr_html_()
    assert html.startswith('<div class="anatomy-claim anatomy-claim-fails"') and "<details" not in html
    assert "does not hold" in html and "<td>3.00</td>" in html


def test_a_default_model_loaded_another_way_gets_notes_not_failures(smollm2):
    """A default model in bfloat16 (or on a GPU) is not the model the sentences were checked on."""
    import copy

    torch = pytest.importorskip("torch")
    assert anatomy.claims._loaded_as_the_book_does(smollm2)
    half = copy.copy(smollm2)
    half.hf = copy.deepcopy(smollm2.hf).to(torch.bfloat16)
    c = anatomy.claim("SmolLM2 has more than 100 layers.", half.n_layers > 100, zh="x", about=half)
    assert not c.holds and not c.about_defaults


def test_glue_names_values_for_the_prose():
    g = anatomy.glue(n=23043, share="51%", loss=4.51234)
    assert (g["n"], g["share"], g["loss"]) == ("23,043", "51%", "4.51")
    data = g._repr_mimebundle_()
    assert data[anatomy.claims.GLUE_MIME] == {"n": "23,043", "share": "51%", "loss": "4.51"}
    with pytest.raises(anatomy.AnatomyError, match="glue"):
        anatomy.glue()


def test_values_read_as_a_reader_reads_them():
    from anatomy.show import readable

    assert [readable(v) for v in (23043, 0.6561652421951294, 4.4312, 99.96, 1234.56, 0.0, 1e-5, True)] == \
        ["23,043", "0.656", "4.43", "100", "1,235", "0", "1.00e-05", "yes"]
    assert readable(("␣Paris", 0.6561652421951294)) == "␣Paris 0.656" and readable([0.5, 0.25]) == "0.5, 0.25"
