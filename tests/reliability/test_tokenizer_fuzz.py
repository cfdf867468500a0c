"""Fuzzing the tokenizer: any str in, no exception out, and the invariants prediction relies on.

Random unicode (lone surrogates and control characters included), huge inputs and inputs built to
make a regex backtrack. Derandomized, so CI sees the same examples on every run.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seq2labels.data.tokenizer import DEFAULT_PATTERN, RegexTokenizer, tokenize

LOWER = RegexTokenizer(lowercase=True)
CASED = RegexTokenizer(lowercase=False)
WHITESPACE = re.compile(r"\s")

PIECES = st.one_of(
    st.characters(codec=None, exclude_categories=()),           # any code point but surrogates
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),   # lone surrogates (invalid in UTF-8)
    st.characters(max_codepoint=0x1F),                           # C0 controls: NUL, ESC, \x1c-\x1f ...
    st.sampled_from(["'", "\u2019", "\u0301", "\u0307", "İ", "Σ", "ς", "ß", "ﬁ", "\u200b", "\u202e", "\ufeff",
                     "\u2028", "\x85", "\xa0", "\t", "\r\n", "😀", "👩‍👩‍👧"]),
)
TEXTS = st.lists(PIECES, max_size=300).map("".join)
FUZZ = settings(max_examples=200, deadline=None, derandomize=True)


def _no_whitespace(text: str) -> str:
    return WHITESPACE.sub("", text)


@FUZZ
@given(TEXTS)
def test_any_text_gives_tokens_that_cover_every_non_space_character(text):
    for tok, normalised in ((LOWER, unicodedata.normalize("NFC", text).lower()),
                            (CASED, unicodedata.normalize("NFC", text))):
        tokens = tok(text)
        assert all(isinstance(t, str) and t for t in tokens)
        assert all(re.fullmatch(DEFAULT_PATTERN, t) for t in tokens)
        assert not any(WHITESPACE.search(t) for t in tokens)
        assert "".join(tokens) == _no_whitespace(normalised)      # nothing dropped but whitespace


@FUZZ
@given(TEXTS)
def test_lowercasing_is_idempotent(text):
    tokens = LOWER(text)
    assert all(t == t.lower() for t in tokens)
    assert LOWER(text.lower()) == tokens
    assert LOWER(" ".join(tokens)) == tokens


@FUZZ
@given(TEXTS)
def test_normalization_form_and_surrounding_whitespace_do_not_matter(text):
    tokens = LOWER(text)
    assert LOWER(unicodedata.normalize("NFD", text)) == tokens
    assert LOWER(" \t" + text + "\r\n") == tokens


@FUZZ
@given(TEXTS, st.integers(0, 8))
def test_max_tokens_is_the_prefix_of_the_full_tokenization(text, k):
    full = LOWER(text)
    assert LOWER(text, max_tokens=k) == full[:k]
    assert tokenize(LOWER, text, k) == full[:k]
    assert tokenize(str.split, text, k) == text.split()[:k]        # any callable tokenizer, cut after
    assert LOWER(text, max_tokens=None) == full


@pytest.mark.parametrize("text", [
    "a'" * 200_000,                 # inner apostrophes: the word pattern must not backtrack badly
    "'" * 300_000,
    "a" * 1_000_000,                # one 1M-character word
    "\u0301" * 100_000,             # combining marks with nothing to combine with
    "x\u2019" * 200_000 + "!",
    "\x00\x1b" * 200_000,
], ids=["apostrophes", "quotes", "one-word", "combining", "curly", "controls"])
def test_huge_and_pathological_inputs(text):
    full = LOWER(text)
    assert LOWER(text, max_tokens=300) == full[:300]
    assert "".join(full) == _no_whitespace(unicodedata.normalize("NFC", text).lower())


def test_max_tokens_bounds_a_long_text():
    text = "Shares rose after the merger. " * 200_000                   # 6 MB
    tokens = LOWER(text, max_tokens=120)
    assert len(tokens) == 120 and tokens[:6] == ["shares", "rose", "after", "the", "merger", "."]


def test_known_unicode_cases():
    assert LOWER("ΣΑΣ") == ["σας"]                                  # final sigma by context
    assert LOWER("Straße STRASSE") == ["straße", "strasse"]         # lower(), not casefold()
    assert LOWER("cafe\u0301") == LOWER("café") == ["café"]
    # U+0130 lowercases to i + U+0307 (combining dot, not a word character): the word splits.
    assert LOWER("İstanbul") == ["i", "\u0307", "stanbul"]
    assert CASED("İstanbul") == ["İstanbul"]


@pytest.mark.parametrize("bad", [None, b"bytes", 3.5, ["a list"]])
def test_a_non_string_is_a_type_error(bad):
    with pytest.raises(TypeError, match="the tokenizer takes a str"):
        LOWER(bad)
