"""Tokenization: text to token IDs and back, shown readably (Chapter 1)."""

from __future__ import annotations

import codecs
import numbers
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from .errors import AnatomyError


def _hex_bytes(err: UnicodeDecodeError):
    """Show bytes that are not a whole UTF-8 character as <E4><BB>."""
    return "".join(f"<{b:02X}>" for b in err.object[err.start : err.end]), err.end


codecs.register_error("anatomy-hex", _hex_bytes)

__all__ = ["Token", "answer_id", "continuation_id", "tokenize", "tokens_of", "token_bytes", "readable", "single_token_id", "word_positions"]

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@dataclass(frozen=True)
class Token:
    """One token of a tokenized text."""

    id: int  # its row in the embedding table
    piece: str  # the string stored in the vocabulary ("Ġworld", "▁world", "<0xE9>")
    text: str  # how it reads: decoded bytes, "␣" for a space, "<E9>" for a byte that is not a whole character
    special: bool  # a control token such as <bos>, not text


@lru_cache(maxsize=8)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: each byte 0-255 is written as one printable character."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def _is_byte_level(tokenizer) -> bool:
    from tokenizers.decoders import ByteLevel

    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and isinstance(backend.decoder, ByteLevel)


def token_bytes(tokenizer, token_id: int) -> bytes:
    """The raw UTF-8 bytes a token stands for (a Chinese character can need 3 tokens of 1 byte)."""
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    if m := _BYTE_PIECE.fullmatch(piece):
        return bytes([int(m.group(1), 16)])
    if _is_byte_level(tokenizer):
        table = _byte_decoder()
        if all(c in table for c in piece):
            return bytes(table[c] for c in piece)
    return piece.replace("▁", " ").encode("utf-8")


def readable(tokenizer, token_id: int) -> str:
    """A token as a reader should see it: text with "␣" for a space, "<E4><BB>" for partial bytes."""
    token_id = int(token_id)
    if token_id in tokenizer.all_special_ids:
        return tokenizer.convert_ids_to_tokens(token_id)
    text = token_bytes(tokenizer, token_id).decode("utf-8", errors="anatomy-hex")
    text = text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
    # Other invisible characters (control codes, right-to-left marks...) are shown by their code.
    return "".join(f"<U+{ord(ch):04X}>" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text)


def tokenize(model, text: str, *, add_special_tokens: bool = True) -> list[Token]:
    """Split ``text`` into tokens with the model's own tokenizer (Chapter 1).

    With ``add_special_tokens=True`` you get exactly what the model receives, including a BOS
    token where the tokenizer adds one (Gemma does, SmolLM2 does not).
    """
    if not isinstance(text, str) or text == "":
        raise AnatomyError("The text is empty: give at least one character to tokenize.")
    return list(tokens_of(model, model.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]))


def tokens_of(model, ids) -> tuple[Token, ...]:
    """The ``Token`` of each ID in ``ids`` (a list or a 1-D tensor): what a result keeps as its ``tokens``."""
    tok = model.tokenizer
    if tok is None:  # a test model without a tokenizer: the IDs stand for themselves
        return tuple(Token(int(i), str(int(i)), str(int(i)), False) for i in ids)
    special = set(tok.all_special_ids)
    return tuple(Token(int(i), tok.convert_ids_to_tokens(int(i)), readable(tok, int(i)), int(i) in special) for i in ids)


def _word_spans(text: str, word: str, whole_word: bool) -> list[tuple[int, int]]:
    """Character spans where ``word`` occurs in ``text``: every start (overlaps allowed), or as a whole word
    (letters/digits may not touch it; non-overlapping)."""
    if not whole_word:
        return [(i, i + len(word)) for i in range(len(text)) if text.startswith(word, i)]
    left = r"(?<![A-Za-z0-9])" if word[0].isascii() and word[0].isalnum() else ""
    right = r"(?![A-Za-z0-9])" if word[-1].isascii() and word[-1].isalnum() else ""
    return [m.span() for m in re.finditer(left + re.escape(word) + right, text)]


