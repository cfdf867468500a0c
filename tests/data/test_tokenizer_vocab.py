"""Tokenizer rules and vocabulary building/encoding."""

from __future__ import annotations

import json
import random

import pytest

from seq2labels.data.tokenizer import DEFAULT_PATTERN, RegexTokenizer
from seq2labels.data.vocab import PAD_TOKEN, UNK_TOKEN, Vocab

# --------------------------------------------------------------------------- tokenizer


def test_lowercase_flag():
    assert RegexTokenizer()("Hello WORLD") == ["hello", "world"]
    assert RegexTokenizer(lowercase=False)("Hello WORLD") == ["Hello", "WORLD"]


def test_apostrophes_inside_words_only():
    tok = RegexTokenizer()
    assert tok("Don't stop, rock'n'roll!") == ["don't", "stop", ",", "rock'n'roll", "!"]
    assert tok("'quoted'") == ["'", "quoted", "'"]
    assert tok("it\u2019s") == ["it\u2019s"]  # curly apostrophe


def test_punctuation_and_emoji_are_single_tokens():
    tok = RegexTokenizer()
    assert tok("wow!!🎉🎉 ok") == ["wow", "!", "!", "🎉", "🎉", "ok"]
    assert tok("U.S. $5.50") == ["u", ".", "s", ".", "$", "5", ".", "50"]


def test_unicode_letters_and_combining_accents():
    tok = RegexTokenizer()
    assert tok("Café naïve Москва 東京") == ["café", "naïve", "москва", "東京"]
    assert tok("cafe\u0301") == ["caf\u00e9"]  # decomposed accent becomes one word


def test_whitespace_only_and_empty():
    tok = RegexTokenizer()
    assert tok("") == []
    assert tok(" \t\n ") == []


def test_tokenizer_round_trip_and_custom_pattern():
    tok = RegexTokenizer(lowercase=False, pattern=r"\S+")
    d = json.loads(json.dumps(tok.to_dict()))
    back = RegexTokenizer.from_dict(d)
    assert back == tok and back("a-b c") == ["a-b", "c"]
    assert RegexTokenizer.from_dict(RegexTokenizer().to_dict()).pattern == DEFAULT_PATTERN


def test_tokenizer_rejects_bad_patterns():
    with pytest.raises(ValueError, match="invalid tokenizer pattern"):
        RegexTokenizer(pattern="(")
    with pytest.raises(ValueError, match="capturing groups"):
        RegexTokenizer(pattern=r"(\w)+")
    with pytest.raises(ValueError, match="unknown tokenizer type"):
        RegexTokenizer.from_dict({"type": "bpe"})


# --------------------------------------------------------------------------- vocab

DOCS = [["b", "a", "c"], ["a", "b"], ["a", "d"], ["e"]]  # a:3 b:2 c:1 d:1 e:1


def test_build_orders_by_count_then_token():
    v = Vocab.build(DOCS)
    assert v.tokens == [PAD_TOKEN, UNK_TOKEN, "a", "b", "c", "d", "e"]
    assert v.token_to_id(PAD_TOKEN) == 0 and v.token_to_id(UNK_TOKEN) == 1


def test_build_is_deterministic_under_input_order():
    shuffled = [list(d) for d in DOCS]
    random.Random(3).shuffle(shuffled)
    for d in shuffled:
        random.Random(4).shuffle(d)
    assert Vocab.build(shuffled).tokens == Vocab.build(DOCS).tokens


def test_min_count_and_max_size():
    assert Vocab.build(DOCS, min_count=2).tokens == [PAD_TOKEN, UNK_TOKEN, "a", "b"]
    assert Vocab.build(DOCS, max_size=3).tokens == [PAD_TOKEN, UNK_TOKEN, "a"]
    assert len(Vocab.build(DOCS, max_size=2)) == 2
    assert len(Vocab.build(DOCS, max_size=100)) == 7


def test_specials_in_data_are_not_duplicated():
    v = Vocab.build([[PAD_TOKEN, UNK_TOKEN, "x"]])
    assert v.tokens == [PAD_TOKEN, UNK_TOKEN, "x"]


@pytest.mark.parametrize("kwargs,msg", [
    ({"min_count": 0}, "min_count"), ({"min_count": 1.5}, "min_count"),
    ({"max_size": 1}, "max_size"), ({"max_size": "10"}, "max_size"),
])
def test_build_validates_arguments(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Vocab.build(DOCS, **kwargs)


def test_encode_unknown_and_truncation():
    v = Vocab.build(DOCS)
    assert v.encode(["a", "zzz", "e"]) == [2, 1, 6]
    assert v.encode(["a", "b", "c", "d"], max_len=2) == [2, 3]
    assert v.encode([], max_len=5) == []
    with pytest.raises(ValueError, match="max_len"):
        v.encode(["a"], max_len=0)


def test_contains_len_and_round_trip():
    v = Vocab.build(DOCS)
    assert "a" in v and "zzz" not in v and len(v) == 7
    back = Vocab.from_dict(json.loads(json.dumps(v.to_dict())))
    assert back == v and back.encode(["c", "q"]) == v.encode(["c", "q"])


def test_constructor_validates_specials_and_duplicates():
    with pytest.raises(ValueError, match="must start with"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="twice"):
        Vocab([PAD_TOKEN, UNK_TOKEN, "a", "a"])


def test_tokens_property_is_a_copy():
    v = Vocab.build(DOCS)
    v.tokens.append("new")
    assert "new" not in v and len(v) == 7
