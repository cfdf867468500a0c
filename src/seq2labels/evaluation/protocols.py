"""Evaluation protocols for multi-label estimators: repeated stratified k-fold and train/test.

Folds come from iterative stratification (Sechidis et al. 2011) as implemented by the
``iterative-stratification`` package, so every fold keeps each label's share of positives close
to the whole data's. Metrics are :func:`seq2labels.evaluation.metrics.multilabel_metrics`, so cross-validated
numbers and SGM's numbers are computed by the same code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone

from seq2labels.evaluation.metrics import METRIC_NAMES, multilabel_metrics, per_label_report, top1_fallback

__all__ = [
    "repeated_kfold_indices",
    "cross_validate",
    "train_test_evaluate",
    "CVResult",
    "TrainTestResult",
    "TIMING_NAMES",
]

TIMING_NAMES: tuple[str, ...] = ("fit_seconds", "predict_docs_per_s")


def _indicator(Y, name: str = "Y") -> np.ndarray:
    """Y as a dense 2-D 0/1 array, or ValueError."""
    arr = Y.toarray() if sp.issparse(Y) else np.asarray(Y)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n_samples, n_labels) 0/1 matrix; got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has zero label columns")
    if arr.dtype.kind not in "biuf" or not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must contain only 0 and 1")
    return arr.astype(np.uint8)


def repeated_kfold_indices(Y, n_splits: int = 10, n_repeats: int = 3,
                           random_state: int | None = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(train_idx, test_idx)`` for ``n_repeats`` x ``n_splits`` iteratively stratified folds.

    Within a repeat every sample is in exactly one test fold; repeats differ in their random
    tie-breaking (all drawn from ``random_state``). A single label column is stratified together
    with its complement (the package refuses a one-column target).
    """
    from iterstrat.ml_stratifiers import RepeatedMultilabelStratifiedKFold

    Y = _indicator(Y)
    if Y.shape[1] == 1:
        Y = np.hstack([Y, 1 - Y])
    if not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"n_splits must be an int >= 2; got {n_splits!r}")
    if n_splits > Y.shape[0]:
        raise ValueError(f"n_splits={n_splits} is more than the number of samples ({Y.shape[0]})")
    splitter = RepeatedMultilabelStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
    for train_idx, test_idx in splitter.split(np.zeros((Y.shape[0], 1)), Y):
        yield np.asarray(train_idx), np.asarray(test_idx)


# --------------------------------------------------------------------------- helpers


def _take(X, idx: np.ndarray):
    """Rows ``idx`` of an array, sparse matrix, pandas object or list (e.g. of texts)."""
    if hasattr(X, "iloc"):
        return X.iloc[idx]
    if sp.issparse(X) or isinstance(X, np.ndarray):
        return X[idx]
    return [X[i] for i in idx]


def _n_rows(X) -> int:
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _label_scores(estimator, X) -> np.ndarray:
    """(n, L) per-label scores: predict_proba (a list of (n, 2) arrays is taken column 1 each),
    else decision_function."""
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        if isinstance(proba, list):
            return np.column_stack([np.asarray(p)[:, -1] for p in proba])
        return np.asarray(proba, dtype=np.float64)
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=np.float64)
    raise ValueError(f"fallback_top1 needs scores, but {type(estimator).__name__} has neither predict_proba nor "
                     "decision_function")


def _fit_predict(estimator, X_train, Y_train, X_test, fallback_top1: bool) -> tuple[Any, np.ndarray, dict]:
    """Fit a clone, predict the test rows; return (fitted, predictions, timings)."""
    model = clone(estimator)
    start = time.perf_counter()
    model.fit(X_train, Y_train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    pred = model.predict(X_test)
    pred = pred.toarray() if sp.issparse(pred) else np.asarray(pred)
    if fallback_top1:
        pred = top1_fallback(_label_scores(model, X_test), pred)
    predict_seconds = time.perf_counter() - start
    n_test = _n_rows(X_test)
    timings = {"fit_seconds": fit_seconds,
               "predict_docs_per_s": n_test / predict_seconds if predict_seconds > 0 else float("inf")}
    return model, pred, timings


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


# --------------------------------------------------------------------------- cross-validation


@dataclass
class CVResult:
    """Per-fold results of :func:`cross_validate`.

    ``folds``: one dict per fold with ``repeat``, ``fold``, ``n_train``, ``n_test``, every
    metric of ``METRIC_NAMES``, ``fit_seconds`` and ``predict_docs_per_s`` (test documents per
    second of ``predict``, fallback included).
    """

    estimator: str
    n_splits: int
    n_repeats: int
    random_state: int | None
    fallback_top1: bool
    folds: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, tuple[float, float]]:
        """``{metric: (mean, std)}`` over all folds of all repeats (sample std, ddof=1), for every
        metric and the two timings."""
        return {name: _mean_std([f[name] for f in self.folds]) for name in (*METRIC_NAMES, *TIMING_NAMES)}

    def to_markdown(self, digits: int = 4) -> str:
        """A Markdown table: metric | mean | std, headed by the protocol."""
        lines = [f"{self.estimator}: {self.n_repeats} x {self.n_splits}-fold iteratively stratified CV "
                 f"(random_state={self.random_state}, fallback_top1={self.fallback_top1})", "",
                 "| metric | mean | std |", "|---|---:|---:|"]
        for name, (mean, std) in self.summary().items():
            d = 1 if name == "predict_docs_per_s" else digits
            lines.append(f"| {name} | {mean:.{d}f} | {std:.{d}f} |")
        return "\n".join(lines)


