"""ML-kNN and BRkNN: a hand-computed example, a real Mulan set, sparse input, edge cases."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from seq2labels.baselines import BRkNN, MLkNN
from seq2labels.evaluation.metrics import multilabel_metrics

DATA = Path(os.environ.get("SEQ2LABELS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
MULAN = DATA / "mulan"
needs_mulan = pytest.mark.skipif(not (MULAN / "emotions").is_dir(), reason=f"Mulan data sets not found at {MULAN}")

# Six training points on a line, two labels.
#   x :   0      1      2      10     11     12
#   Y : [1,0]  [1,0]  [1,1]  [0,1]  [0,1]  [0,1]
X_LINE = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
Y_LINE = np.array([[1, 0], [1, 0], [1, 1], [0, 1], [0, 1], [0, 1]])
QUERIES = np.array([[0.4], [1.6], [11.4], [6.2]])


def test_mlknn_hand_computed_example():
    # k = 2, s = 1, n = 6. Each training point's 2 nearest *other* points (no distance ties at k):
    #   0 -> {1, 2}   1 -> {0, 2}   2 -> {1, 0}   10 -> {11, 12}   11 -> {10, 12}   12 -> {11, 10}
    #
    # Priors P(H1_l) = (s + #positives) / (2s + n):
    #   label 0: 3 positives -> 4/8 = 0.5       label 1: 4 positives -> 5/8 = 0.625
    #
    # Neighbour counts C_l of the training points:
    #   label 0: x0,x1,x2 (positives) have C=2; x10,x11,x12 (negatives) have C=0
    #       c1 = [0, 0, 3] (sum 3)   c0 = [3, 0, 0] (sum 3)
    #       P(E_j|H1) = (1 + c1) / (s(k+1) + 3) = [1/6, 1/6, 4/6]
    #       P(E_j|H0) = (1 + c0) / 6            = [4/6, 1/6, 1/6]
    #   label 1: positives x2 (C=0), x10, x11, x12 (C=2); negatives x0, x1 (C=1 each: x2)
    #       c1 = [1, 0, 3] (sum 4)   c0 = [0, 2, 0] (sum 2)
    #       P(E_j|H1) = (1 + c1) / (3 + 4) = [2/7, 1/7, 4/7]
    #       P(E_j|H0) = (1 + c0) / (3 + 2) = [1/5, 3/5, 1/5]
    model = MLkNN(k=2, s=1.0).fit(X_LINE, Y_LINE)
    np.testing.assert_allclose(model.prior_, [0.5, 0.625], rtol=1e-12)
    np.testing.assert_allclose(model.cond_true_, [[1 / 6, 1 / 6, 4 / 6], [2 / 7, 1 / 7, 4 / 7]], rtol=1e-12)
    np.testing.assert_allclose(model.cond_false_, [[4 / 6, 1 / 6, 1 / 6], [1 / 5, 3 / 5, 1 / 5]], rtol=1e-12)

    # Queries, their 2 nearest training points and counts (C_0, C_1):
    #   0.4  -> x0, x1  -> (2, 0)
    #       l0: .5*4/6 = 1/3 vs .5*1/6 = 1/12          -> r = 0.8,     predict 1
    #       l1: .625*2/7 = 5/28 vs .375*1/5 = 3/40     -> r = 50/71,   predict 1
    #   1.6  -> x2, x1  -> (2, 1)
    #       l0: r = 0.8 -> 1;  l1: .625*1/7 = 5/56 vs .375*3/5 = 9/40 -> r = 25/88, predict 0
    #   11.4 -> x11, x12 -> (0, 2)
    #       l0: 1/12 vs 1/3 -> r = 0.2, 0;  l1: .625*4/7 = 5/14 vs 3/40 -> r = 100/121, 1
    #   6.2  -> x10 (3.8), x2 (4.2) -> (1, 2)
    #       l0: .5*1/6 vs .5*1/6 -> r = 0.5, a tie -> 0 (strict >);  l1: r = 100/121 -> 1
    np.testing.assert_array_equal(model.predict(QUERIES), [[1, 1], [1, 0], [0, 1], [0, 1]])
    np.testing.assert_allclose(model.predict_proba(QUERIES),
                               [[0.8, 50 / 71], [0.8, 25 / 88], [0.2, 100 / 121], [0.5, 100 / 121]], rtol=1e-12)
    assert model.predict(QUERIES).dtype == np.int64


def test_brknn_hand_computed_example():
    # k = 3: 0.4 -> x0, x1, x2: label 0 in 3/3, label 1 in 1/3          -> [1, 0]
    #        6.2 -> x10 (3.8), x2 (4.2), x11 (4.8): 1/3 and 3/3         -> [0, 1]
    model = BRkNN(k=3).fit(X_LINE, Y_LINE)
    np.testing.assert_allclose(model.predict_proba(QUERIES[[0, 3]]), [[1, 1 / 3], [1 / 3, 1]])
    np.testing.assert_array_equal(model.predict(QUERIES[[0, 3]]), [[1, 0], [0, 1]])
    # k = 2 at 6.2: x10 and x2, label 0 in exactly half -> not "more than half" -> 0
    model = BRkNN(k=2).fit(X_LINE, Y_LINE)
    np.testing.assert_array_equal(model.predict(QUERIES[[3]]), [[0, 1]])


def test_fallback_top1_fills_empty_rows():
    # k=2 at 6.2 gives label 0 exactly 0.5 -> [0, 1]; make label 1 absent so the row is empty
    Y = Y_LINE.copy()
    Y[3:, 1] = 0
    Y[2, 1] = 0
    Y[3, 0] = 1            # x10 has label 0 only
    plain = BRkNN(k=2).fit(X_LINE, Y)
    q = np.array([[6.2]])  # neighbours x10 (label 0) and x2 (label 0) -> [1, 0]
    assert plain.predict(q).tolist() == [[1, 0]]
    q = np.array([[11.6]])  # neighbours x12, x11: no labels at all
    assert plain.predict(q).tolist() == [[0, 0]]
    assert BRkNN(k=2, fallback_top1=True).fit(X_LINE, Y).predict(q).sum() == 1


@pytest.mark.parametrize("cls", [MLkNN, BRkNN])
def test_sparse_input_gives_the_same_answers(cls):
    rng = np.random.RandomState(0)
    X = rng.binomial(1, 0.3, size=(60, 20)) * rng.uniform(0.5, 1.5, size=(60, 20))  # no distance ties
    Y = (X[:, :4] + rng.binomial(1, 0.1, size=(60, 4)) > 0).astype(int)
    dense = cls(k=5).fit(X[:40], Y[:40])
    sparse = cls(k=5).fit(sp.csr_matrix(X[:40]), Y[:40])
    np.testing.assert_array_equal(dense.predict(X[40:]), sparse.predict(sp.csr_matrix(X[40:])))
    np.testing.assert_allclose(dense.predict_proba(X[40:]), sparse.predict_proba(sp.csr_matrix(X[40:])))


@pytest.mark.parametrize("cls", [MLkNN, BRkNN])
def test_errors_and_api(cls):
    with pytest.raises(NotFittedError):
        cls().predict(X_LINE)
    with pytest.raises(ValueError, match="n_samples=6"):
        cls(k=10).fit(X_LINE, Y_LINE)
    with pytest.raises(ValueError, match="k must be"):
        cls(k=0).fit(X_LINE, Y_LINE)
    model = clone(cls(k=3, fallback_top1=True))
    assert model.get_params()["k"] == 3 and model.get_params()["fallback_top1"] is True


def test_mlknn_smoothing_must_be_positive():
    with pytest.raises(ValueError, match="s \\(smoothing\\)"):
        MLkNN(k=2, s=0).fit(X_LINE, Y_LINE)


def test_one_dimensional_y_is_single_output():
    y = np.array(["a", "a", "a", "b", "b", "b"])
    model = MLkNN(k=2).fit(X_LINE, y)
    assert model.predict(np.array([[0.5], [11.5]])).tolist() == ["a", "b"]
    proba = model.predict_proba(np.array([[0.5]]))
    assert proba.shape == (1, 2) and proba.sum() == pytest.approx(1.0)


@needs_mulan
@pytest.mark.parametrize("cls, floor", [(MLkNN, 0.60), (BRkNN, 0.60)])
def test_emotions_official_split(cls, floor):
    # observed micro-F1 (k=10, standardized features): ML-kNN 0.639, BRkNN 0.641
    from sklearn.preprocessing import StandardScaler

    from seq2labels.data.tabular import read_arff

    train = read_arff(MULAN / "emotions" / "emotions-train.arff.gz")
    test = read_arff(MULAN / "emotions" / "emotions-test.arff.gz")
    scaler = StandardScaler().fit(train.X)
    model = cls(k=10).fit(scaler.transform(train.X), train.Y)
    pred = model.predict(scaler.transform(test.X))
    assert multilabel_metrics(test.Y, pred)["micro_f1"] > floor
