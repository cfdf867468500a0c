"""Multi-label evaluation metrics.

Every set metric is delegated to scikit-learn (``zero_division=0`` everywhere) so
that numbers reported by seq2labels agree exactly with scikit-learn and with
toolkits built on it (e.g. LibMultiLabel). Only the SGM-specific
``label_position_deviation`` and small glue (binarizing, fallback, formatting)
are implemented here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import (
    accuracy_score,
    hamming_loss,
    jaccard_score,
    precision_recall_fscore_support,
)

__all__ = [
    "METRIC_NAMES",
    "multilabel_metrics",
    "label_position_deviation",
    "binarize",
    "evaluate_label_lists",
    "per_label_report",
    "top1_fallback",
    "format_metrics",
    "RARE_LABEL_MAX_TRAIN",
    "rare_label_metrics",
]

METRIC_NAMES: tuple[str, ...] = (
    "micro_f1",
    "macro_f1",
    "example_f1",
    "subset_accuracy",
    "hamming_loss",
    "micro_precision",
    "micro_recall",
    "macro_precision",
    "macro_recall",
    "example_precision",
    "example_recall",
    "jaccard",
)

# A label is rare when it has fewer training documents than this (rare_macro_f1).
RARE_LABEL_MAX_TRAIN = 50

# How many unseen label names the evaluation warning spells out before summarising.
_MAX_NAMED_EXTRA_LABELS = 20

Indicator = Any  # np.ndarray or a scipy sparse matrix of 0/1


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------

def _is_binary_dense(a: np.ndarray) -> bool:
    """True when every entry is 0 or 1 (NaN and other values fail)."""
    return bool(np.all((a == 0) | (a == 1)))


def _as_indicator(y: Indicator, name: str) -> Indicator:
    """Return ``y`` as a 2-D uint8 indicator (CSR if sparse), or raise ValueError.

    Converting once up front keeps sklearn from guessing a different target
    type (e.g. "continuous" for 0.0/1.0 floats or "multiclass" for stray 2s).
    """
    if sp.issparse(y):
        if y.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_docs, n_labels); got shape {y.shape}")
        csr = sp.csr_matrix(y)
        if not _is_binary_dense(csr.data):
            raise ValueError(f"{name} must contain only 0 and 1")
        out = csr.astype(np.uint8)
        out.eliminate_zeros()
        return out
    arr = np.asarray(y)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_docs, n_labels); got shape {arr.shape}")
    if arr.dtype == object or not _is_binary_dense(arr):
        raise ValueError(f"{name} must contain only 0 and 1")
    return arr.astype(np.uint8)


def _validate_pair(y_true: Indicator, y_pred: Indicator) -> tuple[Indicator, Indicator]:
    """Check both indicators agree in shape and are non-empty; sparse wins if mixed."""
    t = _as_indicator(y_true, "y_true")
    p = _as_indicator(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same shape; got {t.shape} and {p.shape}")
    n_docs, n_labels = t.shape
    if n_docs == 0:
        raise ValueError("cannot compute metrics on zero documents (n_docs == 0)")
    if n_labels == 0:
        raise ValueError("cannot compute metrics with zero labels (n_labels == 0)")
    if sp.issparse(t) != sp.issparse(p):
        t, p = sp.csr_matrix(t), sp.csr_matrix(p)
    return t, p


def _pad_single_label(y_true: Indicator, y_pred: Indicator) -> tuple[Indicator, Indicator, list[int]]:
    """Make a one-label problem look multi-label to sklearn.

    sklearn treats an (n, 1) indicator as *binary* classification, where
    sample-averaged metrics are refused and micro averages count class 0 too.
    An extra all-zero column in both matrices adds no tp/fp/fn to any document,
    and ``labels=[0]`` keeps it out of micro/macro/per-label results, so the
    numbers are exactly the multi-label ones.
    """
    n_labels = y_true.shape[1]
    labels = list(range(n_labels))
    if n_labels > 1:
        return y_true, y_pred, labels
    if sp.issparse(y_true):
        pad = sp.csr_matrix((y_true.shape[0], 1), dtype=np.uint8)
        return sp.hstack([y_true, pad], format="csr"), sp.hstack([y_pred, pad], format="csr"), labels
    pad = np.zeros((y_true.shape[0], 1), dtype=np.uint8)
    return np.hstack([y_true, pad]), np.hstack([y_pred, pad]), labels


# ---------------------------------------------------------------------------
# indicator-matrix metrics
# ---------------------------------------------------------------------------

def _prf(y_true: Indicator, y_pred: Indicator, labels: list[int], average: str) -> tuple[float, float, float]:
    """Precision, recall, F1 for one averaging mode, restricted to the real label columns."""
    p, r, f, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=average, zero_division=0
    )
    return float(p), float(r), float(f)


def _exact_match_scores(y_true: Indicator, y_pred: Indicator) -> tuple[float, float]:
    """Subset accuracy and Hamming loss on the unpadded columns.

    Padding would halve the Hamming loss of a one-label problem, and sklearn
    refuses a sparse (n, 1) input, so that case goes in as a dense 1-D vector,
    where both metrics mean exactly the same thing.
    """
    if y_true.shape[1] == 1:
        y_true, y_pred = _dense_column(y_true), _dense_column(y_pred)
    return float(accuracy_score(y_true, y_pred)), float(hamming_loss(y_true, y_pred))


def _dense_column(y: Indicator) -> np.ndarray:
    """The single column of an (n, 1) indicator as a dense 1-D array."""
    return (y.toarray() if sp.issparse(y) else np.asarray(y)).ravel()


def multilabel_metrics(y_true: Indicator, y_pred: Indicator) -> dict[str, float]:
    """All standard multi-label metrics, keyed and ordered by ``METRIC_NAMES``.

    ``y_true`` and ``y_pred`` are (n_docs, n_labels) 0/1 arrays, numpy or scipy
    sparse. Raises ValueError for shape mismatch, non-2-D, non-binary or empty input.

    Example-based ("samples") precision/recall/F1 and ``jaccard`` follow
    scikit-learn with ``zero_division=0``: a document whose gold *and*
    predicted label sets are both empty scores 0 (not 1) for that document.
    """
    t, p = _validate_pair(y_true, y_pred)
    subset, hamming = _exact_match_scores(t, p)
    t, p, labels = _pad_single_label(t, p)
    micro_p, micro_r, micro_f = _prf(t, p, labels, "micro")
    macro_p, macro_r, macro_f = _prf(t, p, labels, "macro")
    ex_p, ex_r, ex_f = _prf(t, p, labels, "samples")
    jacc = float(jaccard_score(t, p, labels=labels, average="samples", zero_division=0))
    values = {
        "micro_f1": micro_f,
        "macro_f1": macro_f,
        "example_f1": ex_f,
        "subset_accuracy": subset,
        "hamming_loss": hamming,
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "macro_precision": macro_p,
        "macro_recall": macro_r,
        "example_precision": ex_p,
        "example_recall": ex_r,
        "jaccard": jacc,
    }
    return {name: values[name] for name in METRIC_NAMES}


def per_label_report(y_true: Indicator, y_pred: Indicator, label_names: Sequence[str]) -> list[dict]:
    """One dict per label (label, precision, recall, f1, support), in column order.

    Useful to find which labels a model never gets right; values are sklearn's
    ``average=None`` results with ``zero_division=0``.
    """
    t, p = _validate_pair(y_true, y_pred)
    names = list(label_names)
    if len(names) != t.shape[1]:
        raise ValueError(f"got {len(names)} label names for {t.shape[1]} label columns")
    t, p, labels = _pad_single_label(t, p)
    prec, rec, f1, support = precision_recall_fscore_support(
        t, p, labels=labels, average=None, zero_division=0
    )
    return [
        {"label": name, "precision": float(prec[i]), "recall": float(rec[i]),
         "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(names)
    ]


def top1_fallback(scores: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Give every row with no predicted label its highest-scoring label.

    Threshold-based baselines can predict nothing for a document, while every
    document in these data sets has at least one label; this avoids scoring
    an empty set. Returns a new array (input untouched); ties go to the lowest
    column index (``np.argmax``).
    """
    scores = np.asarray(scores)
    pred = np.array(y_pred, copy=True)
    if scores.ndim != 2 or scores.shape != pred.shape:
        raise ValueError(
            f"scores and y_pred must be 2-D with the same shape; got {scores.shape} and {pred.shape}"
        )
    if pred.shape[1] == 0:
        raise ValueError("cannot pick a fallback label when there are zero labels")
    empty_rows = np.flatnonzero(~np.any(pred != 0, axis=1))
    pred[empty_rows, np.argmax(scores[empty_rows], axis=1)] = 1
    return pred


