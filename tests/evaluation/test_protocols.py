"""Cross-validation protocol: stratified folds, per-fold metrics, summaries, train/test evaluation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_multilabel_classification

from seq2labels.baselines import BinaryRelevance, MLkNN, text_pipeline
from seq2labels.evaluation.protocols import (
    CVResult,
    TrainTestResult,
    cross_validate,
    repeated_kfold_indices,
    train_test_evaluate,
)
from seq2labels.evaluation.metrics import METRIC_NAMES, multilabel_metrics

DATA = Path(os.environ.get("SEQ2LABELS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
MULAN = DATA / "mulan"
needs_mulan = pytest.mark.skipif(not (MULAN / "yeast").is_dir(), reason=f"Mulan data sets not found at {MULAN}")


@pytest.fixture(scope="module")
def toy():
    X, Y = make_multilabel_classification(n_samples=90, n_features=6, n_classes=4, n_labels=2,
                                          allow_unlabeled=False, random_state=2)
    return X / X.std(axis=0), Y


def check_partition(folds, n, n_splits, n_repeats):
    assert len(folds) == n_splits * n_repeats
    for r in range(n_repeats):
        repeat = folds[r * n_splits:(r + 1) * n_splits]
        test_counts = np.zeros(n, dtype=int)
        for train_idx, test_idx in repeat:
            assert len(np.intersect1d(train_idx, test_idx)) == 0
            assert len(train_idx) + len(test_idx) == n
            test_counts[test_idx] += 1
        assert (test_counts == 1).all()       # every index in exactly one test fold per repeat


@needs_mulan
def test_yeast_folds_are_stratified():
    from seq2labels.data.tabular import read_arff

    Y = read_arff(MULAN / "yeast" / "yeast.arff.gz").Y
    folds = list(repeated_kfold_indices(Y, n_splits=10, n_repeats=3, random_state=0))
    check_partition(folds, len(Y), 10, 3)
    frequent = Y.sum(axis=0) >= 50                    # 13 of the 14 labels
    for _, test_idx in folds:
        # each fold holds 1/10 of every label's positives: observed worst |share - 0.1| = 0.0102
        # (plain shuffled KFold: 0.049)
        share = Y[test_idx].sum(axis=0) / Y.sum(axis=0)
        assert np.abs(share - 0.1)[frequent].max() <= 0.015
        # proportion of documents with the label in the fold vs overall: observed worst 0.039
        # (plain KFold: 0.064). Fold sizes vary (231..251 of 2417) because the stratification
        # balances label counts, so labels on 75% of documents drift with the fold size.
        proportion = Y[test_idx].mean(axis=0)
        assert np.abs(proportion - Y.mean(axis=0))[frequent].max() <= 0.045
    again = list(repeated_kfold_indices(Y, n_splits=10, n_repeats=3, random_state=0))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    assert not np.array_equal(folds[0][1], folds[10][1])   # the repeats differ


def test_folds_on_small_data(toy):
    _, Y = toy
    check_partition(list(repeated_kfold_indices(Y, n_splits=3, n_repeats=2)), len(Y), 3, 2)
    check_partition(list(repeated_kfold_indices(sp.csr_matrix(Y), n_splits=5, n_repeats=1)), len(Y), 5, 1)
    one = list(repeated_kfold_indices(Y[:, :1], n_splits=3, n_repeats=1))   # a single label column
    check_partition(one, len(Y), 3, 1)
    for _, test_idx in one:
        assert abs(Y[test_idx, 0].sum() - Y[:, 0].sum() / 3) <= 1
    with pytest.raises(ValueError, match="0 and 1"):
        list(repeated_kfold_indices(Y * 2))
    with pytest.raises(ValueError, match="n_splits"):
        list(repeated_kfold_indices(Y, n_splits=1))
    with pytest.raises(ValueError, match="n_splits"):
        list(repeated_kfold_indices(Y[:4], n_splits=5))


def test_cross_validate_records_every_fold(toy):
    X, Y = toy
    result = cross_validate(MLkNN(k=5), X, Y, n_splits=3, n_repeats=2, random_state=1)
    assert isinstance(result, CVResult) and len(result.folds) == 6
    assert [(f["repeat"], f["fold"]) for f in result.folds] == [(r, k) for r in range(2) for k in range(3)]
    folds = list(repeated_kfold_indices(Y, 3, 2, random_state=1))
    for fold, (train_idx, test_idx) in zip(result.folds, folds):
        assert (fold["n_train"], fold["n_test"]) == (len(train_idx), len(test_idx))
        expected = multilabel_metrics(Y[test_idx], MLkNN(k=5).fit(X[train_idx], Y[train_idx]).predict(X[test_idx]))
        assert {k: fold[k] for k in METRIC_NAMES} == expected
        assert fold["fit_seconds"] >= 0 and fold["predict_docs_per_s"] > 0
    summary = result.summary()
    assert list(summary) == [*METRIC_NAMES, "fit_seconds", "predict_docs_per_s"]
    values = [f["micro_f1"] for f in result.folds]
    assert summary["micro_f1"] == pytest.approx((np.mean(values), np.std(values, ddof=1)))
    table = result.to_markdown()
    assert "| metric | mean | std |" in table and "| micro_f1 |" in table and "2 x 3-fold" in table


class _Silent(ClassifierMixin, BaseEstimator):
    """Predicts no label at all; its scores favour column (row index mod n_labels)."""

    def fit(self, X, Y):
        self.n_labels_ = Y.shape[1]
        return self

    def predict(self, X):
        return np.zeros((len(X), self.n_labels_), dtype=int)

    def predict_proba(self, X):
        scores = np.full((len(X), self.n_labels_), 0.1)
        scores[np.arange(len(X)), np.argmax(X[:, :self.n_labels_], axis=1)] = 0.4
        return scores


def test_cross_validate_fallback_top1(toy):
    X, Y = toy
    plain = cross_validate(_Silent(), X, Y, n_splits=3, n_repeats=1).summary()
    fallback = cross_validate(_Silent(), X, Y, n_splits=3, n_repeats=1, fallback_top1=True).summary()
    assert plain["micro_recall"] == (0.0, 0.0)
    assert fallback["micro_precision"][0] > 0
    # with fallback every document gets one label: recall = (#hits) / (#gold labels) > 0


def test_cross_validate_texts_in_a_list():
    texts = [f"alpha {i}" for i in range(12)] + [f"beta {i}" for i in range(12)]
    Y = np.array([[1, 0]] * 12 + [[0, 1]] * 12)
    result = cross_validate(text_pipeline(BinaryRelevance()), texts, Y, n_splits=3, n_repeats=1)
    assert result.summary()["micro_f1"][0] == pytest.approx(1.0)
    assert result.estimator == "TextTfidfVectorizer + BinaryRelevance"
    with pytest.raises(ValueError, match="rows"):
        cross_validate(BinaryRelevance(), texts[:5], Y)


def test_train_test_evaluate(toy):
    X, Y = toy
    estimator = BinaryRelevance()
    result = train_test_evaluate(estimator, X[:60], Y[:60], X[60:], Y[60:], ["a", "b", "c", "d"])
    assert isinstance(result, TrainTestResult)
    assert not hasattr(estimator, "estimators_")          # a clone was fitted
    pred = result.estimator.predict(X[60:])
    assert {k: result.metrics[k] for k in METRIC_NAMES} == multilabel_metrics(Y[60:], pred)
    assert result.metrics["predict_docs_per_s"] > 0
    assert [r["label"] for r in result.per_label] == ["a", "b", "c", "d"]
    assert [r["support"] for r in result.per_label] == Y[60:].sum(axis=0).tolist()
    assert "| a |" in result.to_markdown()
    default = train_test_evaluate(estimator, X[:60], Y[:60], X[60:], Y[60:])
    assert default.per_label[0]["label"] == "label_0"
    with pytest.raises(ValueError, match="label columns"):
        train_test_evaluate(estimator, X[:60], Y[:60], X[60:], Y[60:, :3])