def cross_validate(estimator, X, Y, n_splits: int = 10, n_repeats: int = 3, random_state: int | None = 0,
                   fallback_top1: bool = False) -> CVResult:
    """Fit a clone of ``estimator`` on every training fold and score its test fold.

    ``X``: array, sparse matrix or list (e.g. texts for a :func:`~seq2labels.baselines.text_pipeline`).
    ``fallback_top1=True`` gives each test document with no predicted label its top-scoring
    label (from ``predict_proba``, else ``decision_function``), whatever the estimator.
    """
    Y = _indicator(Y)
    if _n_rows(X) != Y.shape[0]:
        raise ValueError(f"X has {_n_rows(X)} rows but Y has {Y.shape[0]}")
    result = CVResult(estimator=type(estimator).__name__ if not hasattr(estimator, "steps")
                      else " + ".join(type(s).__name__ for _, s in estimator.steps),
                      n_splits=n_splits, n_repeats=n_repeats, random_state=random_state, fallback_top1=fallback_top1)
    for i, (train_idx, test_idx) in enumerate(repeated_kfold_indices(Y, n_splits, n_repeats, random_state)):
        _, pred, timings = _fit_predict(estimator, _take(X, train_idx), Y[train_idx], _take(X, test_idx),
                                        fallback_top1)
        fold = {"repeat": i // n_splits, "fold": i % n_splits, "n_train": len(train_idx), "n_test": len(test_idx)}
        fold.update(multilabel_metrics(Y[test_idx], pred))
        fold.update(timings)
        result.folds.append(fold)
    return result


# --------------------------------------------------------------------------- train / test


@dataclass
class TrainTestResult:
    """``metrics`` (``METRIC_NAMES`` + timings), ``per_label`` (see
    :func:`seq2labels.evaluation.metrics.per_label_report`) and the fitted ``estimator``."""

    metrics: dict[str, float]
    per_label: list[dict]
    estimator: Any = None

    def to_markdown(self, digits: int = 4) -> str:
        lines = ["| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.{digits}f} |" for k, v in self.metrics.items()]
        lines += ["", "| label | precision | recall | f1 | support |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['label']} | {r['precision']:.{digits}f} | {r['recall']:.{digits}f} | "
                  f"{r['f1']:.{digits}f} | {r['support']} |" for r in self.per_label]
        return "\n".join(lines)


def train_test_evaluate(estimator, X_train, Y_train, X_test, Y_test, label_names: Sequence[str] | None = None,
                        fallback_top1: bool = False) -> TrainTestResult:
    """Fit a clone of ``estimator`` on the training set, evaluate on the test set.

    ``label_names`` default to ``label_0, label_1, ...``. The estimator passed in is not modified;
    the fitted clone is returned in the result.
    """
    Y_train, Y_test = _indicator(Y_train, "Y_train"), _indicator(Y_test, "Y_test")
    if Y_train.shape[1] != Y_test.shape[1]:
        raise ValueError(f"Y_train has {Y_train.shape[1]} label columns but Y_test has {Y_test.shape[1]}")
    names = list(label_names) if label_names is not None else [f"label_{j}" for j in range(Y_test.shape[1])]
    model, pred, timings = _fit_predict(estimator, X_train, Y_train, X_test, fallback_top1)
    metrics = multilabel_metrics(Y_test, pred)
    metrics.update(timings)
    return TrainTestResult(metrics=metrics, per_label=per_label_report(Y_test, pred, names), estimator=model)