# ---------------------------------------------------------------------------
# ordered label lists
# ---------------------------------------------------------------------------

def _check_same_length(gold: Sequence, pred: Sequence) -> None:
    """Gold and predictions must pair up one-to-one by document."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} documents but pred has {len(pred)}")


def _first_positions(labels: Sequence[str]) -> dict[str, int]:
    """Label -> index of its first occurrence (a repeated label keeps its first slot)."""
    positions: dict[str, int] = {}
    for i, label in enumerate(labels):
        positions.setdefault(label, i)
    return positions


def label_position_deviation(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Mean |position in pred - position in gold| over correctly predicted labels.

    SGM emits labels in order, so this measures how far a correct label lands
    from its gold slot. The average is over all correct labels of all documents
    (not per document). Positions are 0-based first occurrences. Returns 0.0
    when no label is correct anywhere, so the value is never NaN; read it
    together with recall.
    """
    _check_same_length(gold, pred)
    total, count = 0, 0
    for gold_labels, pred_labels in zip(gold, pred):
        gold_pos = _first_positions(gold_labels)
        for label, p_pos in _first_positions(pred_labels).items():
            if label in gold_pos:
                total += abs(p_pos - gold_pos[label])
                count += 1
    return total / count if count else 0.0


def binarize(label_lists: Sequence[Sequence[str]], columns: Sequence[str]) -> np.ndarray:
    """(n_docs, len(columns)) uint8 indicator matrix of label lists.

    A label missing from ``columns`` raises ValueError instead of being dropped,
    because silently dropping it would inflate every metric.
    """
    index: dict[str, int] = {}
    for j, name in enumerate(columns):
        if name in index:
            raise ValueError(f"duplicate column label {name!r}")
        index[name] = j
    out = np.zeros((len(label_lists), len(index)), dtype=np.uint8)
    for i, labels in enumerate(label_lists):
        if isinstance(labels, str):
            raise ValueError(f"document {i}: expected a list of labels, got the string {labels!r}")
        for label in labels:
            if label not in index:
                raise ValueError(f"document {i}: label {label!r} is not one of the columns")
            out[i, index[label]] = 1
    return out


