"""Figures: built from real results, labelled, with a CJK font when the machine has one."""

import os

import matplotlib
import pytest

import anatomy


def test_cjk_font_present_in_ci():
    if os.environ.get("CI") != "true" and anatomy.plot.cjk_font() is None:
        pytest.skip("no CJK font on this machine (CI installs one)")
    assert anatomy.plot.cjk_font() is not None


def test_plotting_leaves_global_style_alone(smollm2):
    before = dict(matplotlib.rcParams)
    anatomy.plot.tokens({"s": anatomy.tokenize(smollm2, "今天")})
    assert dict(matplotlib.rcParams) == before


def test_next_tokens_figure(smollm2, gemma):
    d = [anatomy.next_token(smollm2, "今天天氣真"), anatomy.next_token(gemma, "今天天氣真")]
    fig = anatomy.plot.next_tokens(d, k=7)
    assert len(fig.axes) == 2
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert labels == [t for t, _ in d[1].top(7)]


def test_tokens_figure_has_one_row_per_model(smollm2, gemma):
    fig = anatomy.plot.tokens({"a": anatomy.tokenize(smollm2, "hi"), "b": anatomy.tokenize(gemma, "hi")})
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["a: 1 tokens", "b: 2 tokens"]


def test_a_figure_describes_itself_in_both_languages(smollm2, gemma):
    d = [anatomy.next_token(smollm2, "今天天氣真"), anatomy.next_token(gemma, "今天天氣真")]
    fig = anatomy.plot.next_tokens(d, k=7)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert smollm2.name in fig.description["en"] and gemma.name in fig.description["zh"]
    assert "7 most likely" in fig.description["en"] and "7 个" in fig.description["zh"]
    data, metadata = fig._repr_mimebundle_()  # what a notebook stores next to the PNG
    assert data == {} and metadata["anatomy"]["description"] == fig.description
