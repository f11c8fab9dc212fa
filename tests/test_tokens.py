"""Tokenization facts of Chapter 1, on the real tokenizers."""

import pytest

import anatomy
from anatomy import AnatomyError


def texts(tokens):
    return [t.text for t in tokens]


def test_gemma_cuts_the_lecture_sentence_into_words(gemma):
    assert texts(anatomy.tokenize(gemma, "今天天氣真好！")) == ["<bos>", "今天", "天氣", "真", "好", "！"]


def test_smollm2_adds_no_bos_and_splits_characters_into_bytes(smollm2):
    tokens = anatomy.tokenize(smollm2, "今")
    assert len(tokens) == 2 and not any(t.special for t in tokens)
    assert b"".join(anatomy.token_bytes(smollm2.tokenizer, t.id) for t in tokens) == "今".encode("utf-8")
    assert all(t.text.startswith("<") for t in tokens)  # neither piece is a whole character


def test_gemma_falls_back_to_one_token_per_byte(gemma):
    tokens = anatomy.tokenize(gemma, "龘", add_special_tokens=False)
    assert [t.piece for t in tokens] == ["<0xE9>", "<0xBE>", "<0x98>"]
    assert [t.text for t in tokens] == ["<E9>", "<BE>", "<98>"]


def test_bos(smollm2, gemma):
    assert anatomy.tokenize(gemma, "hi")[0].piece == "<bos>" and anatomy.tokenize(gemma, "hi")[0].special
    assert anatomy.tokenize(smollm2, "hi")[0].piece == "hi"


def test_round_trip(model):
    text = "今天天氣真好！ Tokenization is unavoidable."
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert model.tokenizer.decode(ids) == text


def test_readable_shows_leading_space(model):
    tokens = anatomy.tokenize(model, "hello world", add_special_tokens=False)
    assert tokens[-1].text == "␣world"


def test_vocabulary_sizes_and_census(smollm2, gemma):
    small, big = anatomy.vocabulary_census(smollm2), anatomy.vocabulary_census(gemma)
    assert (small.size, big.size) == (49152, 262144)
    assert sum(small.counts.values()) == small.size and sum(big.counts.values()) == big.size
    cjk = "contains Chinese/Japanese characters"
    assert big.counts[cjk] > 100 * small.counts[cjk]
    assert big.counts["single byte"] == 256  # <0x00> ... <0xFF>
    assert big.counts["special or control"] > 6000  # <unused0> ... and the like


def test_single_token_id(model):
    assert isinstance(anatomy.single_token_id(model, "the"), int)
    with pytest.raises(AnatomyError, match="is 3 tokens") as err:
        anatomy.single_token_id(anatomy.load("gemma-3-270m"), "龘")
    assert "\n" not in str(err.value)


def test_empty_text_is_refused(model):
    with pytest.raises(AnatomyError, match="empty"):
        anatomy.tokenize(model, "")


def test_word_positions_cover_the_word(smollm2, gemma):
    for m in (smollm2, gemma):
        text = "兩顆青蘋果 and an apple"
        toks = anatomy.tokenize(m, text)
        for word in ("蘋果", "青", " apple"):
            pos = anatomy.word_positions(m, text, word)
            assert pos == tuple(range(pos[0], pos[-1] + 1))  # contiguous
            joined = b"".join(anatomy.token_bytes(m.tokenizer, toks[p].id) for p in pos).decode("utf-8", errors="ignore")
            assert word.strip() in joined
    # Gemma keeps 蘋果 as one token; SmolLM2 cuts it into pieces
    assert len(anatomy.word_positions(gemma, "兩顆青蘋果", "蘋果")) == 1
    assert len(anatomy.word_positions(smollm2, "兩顆青蘋果", "蘋果")) > 1
    with pytest.raises(anatomy.AnatomyError, match="appears 0 time"):
        anatomy.word_positions(gemma, "an apple", "pear")