def _extra_labels(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                  label_names: Sequence[str]) -> list[str]:
    """Sorted labels that occur in gold or pred but not in ``label_names``."""
    known = set(label_names)
    seen = {label for doc in (*gold, *pred) for label in doc}
    return sorted(seen - known)


def _warn_extra_labels(extra: list[str]) -> None:
    """One warning naming labels unknown to the model's vocabulary."""
    shown = ", ".join(repr(x) for x in extra[:_MAX_NAMED_EXTRA_LABELS])
    more = len(extra) - _MAX_NAMED_EXTRA_LABELS
    suffix = f" ... and {more} more" if more > 0 else ""
    warnings.warn(
        f"{len(extra)} label(s) not in label_names were added as extra columns "
        f"(they count as misses/false positives): {shown}{suffix}",
        UserWarning,
        stacklevel=3,
    )


def evaluate_label_lists(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                         label_names: Sequence[str], train_counts: Mapping[str, int] | None = None
                         ) -> dict[str, float]:
    """All metrics from ordered label lists: ``multilabel_metrics`` plus
    ``label_position_deviation`` and ``n_docs``; with ``train_counts`` (training documents
    per label) also ``rare_macro_f1`` and ``rare_label_count`` (see :func:`rare_label_metrics`).

    Labels not in ``label_names`` (e.g. a gold label seen only in the test set)
    get extra columns, sorted, after ``label_names``: such a gold label counts
    as a miss rather than silently vanishing. One UserWarning names them.
    """
    _check_same_length(gold, pred)
    extra = _extra_labels(gold, pred, label_names)
    if extra:
        _warn_extra_labels(extra)
    columns = [*label_names, *extra]
    y_true, y_pred = binarize(gold, columns), binarize(pred, columns)
    metrics: dict[str, float] = multilabel_metrics(y_true, y_pred)
    metrics["label_position_deviation"] = label_position_deviation(gold, pred)
    metrics["n_docs"] = len(gold)
    if train_counts is not None:
        metrics.update(rare_label_metrics(y_true, y_pred, columns, train_counts))
    return metrics


def rare_label_metrics(y_true: Indicator, y_pred: Indicator, columns: Sequence[str],
                       train_counts: Mapping[str, int], max_train: int = RARE_LABEL_MAX_TRAIN) -> dict[str, float]:
    """Macro-F1 over the rare labels: the columns with fewer than ``max_train`` training documents.

    A column absent from ``train_counts`` (a label never seen in training) has 0 and is rare.
    Every rare column counts, as in ``macro_f1`` (a rare label neither in gold nor predicted
    scores 0). Returns ``rare_label_count`` and, when it is not 0, ``rare_macro_f1``.
    """
    rare = [j for j, name in enumerate(columns) if int(train_counts.get(name, 0)) < max_train]
    out: dict[str, float] = {"rare_label_count": len(rare)}
    if rare:
        t, p = _validate_pair(y_true, y_pred)
        t, p, _ = _pad_single_label(t, p)
        out["rare_macro_f1"] = _prf(t, p, rare, "macro")[2]
    return out


# ---------------------------------------------------------------------------
# text output
# ---------------------------------------------------------------------------

def _format_value(value: Any, digits: int) -> str:
    """Integers (counts) stay integers; real numbers get fixed ``digits`` decimals."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _default_keys(metrics: Mapping[str, Any]) -> list[str]:
    """Table order: ``METRIC_NAMES`` first, then any other keys as given."""
    known = [k for k in METRIC_NAMES if k in metrics]
    return known + [k for k in metrics if k not in METRIC_NAMES]


def format_metrics(metrics: Mapping[str, Any], keys: Sequence[str] | None = None, digits: int = 4) -> str:
    """A small aligned two-column (metric, value) text table for CLI output."""
    chosen = _default_keys(metrics) if keys is None else list(keys)
    missing = [k for k in chosen if k not in metrics]
    if missing:
        raise ValueError(f"metrics has no key(s): {', '.join(missing)}")
    rows = [("metric", "value")] + [(k, _format_value(metrics[k], digits)) for k in chosen]
    name_w = max(len(r[0]) for r in rows)
    value_w = max(len(r[1]) for r in rows)
    return "\n".join(f"{name:<{name_w}}  {value:>{value_w}}" for name, value in rows)
