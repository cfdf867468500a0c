"""Per-label thresholds: tuned F1 equals a brute-force search; guards keep the default rule."""

from __future__ import annotations

import numpy as np
import pytest

from seq2labels.evaluation.thresholds import apply_thresholds, best_threshold, binary_f1, tune_thresholds


def _brute_force_f1(scores: np.ndarray, gold: np.ndarray) -> float:
    candidates = [*np.unique(scores), np.inf]
    return max(binary_f1(gold, scores >= t) for t in candidates)


@pytest.mark.parametrize("seed", range(6))
def test_best_threshold_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(40), 1 if seed % 2 else 3)              # seed-odd: many ties
    gold = rng.random(40) < scores * 0.8
    threshold, f1 = best_threshold(scores, gold)
    assert f1 == pytest.approx(_brute_force_f1(scores, gold))
    assert binary_f1(gold, scores >= threshold) == pytest.approx(f1)  # the threshold realises that F1


def test_threshold_sits_between_scores():
    threshold, f1 = best_threshold(np.array([0.9, 0.6, 0.2, 0.1]), np.array([1, 1, 0, 0]))
    assert f1 == 1.0 and threshold == pytest.approx(0.4)


@pytest.mark.parametrize("seed", range(4))
def test_tuned_rule_is_the_best_of_threshold_and_default_per_label(seed):
    rng = np.random.default_rng(100 + seed)
    scores = rng.random((60, 5))
    gold = rng.random((60, 5)) < scores * 0.7
    gold[:, 4] = False
    gold[:2, 4] = True                                                  # 2 positives: too few to tune
    decided = scores > 0.5
    thresholds = tune_thresholds(scores, decided, gold, min_positives=3, min_f1=0.0)
    assert np.isnan(thresholds[4])
    tuned = apply_thresholds(scores, decided, thresholds)
    for j in range(4):
        best = max(_brute_force_f1(scores[:, j], gold[:, j]), binary_f1(gold[:, j], decided[:, j]))
        assert binary_f1(gold[:, j], tuned[:, j]) == pytest.approx(best)
    assert (tuned[:, 4] == decided[:, 4]).all()


def test_default_rule_kept_when_it_is_already_best():
    scores = np.array([[0.9], [0.8], [0.3], [0.2]])
    gold = np.array([[1], [1], [1], [0]], dtype=bool)
    decided = gold.copy()                                               # the default rule is perfect
    assert np.isnan(tune_thresholds(scores, decided, gold)).all()


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="one shape"):
        tune_thresholds(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="do not fit"):
        apply_thresholds(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(3))


def test_a_threshold_below_the_f1_floor_is_not_used():
    """A label the default rule never gets right, whose best threshold only reaches F1 0.2."""
    scores = np.array([[0.9], [0.8], [0.7], [0.6], [0.5], [0.4], [0.3], [0.2], [0.1], [0.05]])
    gold = np.zeros((10, 1), dtype=bool)
    gold[[4, 9, 8], 0] = True
    decided = np.zeros((10, 1), dtype=bool)
    _, best = best_threshold(scores[:, 0], gold[:, 0])
    assert 0 < best < 0.6
    assert not np.isnan(tune_thresholds(scores, decided, gold, min_f1=0.0)).all()
    assert np.isnan(tune_thresholds(scores, decided, gold, min_f1=0.6)).all()


def _pooled_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    return binary_f1(gold.ravel(), pred.ravel())


@pytest.mark.parametrize("seed", range(4))
def test_micro_objective_is_a_coordinate_optimum_of_pooled_f1(seed):
    """No single label's threshold (any cut, or back to its default) raises pooled F1 further,
    and pooled F1 never falls below the decoded decisions'."""
    rng = np.random.default_rng(200 + seed)
    scores = rng.random((80, 6))
    gold = rng.random((80, 6)) < scores * (0.4 + 0.1 * np.arange(6))
    decided = scores > 0.6
    thresholds = tune_thresholds(scores, decided, gold, min_f1=0.0, objective="micro_f1")
    tuned = apply_thresholds(scores, decided, thresholds)
    best = _pooled_f1(gold, tuned)
    assert best >= _pooled_f1(gold, decided)
    for j in range(6):
        for alternative in [decided[:, j], *(scores[:, j] >= t for t in [*np.unique(scores[:, j]), np.inf])]:
            trial = tuned.copy()
            trial[:, j] = alternative
            assert _pooled_f1(gold, trial) <= best + 1e-12


def test_micro_objective_declines_a_threshold_that_only_helps_its_own_label():
    """Label 1's best own threshold adds positives at 40% precision: its F1 rises, pooled F1 (0.9
    from label 0) falls, so micro_f1 keeps the decoded decision where macro_f1 takes it."""
    n = 40
    gold = np.zeros((n, 2), dtype=bool)
    gold[:30, 0] = True                                                 # label 0: frequent, decoded perfectly
    gold[[30, 31, 32, 33], 1] = True                                    # label 1: 4 positives
    scores = np.zeros((n, 2))
    scores[:30, 0] = 0.9
    scores[30:34, 1] = 0.5                                              # 4 positives and 6 negatives tie at 0.5
    scores[34:, 1] = 0.5
    decided = gold.copy()
    decided[:, 1] = False
    decided[30, 1] = True                                               # decoded: 1 of 4 (F1 0.4)
    scores[30, 1] = 0.9
    macro = tune_thresholds(scores, decided, gold, min_f1=0.0, objective="macro_f1")
    micro = tune_thresholds(scores, decided, gold, min_f1=0.0, objective="micro_f1")
    assert not np.isnan(macro[1]) and np.isnan(micro[1])
    assert binary_f1(gold[:, 1], apply_thresholds(scores, decided, macro)[:, 1]) > binary_f1(gold[:, 1], decided[:, 1])
    assert _pooled_f1(gold, apply_thresholds(scores, decided, micro)) > _pooled_f1(
        gold, apply_thresholds(scores, decided, macro))


def test_unknown_objective_is_an_error():
    with pytest.raises(ValueError, match="objective must be one of macro_f1, micro_f1"):
        tune_thresholds(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)), objective="f2")
