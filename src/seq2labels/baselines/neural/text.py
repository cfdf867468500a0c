"""Text baselines on raw texts (tokenizer and vocabulary built at fit time): :class:`KimCNNClassifier`,
Kim's CNN with sigmoid outputs, and :class:`CNNRNNClassifier`, the CNN-RNN label-sequence decoder
decoded with :func:`seq2labels.decoding.decode` like SGM."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from seq2labels.data.dataset import EncodedDataset, batch_indices, collate
from seq2labels.data.labels import LabelVocab
from seq2labels.data.tokenizer import RegexTokenizer
from seq2labels.data.vocab import Vocab
from seq2labels.decoding import decode
from seq2labels.training.losses import sequence_loss
from seq2labels.models.cnn import KimCNN, KimCNNConfig
from seq2labels.models.cnn_rnn import CNNRNN, CNNRNNConfig
from seq2labels.training.seeding import seed_everything

from seq2labels.baselines.base import MultiLabelClassifierBase
from seq2labels.baselines.neural.common import (
    _PREDICT_BATCH,
    _SaveLoadMixin,
    _bce_loss,
    _check_common,
    _check_int,
    _check_real,
    _fit_network,
    _micro_f1,
    _read_json,
    _seed_of,
    _split_rows,
)

__all__ = ["KimCNNClassifier", "CNNRNNClassifier"]

_FIRST_LABEL_ID = 3  # label column j of a text model is label vocabulary id j + 3 when present


def _check_texts(X) -> list[str]:
    if isinstance(X, str):
        raise TypeError("X must be a list of texts, got a single string; wrap it in a list")
    if hasattr(X, "ndim") and getattr(X, "ndim") != 1:
        raise ValueError(f"X must be a 1-D sequence of texts; got an array of shape {X.shape}")
    texts = list(X)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"X[{i}] is {type(t).__name__}, expected a text (str)")
    return texts


class _TextClassifierBase(_SaveLoadMixin, MultiLabelClassifierBase):
    """Raw texts in; tokenizer and vocabulary are built on the training rows at fit time."""

    def _tag_classifier(self):
        return None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.input_tags.sparse = False
        return tags

    def _validate_X(self, X, reset: bool):
        texts = _check_texts(X)
        if reset and not texts:
            raise ValueError(f"X is empty: {type(self).__name__}.fit needs at least one text")
        return texts

    def _check_params(self) -> None:
        super()._check_params()
        _check_common(self)
        _check_int("embedding_dim", self.embedding_dim, 1)
        _check_int("num_filters", self.num_filters, 1)
        _check_int("max_len", self.max_len, 1)
        _check_int("min_count", self.min_count, 1)
        sizes = tuple(self.filter_sizes)
        if not sizes:
            raise ValueError("filter_sizes must name at least one width")
        for k in sizes:
            _check_int("filter_sizes", k, 1)

    def _extra_files(self) -> dict[str, dict]:
        return {"vocab.json": {"tokenizer": self.tokenizer_.to_dict(), "vocab": self.vocab_.to_dict()}}

    def _restore_extra(self, folder: Path, meta: dict) -> None:
        data = _read_json(folder / "vocab.json")
        self.tokenizer_ = RegexTokenizer.from_dict(data["tokenizer"])
        self.vocab_ = Vocab.from_dict(data["vocab"])
        if len(self.vocab_) != meta["model"]["vocab_size"]:
            raise ValueError(f"vocab.json holds {len(self.vocab_)} words but the model was built for "
                             f"{meta['model']['vocab_size']}")

    def _build_text_vocab(self, texts: list[str]) -> None:
        self.tokenizer_ = RegexTokenizer(lowercase=bool(self.lowercase))
        self.vocab_ = Vocab.build((self.tokenizer_(t, max_tokens=int(self.max_len)) for t in texts),
                                  min_count=int(self.min_count), max_size=self.max_vocab)

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        return [self.vocab_.encode(self.tokenizer_(t, max_tokens=int(self.max_len)), max_len=int(self.max_len))
                for t in texts]

    def _batches(self, token_ids: list[list[int]], batch_size: int):
        """Length-sorted evaluation batches of the texts (collated, PAD for empty texts)."""
        data = EncodedDataset(token_ids=token_ids, target_ids=[[] for _ in token_ids])
        for idx in batch_indices(data.lengths(), batch_size, shuffle=False, bucket=True):
            yield collate(data, idx)


class KimCNNClassifier(_TextClassifierBase):
    """Kim's CNN on raw texts with sigmoid outputs and binary cross-entropy.

    A label is predicted when its sigmoid exceeds ``threshold`` (strictly).
    Attributes: ``model_``, ``tokenizer_``, ``vocab_``, ``history_``, ``best_epoch_``,
    ``classes_``, ``n_labels_``. ``save(path)`` / ``KimCNNClassifier.load(path)`` keep it.
    """

    _NETWORKS = {"kim_cnn": (KimCNN, KimCNNConfig)}

    def __init__(self, embedding_dim: int = 128, filter_sizes=(3, 4, 5), num_filters: int = 100,
                 dropout: float = 0.5, max_len: int = 300, min_count: int = 1, max_vocab: int | None = 50000,
                 lowercase: bool = True, epochs: int = 20, batch_size: int = 64, lr: float = 1e-3,
                 threshold: float = 0.5, validation_fraction: float = 0.1, patience: int = 5,
                 random_state=0, fallback_top1: bool = False, device: str = "cpu"):
        self.embedding_dim = embedding_dim
        self.filter_sizes = filter_sizes
        self.num_filters = num_filters
        self.dropout = dropout
        self.max_len = max_len
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.lowercase = lowercase
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.threshold = threshold
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.fallback_top1 = fallback_top1
        self.device = device

    def _check_params(self) -> None:
        super()._check_params()
        _check_real("threshold", self.threshold, 0.0, 1.0)

    def _fit(self, X, Y):
        seed = _seed_of(self.random_state)
        seed_everything(seed)
        train_rows, valid_rows = _split_rows(len(X), self.validation_fraction, seed)
        self._build_text_vocab([X[i] for i in train_rows])
        cfg = KimCNNConfig(vocab_size=len(self.vocab_), num_labels=Y.shape[1],
                           embedding_dim=int(self.embedding_dim), filter_sizes=tuple(self.filter_sizes),
                           num_filters=int(self.num_filters), dropout=float(self.dropout))
        model = KimCNN(cfg)
        ids = self._token_ids(X)
        train_set = EncodedDataset([ids[i] for i in train_rows], [[] for _ in train_rows])
        targets = torch.from_numpy(Y[train_rows].astype(np.float32))     # (n_train, labels)
        valid_ids = [ids[i] for i in valid_rows]

        def make_batches(epoch: int):
            for idx in batch_indices(train_set.lengths(), self.batch_size, shuffle=True, seed=seed * 1000 + epoch):
                batch = collate(train_set, idx)
                yield batch.src, batch.src_lengths, targets[batch.index]

        def evaluate_fn(net):
            scores = self._scores(net, valid_ids)
            return _micro_f1(Y[valid_rows], (scores > self.threshold).astype(np.int64))

        _fit_network(self, model, seed, loss_fn=_bce_loss, evaluate_fn=evaluate_fn, make_batches=make_batches,
                     steps_per_epoch=math.ceil(len(train_set) / self.batch_size))

    @torch.no_grad()
    def _scores(self, net, token_ids: list[list[int]]) -> np.ndarray:
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        out = np.zeros((len(token_ids), net.config.num_labels))
        try:
            for batch in self._batches(token_ids, _PREDICT_BATCH):
                batch = batch.to(device)
                probs = torch.sigmoid(net(batch.src, batch.src_lengths))  # (batch, labels)
                out[batch.index.cpu().numpy()] = probs.double().cpu().numpy()
        finally:
            net.train(was_training)
        return out

    def _predict_scores(self, X):
        scores = self._scores(self.model_, self._token_ids(X))
        return (scores > self.threshold).astype(np.int64), scores


class CNNRNNClassifier(_TextClassifierBase):
    """CNN-RNN: a CNN text vector initialises an LSTM that emits labels until EOS.

    Targets are taught in descending training-frequency order (as in SGM) with the sequence
    cross-entropy; prediction decodes with :func:`seq2labels.decoding.decode` (``beam_size``,
    ``max_labels``). ``predict_proba`` is each label's highest probability along the greedy
    decoding path (a ranking score, as in ``SGMClassifier``), 0 for labels never seen positive
    in training.

    Attributes: ``model_``, ``tokenizer_``, ``vocab_``, ``label_vocab_`` (label names are the
    column indices as strings), ``history_``, ``best_epoch_``, ``classes_``, ``n_labels_``.
    ``save(path)`` / ``CNNRNNClassifier.load(path)`` keep it.
    """

    _NETWORKS = {"cnn_rnn": (CNNRNN, CNNRNNConfig)}

    def _extra_files(self) -> dict[str, dict]:
        return {**super()._extra_files(),
                "labels.json": {"label_vocab": self.label_vocab_.to_dict(),
                                "label_columns": [int(c) for c in self.label_columns_]}}

    def _restore_extra(self, folder: Path, meta: dict) -> None:
        super()._restore_extra(folder, meta)
        data = _read_json(folder / "labels.json")
        self.label_vocab_ = LabelVocab.from_dict(data["label_vocab"])
        self.label_columns_ = np.array([int(c) for c in data["label_columns"]], dtype=np.int64)
        if self.label_vocab_.size != meta["model"]["num_outputs"] or \
                len(self.label_columns_) != self.label_vocab_.num_labels:
            raise ValueError("labels.json does not match the model's output size")
        if np.any(self.label_columns_ < 0) or np.any(self.label_columns_ >= self.n_labels_):
            raise ValueError("labels.json maps a label outside the estimator's label columns")

    def __init__(self, embedding_dim: int = 128, filter_sizes=(3, 4, 5), num_filters: int = 100,
                 label_embedding_dim: int = 64, decoder_hidden: int = 256, dropout: float = 0.3,
                 max_len: int = 300, min_count: int = 1, max_vocab: int | None = 50000, lowercase: bool = True,
                 epochs: int = 20, batch_size: int = 64, lr: float = 1e-3, beam_size: int = 1,
                 max_labels: int = 10, validation_fraction: float = 0.1, patience: int = 5,
                 random_state=0, fallback_top1: bool = False, device: str = "cpu"):
        self.embedding_dim = embedding_dim
        self.filter_sizes = filter_sizes
        self.num_filters = num_filters
        self.label_embedding_dim = label_embedding_dim
        self.decoder_hidden = decoder_hidden
        self.dropout = dropout
        self.max_len = max_len
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.lowercase = lowercase
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.beam_size = beam_size
        self.max_labels = max_labels
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.fallback_top1 = fallback_top1
        self.device = device

    def _check_params(self) -> None:
        super()._check_params()
        _check_int("label_embedding_dim", self.label_embedding_dim, 1)
        _check_int("decoder_hidden", self.decoder_hidden, 1)
        _check_int("beam_size", self.beam_size, 1)
        _check_int("max_labels", self.max_labels, 1)

    def _target_ids(self, Y: np.ndarray) -> list[list[int]]:
        return [self.label_vocab_.encode_targets([str(j) for j in np.flatnonzero(row)]) for row in Y]

    def _fit(self, X, Y):
        seed = _seed_of(self.random_state)
        seed_everything(seed)
        train_rows, valid_rows = _split_rows(len(X), self.validation_fraction, seed)
        self._build_text_vocab([X[i] for i in train_rows])
        label_lists = [[str(j) for j in np.flatnonzero(Y[i])] for i in train_rows]
        if not any(label_lists):  # no positive label at all: a vocabulary of every column, never emitted
            label_lists = [[str(j) for j in range(Y.shape[1])]]
        self.label_vocab_ = LabelVocab.build(label_lists, order="frequency")
        # label vocabulary position -> column of Y
        self.label_columns_ = np.array([int(name) for name in self.label_vocab_.labels], dtype=np.int64)
        cfg = CNNRNNConfig(vocab_size=len(self.vocab_), num_outputs=self.label_vocab_.size,
                           embedding_dim=int(self.embedding_dim), filter_sizes=tuple(self.filter_sizes),
                           num_filters=int(self.num_filters), label_embedding_dim=int(self.label_embedding_dim),
                           decoder_hidden=int(self.decoder_hidden), dropout=float(self.dropout))
        model = CNNRNN(cfg)
        ids = self._token_ids(X)
        train_set = EncodedDataset([ids[i] for i in train_rows], self._target_ids(Y[train_rows]))
        valid_ids = [ids[i] for i in valid_rows]

        def make_batches(epoch: int):
            for idx in batch_indices(train_set.lengths(), self.batch_size, shuffle=True, seed=seed * 1000 + epoch):
                yield collate(train_set, idx)

        def loss_fn(net, batch):
            return sequence_loss(net(batch.src, batch.src_lengths, batch.targets), batch.targets, "ce")

        def evaluate_fn(net):
            pred, _ = self._decode(net, valid_ids, Y.shape[1], beam_size=1)
            return _micro_f1(Y[valid_rows], pred)

        _fit_network(self, model, seed, loss_fn=loss_fn, evaluate_fn=evaluate_fn, make_batches=make_batches,
                     steps_per_epoch=math.ceil(len(train_set) / self.batch_size))

    @torch.no_grad()
    def _decode(self, net, token_ids: list[list[int]], n_labels: int, beam_size: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """(n, L) 0/1 decisions of a ``beam_size`` search and (n, L) greedy-path label scores."""
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        pred = np.zeros((len(token_ids), n_labels), dtype=np.int64)
        scores = np.zeros((len(token_ids), n_labels))
        try:
            for batch in self._batches(token_ids, _PREDICT_BATCH):
                batch = batch.to(device)
                rows = batch.index.cpu().numpy()
                out = decode(net, batch.src, batch.src_lengths, beam_size=beam_size, max_labels=int(self.max_labels))
                if beam_size != 1:
                    greedy = decode(net, batch.src, batch.src_lengths, beam_size=1, max_labels=int(self.max_labels))
                else:
                    greedy = out
                label_scores = greedy.label_scores[:, _FIRST_LABEL_ID:].double().cpu().numpy()  # (batch, vocab labels)
                scores[rows[:, None], self.label_columns_[None, :]] = label_scores
                seqs = out.sequences.cpu().numpy()                       # (batch, steps)
                for r, seq in enumerate(seqs):
                    ids = seq[seq >= _FIRST_LABEL_ID] - _FIRST_LABEL_ID
                    pred[rows[r], self.label_columns_[ids]] = 1
        finally:
            net.train(was_training)
        return pred, scores

    def _predict_scores(self, X):
        return self._decode(self.model_, self._token_ids(X), self.n_labels_, beam_size=int(self.beam_size))
