"""Problem-transformation baselines: BR, CC, ECC, LP and RAkEL.

Each estimator turns the multi-label problem into ordinary classification problems solved by
a scikit-learn ``classifier`` (default ``LogisticRegression(max_iter=1000)``), cloned per task.

Targets
-------
``fit(X, Y)`` with ``Y`` a (n_samples, n_labels) 0/1 indicator matrix (numpy, nested lists or
scipy sparse) is the multi-label use: ``predict`` returns an (n_samples, n_labels) int64 0/1
matrix and ``predict_proba`` an (n_samples, n_labels) float matrix of per-label scores.

A 1-D ``y`` is a single-output problem and is handled like scikit-learn's
``OneVsRestClassifier`` handles it: with two classes the positive class (``classes_[1]``)
becomes one label column; with more, every class becomes a label column (one-hot). ``predict``
then returns 1-D class labels (for more than two classes, the class with the highest score)
and ``predict_proba`` an (n_samples, n_classes) array whose rows sum to 1. ``fallback_top1``
only applies to the multi-label use. A column vector ``y`` that is not 0/1 is raveled with a
``DataConversionWarning``; a 0/1 column vector is a one-label indicator matrix.
"""

from __future__ import annotations

import itertools
import math
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import clone
from sklearn.utils import check_random_state

from seq2labels.baselines.base import MultiLabelClassifierBase

__all__ = [
    "MultiLabelClassifierBase",
    "BinaryRelevance",
    "ClassifierChain",
    "EnsembleClassifierChains",
    "LabelPowerset",
    "RAkEL",
]


# --------------------------------------------------------------------------- binary helpers


class _ConstantBinary:
    """Stands in for a classifier on a label that had one value throughout training."""

    def __init__(self, value: int):
        self.value = int(value)

    def predict(self, X):
        return np.full(X.shape[0], self.value, dtype=np.int64)

    def positive_scores(self, X):
        return np.full(X.shape[0], float(self.value))


def _fit_binary(base, X, y: np.ndarray):
    """A fitted clone of ``base`` on one 0/1 column, or a constant model if the column is constant."""
    if np.all(y == y[0]):
        return _ConstantBinary(y[0])
    return clone(base).fit(X, y.astype(np.int64))


def _binary_predict(model, X) -> np.ndarray:
    if isinstance(model, _ConstantBinary):
        return model.predict(X)
    return (np.asarray(model.predict(X)) == 1).astype(np.int64)


def _binary_scores(model, X) -> np.ndarray:
    """P(label = 1): predict_proba if the classifier has it, else sigmoid(decision), else 0/1."""
    if isinstance(model, _ConstantBinary):
        return model.positive_scores(X)
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X))
        return proba[:, list(model.classes_).index(1)]
    if hasattr(model, "decision_function"):
        return expit(np.asarray(model.decision_function(X), dtype=np.float64).ravel())
    return _binary_predict(model, X).astype(np.float64)


def _class_distribution(model, X, n_classes: int) -> np.ndarray:
    """(n, n_classes) class probabilities (one-hot of predict when there is no predict_proba)."""
    out = np.zeros((X.shape[0], n_classes))
    classes = np.asarray(model.classes_, dtype=np.int64)
    if hasattr(model, "predict_proba"):
        out[:, classes] = model.predict_proba(X)
    else:
        out[np.arange(X.shape[0]), np.asarray(model.predict(X), dtype=np.int64)] = 1.0
    return out


def _augment(X, columns: np.ndarray):
    """X with the given 0/1 columns appended (sparse stays CSR)."""
    if columns.shape[1] == 0:
        return X
    if sp.issparse(X):
        return sp.hstack([X, sp.csr_matrix(columns.astype(X.dtype))], format="csr")
    return np.hstack([X, columns.astype(X.dtype)])


# --------------------------------------------------------------------------- Binary Relevance