def word_positions(model, text: str, word: str, occurrence: int = 0, *, whole_word: bool = False) -> tuple[int, ...]:
    """The positions of the tokens that cover ``word`` in ``text``, as the model reads it.

    Positions count the tokens of ``model.tokenizer(text)`` (special tokens such as <bos> included),
    like every position in the book. A word that is one token gives one position; a word the
    tokenizer cuts into pieces gives all of them, in order (a chapter that needs one token can then
    take the last piece, and say so). ``occurrence`` picks which appearance of ``word`` (0 = first);
    ``whole_word=True`` skips appearances inside a longer word ("apple" in "pineapple").
    """
    if not isinstance(word, str) or word == "":
        raise AnatomyError("The word is empty: give the text of a word that appears in the text.")
    spans = _word_spans(text, word, whole_word)
    if whole_word and not spans:
        raise AnatomyError(f"{word!r} does not occur as a word in {text!r}; pick a word of the prompt.")
    if isinstance(occurrence, bool) or not isinstance(occurrence, int) or not 0 <= occurrence < len(spans):
        raise AnatomyError(f"{word!r} appears {len(spans)} time(s) in {text!r}; occurrence={occurrence!r} is out of range: "
                           f"pick an occurrence from 0 to {len(spans) - 1} or another word.")
    start, end = spans[occurrence]
    offsets = model.tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    return tuple(p for p, (a, b) in enumerate(offsets) if b > a and a < end and b > start)


def single_token_id(model, word: str) -> int:
    """The ID of ``word`` if the tokenizer keeps it as one token; a clear error if it does not."""
    if not isinstance(word, str) or word == "":
        raise AnatomyError("The word is empty: give a word that is a single token, such as 'apple'.")
    pieces = tokenize(model, word, add_special_tokens=False)
    if len(pieces) != 1:
        shown = ", ".join(t.text for t in pieces)
        raise AnatomyError(
            f"{word!r} is {len(pieces)} tokens for {model.name} ({shown}); pass a word that is one token, "
            f"or use its first piece {pieces[0].text!r}."
        )
    return pieces[0].id


def answer_id(model, answer) -> int:
    """The token an answer is scored by: an ID as given, or the first token of a word (Chapters 7 and 17).

    The rule of Wendler et al. (2024) for the logit lens, and of activation patching.
    """
    if isinstance(answer, numbers.Integral) and not isinstance(answer, bool):
        if not 0 <= int(answer) < model.vocab_size:
            raise AnatomyError(f"Token ID {answer} is out of range: {model.name} has token IDs 0 to {model.vocab_size - 1}.")
        return int(answer)
    if not isinstance(answer, str) or answer.strip() == "":
        raise AnatomyError(f"Answer {answer!r} is not a word or a token ID: pass a word such as ' Paris' (with its space) or an integer ID.")
    return tokenize(model, answer, add_special_tokens=False)[0].id


def continuation_id(model, prompt: str, answer: str) -> int:
    """The first token of ``" " + answer`` as the model reads it right after ``prompt``."""
    tok = model.tokenizer
    head, full = tok(prompt)["input_ids"], tok(prompt + " " + answer)["input_ids"]
    if full[:len(head)] != head or len(full) == len(head):
        raise AnatomyError(f"{answer!r} does not start a new token after {prompt!r} for {model.name}; pick another pair.")
    return full[len(head)]


@dataclass(frozen=True)
class VocabularyCensus:
    """How a vocabulary's entries divide up (Chapter 1: why 262,144 rows rather than 49,152)."""

    model_name: str
    size: int  # rows of the embedding table
    counts: dict[str, int]  # category -> number of entries; categories add up to `size`


_CATEGORIES = ("special or control", "single byte", "ASCII (English, code, digits)", "contains Chinese/Japanese characters", "other scripts and symbols", "unused rows")


def _category(piece: str, raw: bytes, special: bool) -> str:
    if special:
        return "special or control"
    if _BYTE_PIECE.fullmatch(piece) or (len(raw) == 1 and raw[0] >= 0x80):
        return "single byte"
    if raw.isascii():
        return "ASCII (English, code, digits)"
    text = raw.decode("utf-8", errors="ignore")
    if any("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\u3040" <= ch <= "\u30ff" for ch in text):
        return "contains Chinese/Japanese characters"
    return "other scripts and symbols"


def vocabulary_census(model) -> VocabularyCensus:
    """Count the vocabulary's entries by kind: bytes, ASCII, Chinese, other scripts, special (Chapter 1)."""
    tok = model.tokenizer
    size = model.vocab_size
    n_tok = len(tok)
    special = set(tok.all_special_ids) | set(getattr(tok, "added_tokens_decoder", {}))
    counts = dict.fromkeys(_CATEGORIES, 0)
    pieces = tok.convert_ids_to_tokens(list(range(min(size, n_tok))))
    for i, piece in enumerate(pieces):
        if piece is None:
            counts["unused rows"] += 1
            continue
        counts[_category(piece, token_bytes(tok, i), i in special)] += 1
    counts["unused rows"] += max(size - n_tok, 0)
    return VocabularyCensus(model.name, size, counts)
