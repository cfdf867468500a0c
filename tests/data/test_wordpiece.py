"""The word-piece tokenizer: the model's own pieces, its truncation rules, our vocabulary over
its ids, words behind the pieces (for explanations), and its round trip through a folder."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tokenizers", reason="needs the transformer extra: pip install 'seq2labels[transformer]'")

from seq2labels.data.vocab import PAD_ID, UNK_ID  # noqa: E402
from seq2labels.data.wordpiece import WordPieceTokenizer  # noqa: E402


@pytest.fixture(scope="module")
def make(tiny_bert_dir):
    def build(**settings) -> WordPieceTokenizer:
        settings.setdefault("max_tokens", 64)
        return WordPieceTokenizer.from_pretrained(tiny_bert_dir, **settings)
    return build


def test_pieces_carry_no_special_tokens_and_split_unknown_words(make):
    tok = make()
    pieces = tok("I love it, zzq!")
    assert "[CLS]" not in pieces and "[SEP]" not in pieces
    assert pieces[:2] == ["i", "love"] and "z" in pieces and "##z" in pieces


def test_head_keeps_the_first_pieces(make):
    text = " ".join(f"w{i}" for i in range(40))
    full = make(max_tokens=1000)(text)
    assert make(max_tokens=10)(text) == full[:10]
    assert make(max_tokens=10).count(text) == len(full)


def test_head_tail_keeps_both_ends(make):
    text = " ".join(f"w{i}" for i in range(40))
    full = make(max_tokens=1000)(text)
    cut = make(max_tokens=10, truncation="head_tail", head_tokens=4)(text)
    assert cut == full[:4] + full[-6:]
    assert make(max_tokens=10, truncation="head_tail", head_tokens=4)("short text") == make()("short text")


def test_vocab_maps_our_ids_to_the_models(make, tiny_bert_dir):
    tok = make()
    vocab, model_ids = tok.build_vocab()
    hf_vocab = json.loads((tiny_bert_dir / "tokenizer.json").read_text())["model"]["vocab"]
    assert len(vocab) == len(model_ids) == len(hf_vocab)
    assert model_ids[PAD_ID] == hf_vocab["[PAD]"] and model_ids[UNK_ID] == hf_vocab["[UNK]"]
    for piece in ("love", "##e", "!"):
        assert model_ids[vocab.token_to_id(piece)] == hf_vocab[piece]
    assert vocab.encode(["[UNK]"]) == [UNK_ID]


def test_words_group_the_pieces_of_each_word(make):
    tok = make()
    text = "I love zzq!"
    pieces = tok(text)
    words = tok.words(text)
    assert [w for w, _ in words] == ["I", "love", "zzq", "!"]
    assert sorted(p for _, positions in words for p in positions) == list(range(len(pieces)))
    assert [pieces[p] for p in words[2][1]] == ["z", "##z", "##q"]


def test_words_follow_head_tail_positions(make):
    tok = make(max_tokens=5, truncation="head_tail", head_tokens=2)
    words = tok.words("i love the way you are so")
    assert words == [("i", [0]), ("love", [1]), ("you", [2]), ("are", [3]), ("so", [4])]


def test_round_trip_through_a_folder(make, tmp_path):
    tok = make(max_tokens=12, truncation="head_tail", head_tokens=3)
    for name, text in tok.model_files().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    back = WordPieceTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())), tmp_path)
    text = "I really love this so much, thank you very much for all of it"
    assert back(text) == tok(text) and back.to_dict() == tok.to_dict()


def test_missing_tokenizer_file_is_named(make, tmp_path):
    with pytest.raises(ValueError, match="tokenizer.json is missing"):
        WordPieceTokenizer.from_dict(make().to_dict(), tmp_path)


@pytest.mark.parametrize("settings", [{"truncation": "middle"}, {"max_tokens": 0}, {"head_tokens": 99}])
def test_bad_settings(make, settings):
    with pytest.raises(ValueError):
        make(**settings)
