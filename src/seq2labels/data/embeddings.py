"""Load pretrained word vectors (word2vec or GloVe text format, plain or gzip)."""

from __future__ import annotations

import math
import os

import numpy as np

from seq2labels.data.readers import iter_lines
from seq2labels.data.vocab import Vocab
from seq2labels.errors import DataFormatError


def load_word_vectors(path: str | os.PathLike, vocab: Vocab, dim: int) -> tuple[np.ndarray, int]:
    """Rows of pretrained vectors for the words of ``vocab``.

    Returns ``(matrix, found)``: ``matrix`` is float32 of shape (len(vocab), dim) with NaN rows
    for the words the file lacks (the caller keeps its own init for them), and ``found`` is the
    number of vocabulary words that got a vector. An exact match wins; otherwise a file word
    whose lowercase form is in the vocabulary fills that row (for cased word2vec files used with
    a lowercasing tokenizer). Every line is checked, not only the ones used, so a broken file
    fails loudly instead of silently giving fewer vectors.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    matrix = np.full((len(vocab), dim), np.nan, dtype=np.float32)  # (vocab, dim)
    exact = np.zeros(len(vocab), dtype=bool)  # (vocab,) row set from an exact match
    n_vectors = 0
    for line_no, raw in iter_lines(path):
        line = raw.decode("utf-8", errors="replace")
        fields = line.split()
        if not fields:
            continue
        if line_no == 1 and _is_header(fields):
            _check_header_dim(int(fields[1]), dim, path)
            continue
        word, vector = _parse_vector_line(fields, dim, path, line_no)
        n_vectors += 1
        _store(matrix, exact, vocab, word, vector)
    if n_vectors == 0:
        raise DataFormatError("no word vectors in the file", path=path)
    found = int((~np.isnan(matrix[:, 0])).sum())
    return matrix, found


def _is_header(fields: list[str]) -> bool:
    """The word2vec header is exactly two integers: word count and dimension."""
    return len(fields) == 2 and all(f.isdigit() for f in fields)


def _check_header_dim(file_dim: int, dim: int, path: str | os.PathLike) -> None:
    """Fail on the header already, before parsing a single vector."""
    if file_dim != dim:
        raise DataFormatError(f"the header says vectors have {file_dim} dimensions, "
                              f"expected {dim}", path=path, line=1)


def _parse_vector_line(fields: list[str], dim: int, path: str | os.PathLike,
                       line_no: int) -> tuple[str, np.ndarray]:
    """Split ``word v1 ... vdim``; a word may contain spaces (as in GloVe 840B)."""
    if len(fields) - 1 != dim:
        spaced = len(fields) > dim + 1 and not _all_floats(fields[1:len(fields) - dim])
        if not spaced:
            raise DataFormatError(f"vector has {len(fields) - 1} dimensions, expected {dim}",
                                  path=path, line=line_no)
    word = " ".join(fields[:len(fields) - dim])
    try:
        values = [float(f) for f in fields[len(fields) - dim:]]
    except ValueError as err:
        raise DataFormatError(f"cannot parse the vector of {word!r} as numbers: {err}",
                              path=path, line=line_no) from None
    if not all(math.isfinite(v) for v in values):
        raise DataFormatError(f"vector of {word!r} holds a NaN or infinite value",
                              path=path, line=line_no)
    return word, np.asarray(values, dtype=np.float32)  # (dim,)


def _all_floats(fields: list[str]) -> bool:
    """Whether every field parses as a float (tells a spaced word from a too-long vector)."""
    try:
        for f in fields:
            float(f)
    except ValueError:
        return False
    return True


def _store(matrix: np.ndarray, exact: np.ndarray, vocab: Vocab, word: str,
           vector: np.ndarray) -> None:
    """Put ``vector`` in the row of ``word``: the first exact match wins over a lowercase one."""
    if word in vocab:
        row = vocab.token_to_id(word)
        if not exact[row]:
            matrix[row] = vector
            exact[row] = True
        return
    lower = word.lower()
    if lower in vocab:
        row = vocab.token_to_id(lower)
        if not exact[row] and np.isnan(matrix[row, 0]):
            matrix[row] = vector
