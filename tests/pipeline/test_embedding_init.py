"""Embeddings initialised from a word2vec/GloVe text file through the recipe."""

import gzip

import pytest
import torch

from seq2labels.pipeline.config import load_config
from seq2labels.data.readers import Example
from seq2labels.errors import DataFormatError
from seq2labels.pipeline.recipe import build_model, build_vocabularies

EXAMPLES = [Example("oil prices rise", ("crude",)), Example("wheat exports fall", ("grain",)),
            Example("oil and wheat", ("crude", "grain"))]


def _vocab_and_config(tmp_path, vectors_text, dim=4):
    path = tmp_path / "vectors.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(vectors_text)
    cfg = load_config(None, [f"text.word_vectors={path}", "text.min_count=1", f"model.embedding_dim={dim}"])
    tokenizer, vocab, labels = build_vocabularies(EXAMPLES, cfg)
    return cfg, vocab, labels


def test_vectors_from_file_are_copied_and_missing_words_keep_random_vectors(tmp_path):
    cfg, vocab, labels = _vocab_and_config(tmp_path, "2 4\noil 1 2 3 4\nWHEAT 0.5 0.5 0.5 0.5\n")
    torch.manual_seed(0)
    model = build_model(cfg, vocab, labels)
    weight = model.encoder.embedding.weight
    assert weight[vocab.token_to_id("oil")].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert weight[vocab.token_to_id("wheat")].tolist() == [0.5, 0.5, 0.5, 0.5]   # lowercase fallback
    torch.manual_seed(0)
    reference = build_model(load_config(None, ["text.min_count=1", "model.embedding_dim=4"]), vocab, labels)
    prices = vocab.token_to_id("prices")
    assert torch.equal(weight[prices], reference.encoder.embedding.weight[prices])  # not in the file: random init
    assert torch.count_nonzero(weight[0]) == 0                                      # PAD stays zero


def test_a_vector_of_the_wrong_dimension_is_an_error_naming_file_and_line(tmp_path):
    cfg, vocab, labels = _vocab_and_config(tmp_path, "oil 1 2 3 4\nwheat 1 2 3\n")
    with pytest.raises(DataFormatError, match=r"vectors\.txt\.gz:2"):
        build_model(cfg, vocab, labels)


def test_word2vec_pretraining_is_seeded_and_fills_the_embeddings():
    pytest.importorskip("gensim")
    texts = ["oil prices rise as crude output falls", "wheat exports fall", "oil and wheat prices"] * 20
    examples = [Example(t, ("x",)) for t in texts]
    cfg = load_config(None, ["text.min_count=1", "model.embedding_dim=8", "text.pretrain_embeddings=true",
                             "text.pretrain_epochs=2"])
    tokenizer, vocab, labels = build_vocabularies(examples, cfg)
    torch.manual_seed(0)
    first = build_model(cfg, vocab, labels, texts, tokenizer).encoder.embedding.weight
    torch.manual_seed(0)
    second = build_model(cfg, vocab, labels, texts, tokenizer).encoder.embedding.weight
    assert torch.equal(first, second)                        # seeded, hash-independent
    torch.manual_seed(0)
    random_init = build_model(load_config(None, ["text.min_count=1", "model.embedding_dim=8"]), vocab, labels)
    oil = vocab.token_to_id("oil")
    assert not torch.allclose(first[oil], random_init.encoder.embedding.weight[oil])


def test_pretraining_and_a_vector_file_exclude_each_other():
    from seq2labels.errors import ConfigError
    with pytest.raises(ConfigError, match="pretrain_embeddings"):
        load_config(None, ["text.pretrain_embeddings=true", "text.word_vectors=v.txt"])
