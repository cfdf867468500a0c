"""Word2vec pre-training of the input embeddings on the training corpus (optional, gensim).

Without external vectors (no downloads here), a few seconds of skip-gram on the
training texts gives the encoder embeddings in which related words are already
close, which speeds up and steadies SGM training on small corpora.
"""

from __future__ import annotations

import logging
import zlib
from typing import Iterable, Sequence

import numpy as np

from seq2labels.data.vocab import Vocab

log = logging.getLogger(__name__)


def _stable_hash(text: str) -> int:
    """gensim seeds each word's initial vector with a hash; Python's str hash changes per process."""
    return zlib.crc32(text.encode("utf-8"))


def pretrain_word_vectors(token_lists: Sequence[Sequence[str]], vocab: Vocab, dim: int, *, seed: int = 0,
                          epochs: int = 5, window: int = 5, min_count: int = 1) -> tuple[np.ndarray, int]:
    """Skip-gram vectors for ``vocab`` trained on ``token_lists``.

    Returns (matrix (len(vocab), dim) float32 with NaN rows for words word2vec did not
    keep, number of vocabulary words covered), the same contract as
    :func:`seq2labels.data.embeddings.load_word_vectors`. One worker thread, so a seed
    reproduces the vectors exactly.
    """
    try:
        from gensim.models import Word2Vec
    except ImportError:
        raise ImportError("text.pretrain_embeddings needs gensim: pip install 'seq2labels[embeddings]'") from None
    sentences = [list(tokens) for tokens in token_lists if tokens]
    if not sentences:
        raise ValueError("cannot pre-train word vectors: the training texts hold no tokens")
    model = Word2Vec(sentences=sentences, vector_size=dim, window=window, min_count=min_count, sg=1,
                     workers=1, seed=seed, epochs=epochs, hashfxn=_stable_hash)
    matrix = np.full((len(vocab), dim), np.nan, dtype=np.float32)
    found = 0
    for index, token in enumerate(vocab.tokens):
        if token in model.wv.key_to_index:
            matrix[index] = model.wv[token]
            found += 1
    log.info("word2vec: %d of %d vocabulary words pre-trained (%d-dim, %d epochs)", found, len(vocab), dim, epochs)
    return matrix, found


def iter_token_lists(texts: Iterable[str], tokenizer, max_len: int | None) -> list[list[str]]:
    return [tokenizer(text)[:max_len] if max_len else tokenizer(text) for text in texts]