class BinaryRelevance(MultiLabelClassifierBase):
    """One independent binary classifier per label.

    A label that is constant in training is predicted as that constant (score exactly 0 or 1)
    without fitting anything. Decisions are the base classifier's own ``predict``; scores are
    its ``predict_proba`` (else sigmoid of ``decision_function``, else the 0/1 decision).

    Attributes: ``estimators_`` (one per label), ``classes_``, ``n_labels_``, ``n_features_in_``.
    """

    def __init__(self, classifier=None, *, fallback_top1: bool = False):
        self.classifier = classifier
        self.fallback_top1 = fallback_top1

    def _fit(self, X, Y):
        base = self._base_classifier()
        self.estimators_ = [_fit_binary(base, X, Y[:, j]) for j in range(Y.shape[1])]

    def _predict_scores(self, X):
        pred = np.column_stack([_binary_predict(m, X) for m in self.estimators_])
        scores = np.column_stack([_binary_scores(m, X) for m in self.estimators_])
        return pred, scores


# --------------------------------------------------------------------------- Classifier chains

_ORDERS = ("given", "random", "frequency")


class ClassifierChain(MultiLabelClassifierBase):
    """Classifier chain (Read et al. 2009): label ``order_[i]`` is learnt from X plus the labels
    before it in the chain (true labels in training, predicted ones at prediction time).

    ``order``: ``"given"`` (column order), ``"random"`` (a permutation drawn from
    ``random_state``), ``"frequency"`` (most frequent label first, ties by column) or an explicit
    permutation of ``range(n_labels)``. ``predict_proba`` gives each label's probability along
    the predicted chain.

    Attributes: ``order_``, ``estimators_`` (in chain order), ``classes_``, ``n_labels_``.
    """

    def __init__(self, classifier=None, *, order="given", random_state=None, fallback_top1: bool = False):
        self.classifier = classifier
        self.order = order
        self.random_state = random_state
        self.fallback_top1 = fallback_top1

    def _resolve_order(self, Y) -> np.ndarray:
        n_labels = Y.shape[1]
        order = self.order
        if isinstance(order, str):
            if order == "given":
                return np.arange(n_labels)
            if order == "random":
                return check_random_state(self.random_state).permutation(n_labels)
            if order == "frequency":
                return np.argsort(-Y.sum(axis=0).astype(np.int64), kind="stable")
            raise ValueError(f"order must be one of {_ORDERS} or a permutation of the label "
                             f"columns; got {order!r}")
        arr = np.asarray(order)
        if arr.ndim != 1 or arr.dtype.kind not in "iu" or sorted(arr.tolist()) != list(range(n_labels)):
            raise ValueError(f"order must be a permutation of range({n_labels}) (the label columns); "
                             f"got {order!r}")
        return arr.astype(np.int64)

    def _fit(self, X, Y):
        self.order_ = self._resolve_order(Y)
        base = self._base_classifier()
        self.estimators_ = []
        for pos, label in enumerate(self.order_):
            Xa = _augment(X, Y[:, self.order_[:pos]])
            self.estimators_.append(_fit_binary(base, Xa, Y[:, label]))

    def _predict_scores(self, X):
        n_labels = len(self.order_)
        pred = np.zeros((X.shape[0], n_labels), dtype=np.int64)
        scores = np.zeros((X.shape[0], n_labels))
        for pos, (label, model) in enumerate(zip(self.order_, self.estimators_)):
            Xa = _augment(X, pred[:, self.order_[:pos]])
            pred[:, label] = _binary_predict(model, Xa)
            scores[:, label] = _binary_scores(model, Xa)
        return pred, scores


