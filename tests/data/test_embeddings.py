"""Pretrained word vectors: GloVe and word2vec text, gzip, missing words, and errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from seq2labels.data.embeddings import load_word_vectors
from seq2labels.data.vocab import Vocab
from seq2labels.errors import DataFormatError

VOCAB = Vocab(["<pad>", "<unk>", "the", "cat", "sat"])


def write(path: Path, text: str, gz: bool = False) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_glove_text_missing_words_are_nan(tmp_path):
    p = write(tmp_path / "glove.txt", "the 0.1 0.2 0.3\ndog 1 2 3\ncat -1 -2 -3.5e-1\n")
    m, found = load_word_vectors(p, VOCAB, 3)
    assert m.dtype == np.float32 and m.shape == (5, 3)
    assert found == 2
    np.testing.assert_allclose(m[2], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(m[3], [-1, -2, -0.35], rtol=1e-6)
    assert np.isnan(m[[0, 1, 4]]).all()


def test_word2vec_header_and_gzip(tmp_path):
    p = write(tmp_path / "vec.bin.txt", "2 2\nsat 0.5 0.25\nthe 1 1\n", gz=True)
    m, found = load_word_vectors(p, VOCAB, 2)
    assert found == 2
    np.testing.assert_array_equal(m[4], [0.5, 0.25])
    np.testing.assert_array_equal(m[2], [1, 1])


def test_header_dim_mismatch(tmp_path):
    p = write(tmp_path / "vec.txt", "2 5\nsat 0.5 0.25\n")
    with pytest.raises(DataFormatError, match=r"vec\.txt:1: .*5 dimensions, expected 2"):
        load_word_vectors(p, VOCAB, 2)


def test_vector_dim_mismatch_names_line_and_dims(tmp_path):
    p = write(tmp_path / "vec.txt", "the 1 2 3\ncat 1 2\n")
    with pytest.raises(DataFormatError, match=r"vec\.txt:2: vector has 2 dimensions, expected 3"):
        load_word_vectors(p, VOCAB, 3)
    p2 = write(tmp_path / "long.txt", "the 1 2 3 4\n")
    with pytest.raises(DataFormatError, match=r"long\.txt:1: vector has 4 dimensions, expected 3"):
        load_word_vectors(p2, VOCAB, 3)


def test_bad_float_names_line(tmp_path):
    p = write(tmp_path / "vec.txt", "the 1 2\nzebra 1 x\n")
    with pytest.raises(DataFormatError, match=r"vec\.txt:2: cannot parse the vector of 'zebra'"):
        load_word_vectors(p, VOCAB, 2)


def test_non_finite_values_rejected(tmp_path):
    p = write(tmp_path / "vec.txt", "the nan 1\n")
    with pytest.raises(DataFormatError, match=r"vec\.txt:1: .*NaN or infinite"):
        load_word_vectors(p, VOCAB, 2)


def test_word_with_spaces_glove_840b_style(tmp_path):
    p = write(tmp_path / "vec.txt", "at name@x.com 1 2\ncat 3 4\n")
    m, found = load_word_vectors(p, VOCAB, 2)
    assert found == 1 and list(m[3]) == [3, 4]


def test_exact_match_beats_lowercase_match(tmp_path):
    p = write(tmp_path / "vec.txt", "The 9 9\nthe 1 1\nCAT 5 5\n")
    m, found = load_word_vectors(p, VOCAB, 2)
    assert found == 2
    assert list(m[2]) == [1, 1]  # exact 'the' replaces the earlier 'The'
    assert list(m[3]) == [5, 5]  # only a case-folded match exists for 'cat'


def test_first_exact_duplicate_wins_and_crlf_blank_lines(tmp_path):
    p = write(tmp_path / "vec.txt", "the 1 1\r\n\r\nthe 2 2\r\n")
    m, found = load_word_vectors(p, VOCAB, 2)
    assert found == 1 and list(m[2]) == [1, 1]


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataFormatError, match="no word vectors"):
        load_word_vectors(write(tmp_path / "e.txt", "\n"), VOCAB, 2)
    with pytest.raises(DataFormatError, match="file not found"):
        load_word_vectors(tmp_path / "none.txt", VOCAB, 2)
    with pytest.raises(ValueError, match="dim"):
        load_word_vectors(write(tmp_path / "x.txt", "the 1\n"), VOCAB, 0)
