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