class EnsembleClassifierChains(MultiLabelClassifierBase):
    """``n_chains`` classifier chains with random label orders (drawn from ``random_state``),
    all trained on the full training set (no bagging: the chains differ only in their order).
    ``predict_proba`` is the mean of the chains' scores; a label is predicted when that mean is
    above 0.5 (strictly).

    Attributes: ``chains_`` (fitted ClassifierChain objects), ``orders_``, ``classes_``.
    """

    def __init__(self, classifier=None, *, n_chains: int = 10, random_state=None, fallback_top1: bool = False):
        self.classifier = classifier
        self.n_chains = n_chains
        self.random_state = random_state
        self.fallback_top1 = fallback_top1

    def _check_params(self):
        super()._check_params()
        if not isinstance(self.n_chains, Integral) or isinstance(self.n_chains, bool) or self.n_chains < 1:
            raise ValueError(f"n_chains must be an int >= 1; got {self.n_chains!r}")

    def _fit(self, X, Y):
        rng = check_random_state(self.random_state)
        self.chains_ = []
        for _ in range(self.n_chains):
            chain = ClassifierChain(self.classifier, order=rng.permutation(Y.shape[1]))
            chain._fit(X, Y)
            self.chains_.append(chain)
        self.orders_ = np.array([c.order_ for c in self.chains_])

    def _predict_scores(self, X):
        scores = np.mean([c._predict_scores(X)[1] for c in self.chains_], axis=0)
        return (scores > 0.5).astype(np.int64), scores


# --------------------------------------------------------------------------- Label Powerset


class LabelPowerset(MultiLabelClassifierBase):
    """Each distinct label set of the training data is one class of a multi-class classifier.

    ``predict`` returns the label set of the class the classifier predicts; ``predict_proba``
    the marginal label probabilities, ``P(label j) = sum of P(class c) over the classes whose
    label set contains j``. Only label sets seen in training can be predicted. With one label
    set in training that set is always predicted.

    Attributes: ``labelsets_`` ((n_classes, n_labels) 0/1), ``estimator_`` (None when
    ``labelsets_`` has one row), ``classes_``, ``n_labels_``.
    """

    def __init__(self, classifier=None, *, fallback_top1: bool = False):
        self.classifier = classifier
        self.fallback_top1 = fallback_top1

    def _fit(self, X, Y):
        labelsets, codes = np.unique(Y, axis=0, return_inverse=True)
        self.labelsets_ = labelsets.astype(np.int64)
        codes = np.asarray(codes).ravel()
        self.estimator_ = None if len(labelsets) == 1 else clone(self._base_classifier()).fit(X, codes)

    def _predict_scores(self, X):
        n_sets = len(self.labelsets_)
        if self.estimator_ is None:
            return np.repeat(self.labelsets_, X.shape[0], axis=0), np.repeat(
                self.labelsets_.astype(np.float64), X.shape[0], axis=0)
        codes = np.asarray(self.estimator_.predict(X), dtype=np.int64)
        dist = _class_distribution(self.estimator_, X, n_sets)
        scores = np.clip(dist @ self.labelsets_, 0.0, 1.0)
        scores[:, self.labelsets_.all(axis=0)] = 1.0   # in every label set: exactly 1, not 1 - rounding
        return self.labelsets_[codes], scores


# --------------------------------------------------------------------------- RAkEL

_MODES = ("disjoint", "overlapping")
_ENUMERATE_LIMIT = 100_000


