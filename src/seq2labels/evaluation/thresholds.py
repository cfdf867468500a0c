"""Per-label decision thresholds tuned on validation data (pure numpy, no model).

A model gives every document a score per label (SGM: the highest probability the label got
along the decoded path; a baseline: its decision score). A label's threshold turns its
scores into yes/no: ``score >= threshold``. One threshold per label is chosen to maximise
that label's F1 on the validation documents. Rare labels profit most: the decoder's
stopping rule is tuned for the frequent ones.

Guards, so tuning never makes the validation numbers worse: a label with fewer than
``min_positives`` validation positives keeps the default rule (too little evidence), and so
does a label whose best threshold does not beat the default rule's F1 on validation, or
reaches less than ``min_f1`` there. The floor matters: on Reuters a label the decoder never
got right (F1 0) had its "best" threshold at 0.0001 (F1 0.05 on validation), which put it on
480 of 3019 test documents and cost 0.05 micro-F1. Kept labels get ``NaN``: "use the
default decision".
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_F1", "MIN_POSITIVES", "apply_thresholds", "best_threshold", "binary_f1", "tune_thresholds"]

MIN_POSITIVES = 3  # validation positives a label needs before it gets its own threshold
MIN_F1 = 0.3       # validation F1 a threshold must reach to be used


def binary_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    """F1 of one label column (0 when there are no positives at all, as sklearn's zero_division=0)."""
    gold, pred = np.asarray(gold, dtype=bool), np.asarray(pred, dtype=bool)
    tp = int(np.sum(gold & pred))
    denominator = int(gold.sum()) + int(pred.sum())
    return 2.0 * tp / denominator if denominator else 0.0


def best_threshold(scores: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of ``scores >= threshold`` against ``gold`` for one label.

    Predicting the ``k`` highest scores is the only family of choices a threshold has, so
    every ``k`` between distinct scores is tried in one sorted pass. The threshold sits
    midway between the ``k``-th and the next lower score (margin on both sides); ties in F1
    go to the higher threshold (fewer positives).
    """
    scores = np.asarray(scores, dtype=np.float64)
    gold = np.asarray(gold, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_gold = scores[order], gold[order]
    tp = np.cumsum(sorted_gold)                                        # (n,) true positives of the top k+1
    k = np.arange(1, len(scores) + 1)                                  # (n,) predicted positives
    f1 = 2.0 * tp / (k + gold.sum())                                   # (n,)
    boundary = np.append(sorted_scores[1:] < sorted_scores[:-1], True)  # (n,) a threshold can cut after k
    f1 = np.where(boundary, f1, -1.0)
    best = int(np.argmax(f1))                                          # first = highest threshold on ties
    below = sorted_scores[best + 1] if best + 1 < len(scores) else min(sorted_scores[best], 0.0) - 1.0
    return float((sorted_scores[best] + below) / 2.0), float(f1[best])


def tune_thresholds(scores: np.ndarray, decided: np.ndarray, gold: np.ndarray,
                    min_positives: int = MIN_POSITIVES, min_f1: float = MIN_F1) -> np.ndarray:
    """(n_labels,) thresholds from validation ``scores``, default decisions ``decided`` and
    ``gold`` (all (n_docs, n_labels)); ``NaN`` where the default rule stays (see module doc)."""
    scores, decided, gold = np.asarray(scores, dtype=np.float64), np.asarray(decided, bool), np.asarray(gold, bool)
    if not scores.shape == decided.shape == gold.shape or scores.ndim != 2:
        raise ValueError(f"scores, decisions and gold must be 2-D of one shape; got {scores.shape}, "
                         f"{decided.shape}, {gold.shape}")
    thresholds = np.full(scores.shape[1], np.nan)
    if scores.shape[0] == 0:
        return thresholds
    for j in range(scores.shape[1]):
        if gold[:, j].sum() < min_positives:
            continue
        threshold, f1 = best_threshold(scores[:, j], gold[:, j])
        if f1 > binary_f1(gold[:, j], decided[:, j]) and f1 >= min_f1:
            thresholds[j] = threshold
    return thresholds


def apply_thresholds(scores: np.ndarray, decided: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(n_docs, n_labels) bool decisions: ``scores >= threshold`` where a label has one, else ``decided``."""
    scores, decided = np.asarray(scores, dtype=np.float64), np.asarray(decided, bool)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if scores.shape != decided.shape or scores.ndim != 2 or thresholds.shape != (scores.shape[1],):
        raise ValueError(f"scores {scores.shape}, decisions {decided.shape} and thresholds {thresholds.shape} "
                         "do not fit together")
    tuned = ~np.isnan(thresholds)                                      # (n_labels,)
    return np.where(tuned[None, :], scores >= np.where(tuned, thresholds, 0.0)[None, :], decided)
