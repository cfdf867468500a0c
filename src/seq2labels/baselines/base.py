"""The base class every baseline shares: :class:`MultiLabelClassifierBase` (target encoding, input
validation, the top-1 fallback and the output shapes of ``predict`` and ``predict_proba``).

The target conventions (a 0/1 indicator ``Y`` or a 1-D single-output ``y``) are described in
:mod:`seq2labels.baselines.problem_transformation`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import DataConversionWarning
from sklearn.linear_model import LogisticRegression
from sklearn.utils._tags import get_tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, validate_data

from seq2labels.evaluation.metrics import top1_fallback

__all__ = ["MultiLabelClassifierBase"]


def _default_classifier() -> LogisticRegression:
    return LogisticRegression(max_iter=1000)


# --------------------------------------------------------------------------- shared base


class MultiLabelClassifierBase(ClassifierMixin, BaseEstimator, ABC):
    """Target handling, input validation, fallback and output shapes shared by every baseline.

    Subclasses implement ``_fit(X, Y)`` (``Y`` an (n, L) uint8 indicator) and
    ``_predict_scores(X) -> (pred, scores)``: (n, L) 0/1 decisions and (n, L) float scores.
    """

    def _tag_classifier(self):
        """The classifier whose input tags (sparse, NaN) this estimator inherits; None for none."""
        classifier = getattr(self, "classifier", None)
        return classifier if classifier is not None else _default_classifier()

    def _base_classifier(self):
        return clone(self._tag_classifier())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        base = self._tag_classifier()
        if base is not None:
            base_tags = get_tags(base)
            tags.input_tags.sparse = base_tags.input_tags.sparse
            tags.input_tags.allow_nan = base_tags.input_tags.allow_nan
        else:
            tags.input_tags.sparse = True
        return tags

    # ---- validation ------------------------------------------------------------------
    def _validate_X(self, X, reset: bool):
        tags = self.__sklearn_tags__()
        return validate_data(
            self, X, reset=reset,
            accept_sparse=("csr", "csc") if tags.input_tags.sparse else False,
            ensure_all_finite="allow-nan" if tags.input_tags.allow_nan else True,
        )

    def _encode_targets(self, y, X) -> np.ndarray:
        """Set ``classes_``, ``target_type_``, ``n_labels_``; return the (n, L) uint8 indicator."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        if sp.issparse(y):
            y = y.toarray()
        y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
        check_consistent_length(X, y)
        if y.ndim == 2 and y.shape[1] == 1 and not _is_binary_01(y):
            warnings.warn("A column-vector y was passed when a 1d array was expected (it is not a 0/1 "
                          "label column). Please change the shape of y to (n_samples,), for example "
                          "using ravel().", DataConversionWarning, stacklevel=3)
            y = y.ravel()
        if y.ndim == 1:
            check_classification_targets(y)
            classes, codes = np.unique(y, return_inverse=True)
            self.classes_ = classes
            if len(classes) == 1:
                self.target_type_ = "binary"
                return np.ones((len(y), 1), dtype=np.uint8)
            if len(classes) == 2:
                self.target_type_ = "binary"
                return codes.reshape(-1, 1).astype(np.uint8)
            self.target_type_ = "multiclass"
            Y = np.zeros((len(y), len(classes)), dtype=np.uint8)
            Y[np.arange(len(y)), codes] = 1
            return Y
        if y.ndim != 2:
            raise ValueError(f"y must be 1-D (classes) or a 2-D 0/1 label indicator matrix; got shape {y.shape}")
        if y.shape[1] == 0:
            raise ValueError("y has zero label columns")
        if not _is_binary_01(y):
            raise ValueError("Unknown label type: a 2-D y must be a 0/1 label indicator matrix "
                             "(n_samples, n_labels); multiclass-multioutput targets are not supported")
        self.classes_ = np.arange(y.shape[1])
        self.target_type_ = "multilabel-indicator"
        return y.astype(np.uint8)

    # ---- public API ------------------------------------------------------------------
    def fit(self, X, y):
        """Fit on X (n_samples, n_features) and y, a 0/1 indicator matrix (or 1-D classes)."""
        self._check_params()
        X = self._validate_X(X, reset=True)
        Y = self._encode_targets(y, X)
        self.n_labels_ = Y.shape[1]
        self._fit(X, Y)
        return self

    def _check_params(self) -> None:
        if not isinstance(getattr(self, "fallback_top1", False), (bool, np.bool_)):
            raise ValueError(f"fallback_top1 must be a bool; got {self.fallback_top1!r}")

    def _outputs(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        pred, scores = self._predict_scores(X)
        return np.asarray(pred, dtype=np.int64), np.asarray(scores, dtype=np.float64)

    def predict(self, X):
        """(n_samples, n_labels) int64 0/1 matrix (1-D class labels when fit on a 1-D y)."""
        pred, scores = self._outputs(X)
        if self.target_type_ == "multilabel-indicator":
            return top1_fallback(scores, pred) if self.fallback_top1 else pred
        if len(self.classes_) == 1:
            return np.full(pred.shape[0], self.classes_[0])
        if len(self.classes_) == 2:
            return self.classes_[pred[:, 0]]
        return self.classes_[np.argmax(scores, axis=1)]

    def predict_proba(self, X):
        """(n_samples, n_labels) per-label scores in [0, 1] (rows summing to 1 for a 1-D y)."""
        _, scores = self._outputs(X)
        if self.target_type_ == "multilabel-indicator" or len(self.classes_) == 1:
            return scores
        if len(self.classes_) == 2:
            return np.column_stack([1.0 - scores[:, 0], scores[:, 0]])
        totals = scores.sum(axis=1, keepdims=True)
        uniform = np.full_like(scores, 1.0 / scores.shape[1])
        return np.where(totals > 0, scores / np.where(totals > 0, totals, 1.0), uniform)

    # ---- subclass hooks --------------------------------------------------------------
    @abstractmethod
    def _fit(self, X, Y) -> None:
        """Learn from validated X and a 0/1 label matrix Y."""

    @abstractmethod
    def _predict_scores(self, X):
        """(n_samples, n_labels) scores in [0, 1] for validated X."""


def _is_binary_01(y: np.ndarray) -> bool:
    if y.dtype.kind not in "biuf":
        return False
    return bool(np.all((y == 0) | (y == 1)))
