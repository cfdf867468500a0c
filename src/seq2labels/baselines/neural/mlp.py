"""MLPClassifier: a feed-forward network on numeric features (dense or sparse; scaling/TF-IDF is the
user's pipeline step), sigmoid outputs and binary cross-entropy, one output layer or a head per label."""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
import scipy.sparse as sp
import torch

from seq2labels.data.dataset import batch_indices
from seq2labels.models.mlp import MLPConfig, PerLabelMLP, SigmoidMLP
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
    _seed_of,
    _split_rows,
)

__all__ = ["MLPClassifier"]


class MLPClassifier(_SaveLoadMixin, MultiLabelClassifierBase):
    """A sigmoid-output MLP trained with binary cross-entropy.

    ``hidden``: sizes of the shared hidden layers (``()`` gives a linear model).
    ``per_label_heads``: one ``Linear(hidden[-1], 1)`` output head per label instead of one
    ``Linear(hidden[-1], L)`` layer (same function class, different parameter layout).
    A label is predicted when its sigmoid exceeds ``threshold`` (strictly).

    Attributes: ``model_`` (the trained module, eval mode), ``history_`` (per-epoch metrics),
    ``best_epoch_``, ``classes_``, ``n_labels_``, ``n_features_in_``.

    ``save(path)`` / ``MLPClassifier.load(path)`` keep the fitted estimator (numeric input); for
    a TF-IDF text pipeline use :func:`save_text_pipeline` / :func:`load_text_pipeline`.
    """

    _NETWORKS = {"sigmoid_mlp": (SigmoidMLP, MLPConfig), "per_label_mlp": (PerLabelMLP, MLPConfig)}

    def __init__(self, hidden=(256,), dropout: float = 0.2, epochs: int = 30, batch_size: int = 64,
                 lr: float = 1e-3, per_label_heads: bool = False, threshold: float = 0.5,
                 validation_fraction: float = 0.1, patience: int = 5, random_state=0,
                 fallback_top1: bool = False, device: str = "cpu"):
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.per_label_heads = per_label_heads
        self.threshold = threshold
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.fallback_top1 = fallback_top1
        self.device = device

    def _tag_classifier(self):
        return None  # accepts sparse X; no NaN

    def _check_params(self) -> None:
        super()._check_params()
        _check_common(self)
        _check_real("threshold", self.threshold, 0.0, 1.0)
        hidden = tuple(self.hidden) if not isinstance(self.hidden, Integral) else (self.hidden,)
        for h in hidden:
            _check_int("hidden sizes", h, 1)

    def _features(self, X, rows) -> torch.Tensor:
        part = X[rows]
        part = part.toarray() if sp.issparse(part) else part
        return torch.from_numpy(np.array(part, dtype=np.float32))        # (rows, features), a copy

    def _fit(self, X, Y):
        seed = _seed_of(self.random_state)
        seed_everything(seed)
        hidden = (self.hidden,) if isinstance(self.hidden, Integral) else tuple(self.hidden)
        cfg = MLPConfig(input_dim=X.shape[1], num_labels=Y.shape[1], hidden=hidden, dropout=float(self.dropout))
        model = PerLabelMLP(cfg) if self.per_label_heads else SigmoidMLP(cfg)
        train_rows, valid_rows = _split_rows(X.shape[0], self.validation_fraction, seed)
        targets = torch.from_numpy(Y.astype(np.float32))                 # (n, labels)

        def make_batches(epoch: int):
            for idx in batch_indices([0] * len(train_rows), self.batch_size, shuffle=True,
                                     seed=seed * 1000 + epoch, bucket=False):
                rows = train_rows[idx]
                yield self._features(X, rows), targets[rows]

        def evaluate_fn(net):
            scores = self._scores(net, X[valid_rows])
            return _micro_f1(Y[valid_rows], (scores > self.threshold).astype(np.int64))

        _fit_network(self, model, seed, loss_fn=_bce_loss, evaluate_fn=evaluate_fn, make_batches=make_batches,
                     steps_per_epoch=math.ceil(len(train_rows) / self.batch_size))

    @torch.no_grad()
    def _scores(self, net, X) -> np.ndarray:
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        out = []
        try:
            for start in range(0, X.shape[0], _PREDICT_BATCH):
                x = self._features(X, slice(start, start + _PREDICT_BATCH)).to(device)
                out.append(torch.sigmoid(net(x)).double().cpu().numpy())  # (batch, labels)
        finally:
            net.train(was_training)
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.n_labels_))

    def _predict_scores(self, X):
        scores = self._scores(self.model_, X)
        return (scores > self.threshold).astype(np.int64), scores
