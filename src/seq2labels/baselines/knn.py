"""Nearest-neighbour multi-label baselines: ML-kNN and BRkNN.

Both use ``sklearn.neighbors.NearestNeighbors`` (Euclidean distance, dense or sparse X) and
share the target handling of :class:`~seq2labels.baselines.base.MultiLabelClassifierBase`
(a 2-D 0/1 ``Y`` is multi-label; a 1-D ``y`` is single-output, one-vs-rest encoded).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.neighbors import NearestNeighbors

from seq2labels.baselines.base import MultiLabelClassifierBase

__all__ = ["MLkNN", "BRkNN"]


def _check_k(k) -> None:
    if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an int >= 1; got {k!r}")


class _KNNBase(MultiLabelClassifierBase):
    def _tag_classifier(self):
        return None  # no base classifier: NearestNeighbors takes dense and sparse X, no NaN

    def _check_params(self):
        super()._check_params()
        _check_k(self.k)

    def _neighbour_counts(self, X=None) -> np.ndarray:
        """(n, L) number of the k nearest training points having each label.

        With ``X=None`` the training points themselves are queried, each without itself.
        """
        graph = self.nn_.kneighbors_graph(X, n_neighbors=self.k, mode="connectivity")
        return np.asarray(graph @ self.Y_train_, dtype=np.int64)


class MLkNN(_KNNBase):
    """ML-kNN (Zhang & Zhou, Pattern Recognition 2007).

    For label l with smoothing ``s`` and n training points:

    * prior ``P(H1_l) = (s + #points with l) / (2 s + n)``;
    * for every training point, ``C_l`` = how many of its k nearest *other* training points
      have l; ``c1[l, j]`` (``c0[l, j]``) counts the points with (without) l whose ``C_l = j``;
    * posterior counts ``P(E_j | H1_l) = (s + c1[l, j]) / (s (k + 1) + sum_p c1[l, p])`` and the
      same with ``c0`` for ``H0``.

    A query with neighbour count ``C_l = j`` gets score
    ``P(H1) P(E_j|H1) / (P(H1) P(E_j|H1) + P(H0) P(E_j|H0))`` (``predict_proba``), and label l
    when ``P(H1) P(E_j|H1) > P(H0) P(E_j|H0)`` (strictly; a tie predicts 0). ``s`` must be > 0.
    ``k`` must be smaller than the number of training points.

    Attributes: ``prior_`` (L,), ``cond_true_`` and ``cond_false_`` ((L, k + 1) posterior
    probabilities), ``nn_``, ``Y_train_``, ``classes_``, ``n_labels_``.
    """

    def __init__(self, k: int = 10, s: float = 1.0, *, fallback_top1: bool = False):
        self.k = k
        self.s = s
        self.fallback_top1 = fallback_top1

    def _check_params(self):
        super()._check_params()
        if not isinstance(self.s, Real) or isinstance(self.s, bool) or not self.s > 0:
            raise ValueError(f"s (smoothing) must be a number > 0; got {self.s!r}")

    def _fit(self, X, Y):
        n, k, s = X.shape[0], self.k, float(self.s)
        if k >= n:
            raise ValueError(f"ML-kNN with k={k} needs more than k training samples "
                             f"(each point's k neighbours exclude itself); got n_samples={n}")
        self.nn_ = NearestNeighbors(n_neighbors=k).fit(X)
        self.Y_train_ = Y.astype(np.int64)
        counts = self._neighbour_counts(None)                     # (n, L), values 0..k
        has = Y.astype(bool)
        c1 = np.stack([((counts == j) & has).sum(axis=0) for j in range(k + 1)], axis=1)   # (L, k+1)
        c0 = np.stack([((counts == j) & ~has).sum(axis=0) for j in range(k + 1)], axis=1)
        self.prior_ = (s + Y.sum(axis=0)) / (2.0 * s + n)
        self.cond_true_ = (s + c1) / (s * (k + 1) + c1.sum(axis=1, keepdims=True))
        self.cond_false_ = (s + c0) / (s * (k + 1) + c0.sum(axis=1, keepdims=True))

    def _predict_scores(self, X):
        counts = self._neighbour_counts(X)
        labels = np.arange(counts.shape[1])[None, :]
        p1 = self.prior_[None, :] * self.cond_true_[labels, counts]
        p0 = (1.0 - self.prior_[None, :]) * self.cond_false_[labels, counts]
        return (p1 > p0).astype(np.int64), p1 / (p1 + p0)


class BRkNN(_KNNBase):
    """Binary-relevance kNN (Spyromitros et al. 2008, the plain BRkNN variant).

    A label's score is the fraction of the k nearest training points that have it; the label is
    predicted when more than half of them have it. ``k`` must not exceed the number of training
    points. Scores are exactly 0 when no neighbour has a label.

    Attributes: ``nn_``, ``Y_train_``, ``classes_``, ``n_labels_``.
    """

    def __init__(self, k: int = 10, *, fallback_top1: bool = False):
        self.k = k
        self.fallback_top1 = fallback_top1

    def _fit(self, X, Y):
        if self.k > X.shape[0]:
            raise ValueError(f"BRkNN with k={self.k} needs at least k training samples; got n_samples={X.shape[0]}")
        self.nn_ = NearestNeighbors(n_neighbors=self.k).fit(X)
        self.Y_train_ = Y.astype(np.int64)

    def _predict_scores(self, X):
        fraction = self._neighbour_counts(X) / self.k
        return (fraction > 0.5).astype(np.int64), fraction
