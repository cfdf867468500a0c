"""Per-label thresholds for any scoring baseline, tuned on a held-out part of its training data.

SGM can tune one threshold per label on validation data (seq2labels.pipeline.thresholds); a
comparison stays fair when the baselines get the same chance. :class:`ValidationThresholds`
wraps an estimator with scores (``predict_proba`` or ``decision_function``): it fits a copy on
``1 - valid_fraction`` of the training rows, tunes a threshold per label on the rest with the
same rule as SGM (seq2labels.evaluation.thresholds: at least ``min_positives`` positives, must
beat the estimator's own decisions and reach ``min_f1``), then refits on every row (``refit``)
and predicts ``score >= threshold`` where a label has one, the estimator's decision elsewhere.
``objective`` is SGM's too: ``macro_f1`` (each label's own F1) or ``micro_f1`` (the pooled F1).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from seq2labels.evaluation.protocols import _label_scores, _take
from seq2labels.evaluation.thresholds import MIN_F1, MIN_POSITIVES, OBJECTIVES, apply_thresholds, tune_thresholds

__all__ = ["ValidationThresholds"]


class ValidationThresholds(ClassifierMixin, BaseEstimator):
    """``estimator`` with per-label thresholds tuned on a seeded validation part of the training data."""

    def __init__(self, estimator, valid_fraction: float = 0.1, random_state: int = 0,
                 min_positives: int = MIN_POSITIVES, min_f1: float = MIN_F1, refit: bool = True,
                 objective: str = "macro_f1"):
        self.estimator = estimator
        self.valid_fraction = valid_fraction
        self.random_state = random_state
        self.min_positives = min_positives
        self.min_f1 = min_f1
        self.refit = refit
        self.objective = objective

    def fit(self, X, Y) -> "ValidationThresholds":
        Y = _dense(Y)
        n = Y.shape[0]
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        order = np.random.default_rng(self.random_state).permutation(n)
        n_valid = max(1, int(round(n * self.valid_fraction)))
        if n_valid >= n:
            raise ValueError(f"need at least 2 training rows to hold out a validation part, got {n}")
        valid, train = np.sort(order[:n_valid]), np.sort(order[n_valid:])
        model = clone(self.estimator).fit(_take(X, train), Y[train])
        X_valid = _take(X, valid)
        scores = _label_scores(model, X_valid)                            # (valid, labels)
        self.thresholds_ = tune_thresholds(scores, _dense(model.predict(X_valid)), Y[valid],
                                           min_positives=self.min_positives, min_f1=self.min_f1,
                                           objective=self.objective)
        self.estimator_ = clone(self.estimator).fit(X, Y) if self.refit else model
        self.n_valid_ = n_valid
        return self

    def decision_function(self, X) -> np.ndarray:
        return _label_scores(self.estimator_, X)

    def predict(self, X) -> np.ndarray:
        decided = _dense(self.estimator_.predict(X))
        return apply_thresholds(self.decision_function(X), decided, self.thresholds_).astype(np.uint8)


def _dense(Y) -> np.ndarray:
    return (Y.toarray() if sp.issparse(Y) else np.asarray(Y)).astype(bool)
