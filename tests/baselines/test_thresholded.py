"""ValidationThresholds: a baseline with per-label thresholds tuned on held-out training rows."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from seq2labels.baselines import BinaryRelevance
from seq2labels.baselines.thresholded import ValidationThresholds
from seq2labels.evaluation.thresholds import apply_thresholds, tune_thresholds


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 6))
    logits = X @ rng.normal(size=(6, 4)) - np.array([0.0, 1.5, 2.5, 3.0])  # rarer labels to the right
    Y = (rng.random((300, 4)) < 1 / (1 + np.exp(-logits))).astype(int)
    return X, Y


def test_thresholds_are_the_tuning_rule_on_the_held_out_rows():
    X, Y = _data()
    base = BinaryRelevance(LogisticRegression())
    est = ValidationThresholds(base, valid_fraction=0.3, random_state=1, refit=False).fit(X, Y)
    order = np.random.default_rng(1).permutation(300)
    valid, train = np.sort(order[:90]), np.sort(order[90:])
    model = clone(base).fit(X[train], Y[train])
    scores = model.predict_proba(X[valid])
    expected = tune_thresholds(scores, model.predict(X[valid]).astype(bool), Y[valid].astype(bool))
    np.testing.assert_array_equal(np.isnan(est.thresholds_), np.isnan(expected))
    np.testing.assert_allclose(est.thresholds_[~np.isnan(expected)], expected[~np.isnan(expected)])
    assert (~np.isnan(est.thresholds_)).any()                             # something was tuned
    pred = est.predict(X)
    assert pred.dtype == np.uint8 and pred.shape == Y.shape
    np.testing.assert_array_equal(pred, apply_thresholds(model.predict_proba(X), model.predict(X), est.thresholds_))


def test_refit_uses_every_row_and_clone_keeps_params():
    X, Y = _data(2)
    est = ValidationThresholds(BinaryRelevance(LogisticRegression()), valid_fraction=0.2).fit(X, Y)
    full = BinaryRelevance(LogisticRegression()).fit(X, Y)
    np.testing.assert_allclose(est.decision_function(X), full.predict_proba(X))
    assert clone(est).get_params()["valid_fraction"] == 0.2


def test_objective_is_passed_to_the_tuning_and_checked():
    import pytest

    X, Y = _data(3)
    base = BinaryRelevance(LogisticRegression())
    est = ValidationThresholds(base, valid_fraction=0.3, random_state=1, refit=False, objective="micro_f1").fit(X, Y)
    order = np.random.default_rng(1).permutation(300)
    valid, train = np.sort(order[:90]), np.sort(order[90:])
    model = clone(base).fit(X[train], Y[train])
    expected = tune_thresholds(model.predict_proba(X[valid]), model.predict(X[valid]).astype(bool),
                               Y[valid].astype(bool), objective="micro_f1")
    np.testing.assert_array_equal(np.isnan(est.thresholds_), np.isnan(expected))
    np.testing.assert_allclose(est.thresholds_[~np.isnan(expected)], expected[~np.isnan(expected)])
    assert clone(est).objective == "micro_f1"
    with pytest.raises(ValueError, match="objective must be one of"):
        ValidationThresholds(base, objective="f2").fit(X, Y)
