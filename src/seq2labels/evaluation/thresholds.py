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

Two objectives. ``macro_f1`` (the default) maximises each label's own F1, which is exactly
maximising macro-F1, since labels do not interact. ``micro_f1`` maximises the F1 of all
decisions pooled: a label's best threshold then depends on the others' counts (a frequent label
that already predicts well should add fewer doubtful positives than its own F1 would like), so
labels are tuned one at a time against the pooled counts, most frequent first, in sweeps until
no threshold changes (coordinate ascent; each step can only raise pooled validation F1).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_F1", "MIN_POSITIVES", "OBJECTIVES", "apply_thresholds", "best_threshold", "binary_f1",
           "tune_thresholds"]

MIN_POSITIVES = 3  # validation positives a label needs before it gets its own threshold
MIN_F1 = 0.3       # validation F1 a threshold must reach to be used
OBJECTIVES = ("macro_f1", "micro_f1")
MAX_SWEEPS = 10    # micro_f1: coordinate-ascent sweeps over the labels (it settles in 2-4)


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
    gold = np.asarray(gold, dtype=bool)
    true_positives, predicted, thresholds = _cut_points(scores, gold)
    f1 = 2.0 * true_positives / (predicted + gold.sum())               # (cuts,)
    best = int(np.argmax(f1))                                          # first = highest threshold on ties
    return float(thresholds[best]), float(f1[best])


def _cut_points(scores: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every way a threshold can split one label's documents, highest threshold first:
    (true positives, predicted positives, threshold) per cut, each (cuts,)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_gold = scores[order], np.asarray(gold, dtype=bool)[order]
    true_positives = np.cumsum(sorted_gold)                            # (n,) true positives of the top k
    predicted = np.arange(1, len(scores) + 1)                          # (n,) predicted positives
    boundary = np.append(sorted_scores[1:] < sorted_scores[:-1], True)  # (n,) a threshold can cut after k
    below = np.append(sorted_scores[1:], min(sorted_scores[-1], 0.0) - 1.0)  # (n,) next lower score
    thresholds = (sorted_scores + below) / 2.0                         # (n,)
    return true_positives[boundary], predicted[boundary], thresholds[boundary]


def tune_thresholds(scores: np.ndarray, decided: np.ndarray, gold: np.ndarray,
                    min_positives: int = MIN_POSITIVES, min_f1: float = MIN_F1,
                    objective: str = "macro_f1") -> np.ndarray:
    """(n_labels,) thresholds from validation ``scores``, default decisions ``decided`` and
    ``gold`` (all (n_docs, n_labels)); ``NaN`` where the default rule stays (see module doc)."""
    scores, decided, gold = np.asarray(scores, dtype=np.float64), np.asarray(decided, bool), np.asarray(gold, bool)
    if not scores.shape == decided.shape == gold.shape or scores.ndim != 2:
        raise ValueError(f"scores, decisions and gold must be 2-D of one shape; got {scores.shape}, "
                         f"{decided.shape}, {gold.shape}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    thresholds = np.full(scores.shape[1], np.nan)
    if scores.shape[0] == 0:
        return thresholds
    if objective == "micro_f1":
        return _tune_pooled(scores, decided, gold, min_positives, min_f1)
    for j in range(scores.shape[1]):
        if gold[:, j].sum() < min_positives:
            continue
        threshold, f1 = best_threshold(scores[:, j], gold[:, j])
        if f1 > binary_f1(gold[:, j], decided[:, j]) and f1 >= min_f1:
            thresholds[j] = threshold
    return thresholds


def _tune_pooled(scores: np.ndarray, decided: np.ndarray, gold: np.ndarray, min_positives: int,
                 min_f1: float) -> np.ndarray:
    """``micro_f1``: coordinate ascent on pooled F1 = 2 TP / (predicted + gold), one label at a time."""
    thresholds = np.full(scores.shape[1], np.nan)
    current = decided.copy()                                           # (docs, labels) decisions so far
    gold_total = int(gold.sum())
    eligible = [j for j in np.argsort(-gold.sum(axis=0), kind="stable") if gold[:, j].sum() >= min_positives]
    cuts = {j: _cut_points(scores[:, j], gold[:, j]) for j in eligible}
    for _ in range(MAX_SWEEPS):
        changed = False
        for j in eligible:
            others_tp = int((current & gold).sum() - (current[:, j] & gold[:, j]).sum())
            others_total = int(current.sum() - current[:, j].sum()) + gold_total  # others' predictions + all gold
            true_positives, predicted, candidates = cuts[j]
            own_f1 = 2.0 * true_positives / (predicted + gold[:, j].sum())      # (cuts,)
            pooled = 2.0 * (others_tp + true_positives) / (others_total + predicted)  # (cuts,)
            pooled = np.where(own_f1 >= min_f1, pooled, -1.0)
            best = int(np.argmax(pooled))                              # first = highest threshold on ties
            default_tp, default_predicted = int((decided[:, j] & gold[:, j]).sum()), int(decided[:, j].sum())
            default = 2.0 * (others_tp + default_tp) / (others_total + default_predicted)
            new = float(candidates[best]) if pooled[best] > default else np.nan
            if not (new == thresholds[j] or (np.isnan(new) and np.isnan(thresholds[j]))):
                changed = True
                thresholds[j] = new
                current[:, j] = decided[:, j] if np.isnan(new) else scores[:, j] >= new
        if not changed:
            break
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