class RAkEL(MultiLabelClassifierBase):
    """RAndom k-labELsets (Tsoumakas et al.): Label Powerset models on random label subsets.

    ``mode="disjoint"`` (RAkELd): the labels are shuffled and cut into ``ceil(L / k)`` disjoint
    subsets of ``k = labelset_size`` labels (the last one may be smaller); every label is in
    exactly one model and ``n_models`` must be None.

    ``mode="overlapping"`` (RAkELo): ``n_models`` distinct k-subsets (default ``min(2L, C(L, k))``).
    The first ``ceil(L / k)`` form a random cover of all labels (a disjoint split, the last
    subset topped up to k with random other labels) so that every label is in some model; the
    rest are drawn uniformly among the unused k-subsets.

    Each label's score (``predict_proba``) is the mean LP marginal probability over the models
    that contain it; it is predicted when the mean of those models' 0/1 votes is at least
    ``threshold``. ``labelset_size`` larger than the number of labels is cut to it.

    Attributes: ``labelsets_`` (list of sorted label-index arrays), ``estimators_`` (fitted
    LabelPowerset per subset), ``classes_``, ``n_labels_``.
    """

    def __init__(self, classifier=None, *, labelset_size: int = 3, n_models=None, mode: str = "disjoint",
                 threshold: float = 0.5, random_state=None, fallback_top1: bool = False):
        self.classifier = classifier
        self.labelset_size = labelset_size
        self.n_models = n_models
        self.mode = mode
        self.threshold = threshold
        self.random_state = random_state
        self.fallback_top1 = fallback_top1

    def _check_params(self):
        super()._check_params()
        if (not isinstance(self.labelset_size, Integral) or isinstance(self.labelset_size, bool)
                or self.labelset_size < 1):
            raise ValueError(f"labelset_size must be an int >= 1; got {self.labelset_size!r}")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}; got {self.mode!r}")
        if self.mode == "disjoint" and self.n_models is not None:
            raise ValueError("n_models only applies to mode='overlapping' (RAkELd uses ceil(L / labelset_size) "
                             "models); leave it None")
        if self.n_models is not None and (not isinstance(self.n_models, Integral)
                                          or isinstance(self.n_models, bool) or self.n_models < 1):
            raise ValueError(f"n_models must be None or an int >= 1; got {self.n_models!r}")
        if not isinstance(self.threshold, Real) or not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a number in [0, 1]; got {self.threshold!r}")

    def _draw_labelsets(self, n_labels: int, rng) -> list[np.ndarray]:
        k = min(self.labelset_size, n_labels)
        perm = rng.permutation(n_labels)
        cover = [perm[i:i + k] for i in range(0, n_labels, k)]
        if self.mode == "disjoint":
            return [np.sort(s) for s in cover]
        # overlapping: top the last cover subset up to k labels, then add distinct random subsets
        last = cover[-1]
        if len(last) < k:
            others = np.setdiff1d(np.arange(n_labels), last)
            cover[-1] = np.concatenate([last, rng.choice(others, k - len(last), replace=False)])
        chosen = [tuple(sorted(int(i) for i in s)) for s in cover]
        total = math.comb(n_labels, k)
        n_models = self.n_models if self.n_models is not None else min(2 * n_labels, total)
        if n_models < len(chosen) or n_models > total:
            raise ValueError(f"n_models={n_models} is impossible for {n_labels} labels and labelset_size={k}: "
                             f"covering every label needs at least {len(chosen)} models and there are only "
                             f"{total} distinct subsets")
        seen = set(chosen)
        need = n_models - len(chosen)
        if need > 0 and total <= _ENUMERATE_LIMIT:
            pool = [c for c in itertools.combinations(range(n_labels), k) if c not in seen]
            picks = rng.choice(len(pool), need, replace=False)
            chosen += [pool[i] for i in sorted(picks)]
        else:
            while len(chosen) < n_models:
                c = tuple(sorted(int(i) for i in rng.choice(n_labels, k, replace=False)))
                if c not in seen:
                    seen.add(c)
                    chosen.append(c)
        return [np.array(c, dtype=np.int64) for c in chosen]

    def _fit(self, X, Y):
        rng = check_random_state(self.random_state)
        self.labelsets_ = self._draw_labelsets(Y.shape[1], rng)
        self.estimators_ = []
        for subset in self.labelsets_:
            lp = LabelPowerset(self.classifier)
            lp._fit(X, Y[:, subset])
            self.estimators_.append(lp)

    def _predict_scores(self, X):
        n_labels = self.n_labels_
        votes = np.zeros((X.shape[0], n_labels))
        scores = np.zeros((X.shape[0], n_labels))
        counts = np.zeros(n_labels)
        for subset, lp in zip(self.labelsets_, self.estimators_):
            pred, prob = lp._predict_scores(X)
            votes[:, subset] += pred
            scores[:, subset] += prob
            counts[subset] += 1
        counts = np.maximum(counts, 1)
        return (votes / counts >= self.threshold).astype(np.int64), scores / counts
