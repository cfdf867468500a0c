"""BR, CC, ECC, LP, RAkEL: mechanics on small data, and sanity on a real Mulan set."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import make_multilabel_classification
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from seq2labels.baselines import (
    BinaryRelevance,
    ClassifierChain,
    EnsembleClassifierChains,
    LabelPowerset,
    RAkEL,
    text_pipeline,
)
from seq2labels.evaluation.metrics import multilabel_metrics, top1_fallback

DATA = Path(os.environ.get("SEQ2LABELS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
MULAN = DATA / "mulan"
needs_mulan = pytest.mark.skipif(not (MULAN / "emotions").is_dir(), reason=f"Mulan data sets not found at {MULAN}")

ALL = [BinaryRelevance, ClassifierChain, EnsembleClassifierChains, LabelPowerset, RAkEL]


def make(cls, **kwargs):
    """An instance, seeded when the class draws random numbers (ECC orders, RAkEL subsets)."""
    if "random_state" in cls().get_params():
        kwargs.setdefault("random_state", 0)
    if cls is EnsembleClassifierChains:
        kwargs.setdefault("n_chains", 3)
    return cls(**kwargs)


@pytest.fixture(scope="module")
def toy():
    X, Y = make_multilabel_classification(n_samples=120, n_features=8, n_classes=5, n_labels=2,
                                          allow_unlabeled=False, random_state=1)
    return X / X.std(axis=0), Y


@pytest.fixture(scope="module")
def emotions():
    if not (MULAN / "emotions").is_dir():
        pytest.skip("Mulan data sets not found")
    from sklearn.preprocessing import StandardScaler

    from seq2labels.data.tabular import read_arff

    train = read_arff(MULAN / "emotions" / "emotions-train.arff.gz")
    test = read_arff(MULAN / "emotions" / "emotions-test.arff.gz")
    scaler = StandardScaler().fit(train.X)
    return scaler.transform(train.X), train.Y, scaler.transform(test.X), test.Y


# --------------------------------------------------------------------------- shared API


@pytest.mark.parametrize("cls", ALL)
def test_shapes_types_and_api(cls, toy):
    X, Y = toy
    with pytest.raises(NotFittedError):
        cls().predict(X)
    model = make(cls).fit(X, Y)
    pred, proba = model.predict(X), model.predict_proba(X)
    assert pred.shape == proba.shape == Y.shape
    assert pred.dtype == np.int64 and set(np.unique(pred)) <= {0, 1}
    assert proba.dtype == np.float64 and proba.min() >= 0 and proba.max() <= 1
    assert model.n_features_in_ == X.shape[1] and model.n_labels_ == Y.shape[1]
    params = model.get_params()
    assert "classifier" in params and "fallback_top1" in params
    assert clone(model).get_params().keys() == params.keys()


@pytest.mark.parametrize("cls", ALL)
def test_fallback_top1_gives_every_row_its_best_label(cls, toy):
    X, Y = toy
    plain = make(cls).fit(X, Y)
    with_fallback = make(cls, fallback_top1=True).fit(X, Y)
    expected = top1_fallback(plain.predict_proba(X), plain.predict(X))
    np.testing.assert_array_equal(with_fallback.predict(X), expected)
    assert with_fallback.predict(X).sum(axis=1).min() >= 1


@pytest.mark.parametrize("cls", ALL)
def test_sparse_X_matches_dense(cls, toy):
    X, Y = toy
    dense = make(cls).fit(X, Y).predict_proba(X)
    sparse = make(cls).fit(sp.csr_matrix(X), Y).predict_proba(sp.csr_matrix(X))
    np.testing.assert_allclose(dense, sparse, atol=1e-3)


@pytest.mark.parametrize("cls", ALL)
def test_constant_labels_are_predicted_as_constants(cls, toy):
    X, Y = toy
    Y = np.column_stack([Y, np.zeros(len(Y), int), np.ones(len(Y), int)])
    model = make(cls).fit(X, Y)
    pred, proba = model.predict(X), model.predict_proba(X)
    assert (pred[:, -2] == 0).all() and (pred[:, -1] == 1).all()
    assert (proba[:, -2] == 0).all() and (proba[:, -1] == 1).all()


@pytest.mark.parametrize("cls", ALL)
def test_one_dimensional_y_is_single_output(cls, toy):
    X, _ = toy
    y = np.where(X[:, 0] > 0, "pos", "neg")
    model = make(cls).fit(X, y)
    assert set(model.predict(X)) <= {"pos", "neg"}
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert list(model.classes_) == ["neg", "pos"]


def test_y_must_be_a_01_matrix(toy):
    X, Y = toy
    with pytest.raises(ValueError, match="0/1"):
        BinaryRelevance().fit(X, Y * 2)
    with pytest.raises(ValueError, match="continuous"):
        BinaryRelevance().fit(X, X[:, 0])


def test_base_classifier_without_predict_proba(toy):
    # LinearSVC: scores are sigmoid(decision_function) (BR) or 0/1 class indicators (LP)
    X, Y = toy
    br = BinaryRelevance(LinearSVC()).fit(X, Y)
    assert ((br.predict_proba(X) > 0.5) == br.predict(X)).all()
    lp = LabelPowerset(LinearSVC()).fit(X, Y)
    np.testing.assert_array_equal(lp.predict_proba(X), lp.predict(X))


def test_text_pipeline():
    texts = ["cheap pills buy now", "meeting at noon", "buy cheap watches", "project meeting notes",
             "cheap meeting room", "notes on pills"]
    Y = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 1], [1, 1]])
    model = text_pipeline(BinaryRelevance(LogisticRegression(C=10)), sublinear_tf=True).fit(texts, Y)
    assert model.predict(["buy cheap pills"]).tolist() == [[1, 0]]
    assert model.steps[0][1].sublinear_tf is True


# --------------------------------------------------------------------------- chains


def test_chain_orders(toy):
    X, Y = toy
    counts = Y.sum(axis=0)
    chain = ClassifierChain(order="frequency").fit(X, Y)
    assert list(chain.order_) == sorted(range(Y.shape[1]), key=lambda j: (-counts[j], j))
    assert list(ClassifierChain().fit(X, Y).order_) == list(range(Y.shape[1]))
    assert list(ClassifierChain(order=[4, 2, 0, 1, 3]).fit(X, Y).order_) == [4, 2, 0, 1, 3]
    a = ClassifierChain(order="random", random_state=3).fit(X, Y).order_
    b = ClassifierChain(order="random", random_state=3).fit(X, Y).order_
    assert list(a) == list(b) and sorted(a) == list(range(Y.shape[1]))
    # link i of the chain sees the features plus the i labels before it
    assert [m.n_features_in_ for m in chain.estimators_] == [X.shape[1] + i for i in range(Y.shape[1])]
    for bad in ("alphabetical", [0, 1, 2], [0, 0, 1, 2, 3]):
        with pytest.raises(ValueError, match="order"):
            ClassifierChain(order=bad).fit(X, Y)


def test_chain_feeds_predictions_forward(toy):
    X, Y = toy
    chain = ClassifierChain(order=[2, 0, 1, 3, 4]).fit(X, Y)
    pred = chain.predict(X)
    # redo the chain by hand: link i gets X plus the predictions of links 0..i-1
    done = []
    for label, model in zip(chain.order_, chain.estimators_):
        Xa = np.hstack([X, pred[:, done]]) if done else X
        np.testing.assert_array_equal(model.predict(Xa), pred[:, label])
        done.append(label)


def test_ensemble_averages_chain_probabilities(toy):
    X, Y = toy
    ecc = EnsembleClassifierChains(n_chains=4, random_state=0).fit(X, Y)
    assert ecc.orders_.shape == (4, Y.shape[1])
    assert all(sorted(o) == list(range(Y.shape[1])) for o in ecc.orders_)
    assert len({tuple(o) for o in ecc.orders_}) > 1
    mean = np.mean([c._predict_scores(X)[1] for c in ecc.chains_], axis=0)
    np.testing.assert_allclose(ecc.predict_proba(X), mean)
    np.testing.assert_array_equal(ecc.predict(X), (mean > 0.5).astype(int))
    with pytest.raises(ValueError, match="n_chains"):
        EnsembleClassifierChains(n_chains=0).fit(X, Y)


# --------------------------------------------------------------------------- label powerset


def test_label_powerset_marginals(toy):
    X, Y = toy
    lp = LabelPowerset().fit(X, Y)
    seen = {tuple(r) for r in Y}
    assert {tuple(r) for r in lp.labelsets_} == seen
    assert {tuple(r) for r in lp.predict(X)} <= seen
    dist = lp.estimator_.predict_proba(X)
    np.testing.assert_allclose(lp.predict_proba(X), dist @ lp.labelsets_[lp.estimator_.classes_])
    np.testing.assert_array_equal(lp.predict(X), lp.labelsets_[lp.estimator_.predict(X)])


def test_label_powerset_with_one_labelset(toy):
    X, _ = toy
    Y = np.tile([1, 0, 1], (len(X), 1))
    lp = LabelPowerset().fit(X, Y)
    assert lp.estimator_ is None
    np.testing.assert_array_equal(lp.predict(X[:3]), Y[:3])


# --------------------------------------------------------------------------- RAkEL


@pytest.mark.parametrize("n_labels, k", [(5, 2), (6, 3), (7, 3), (4, 9)])
def test_rakel_disjoint_covers_each_label_once(n_labels, k):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 4))
    Y = (rng.uniform(size=(80, n_labels)) < 0.4).astype(int)
    model = RAkEL(labelset_size=k, random_state=0).fit(X, Y)
    covered = np.concatenate(model.labelsets_)
    assert sorted(covered) == list(range(n_labels))           # every label exactly once
    assert len(model.labelsets_) == math.ceil(n_labels / min(k, n_labels))
    assert all(len(s) <= k for s in model.labelsets_)


def test_rakel_overlapping():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 4))
    Y = (rng.uniform(size=(80, 6)) < 0.4).astype(int)
    model = RAkEL(labelset_size=3, mode="overlapping", random_state=0).fit(X, Y)
    assert len(model.labelsets_) == 12                        # default min(2L, C(6, 3) = 20)
    assert len({tuple(s) for s in model.labelsets_}) == 12     # distinct
    assert all(len(s) == 3 for s in model.labelsets_)
    assert set(np.concatenate(model.labelsets_)) == set(range(6))
    # score = mean LP marginal over the models holding the label; decision = mean vote >= threshold
    votes, scores, counts = np.zeros((80, 6)), np.zeros((80, 6)), np.zeros(6)
    for subset, lp in zip(model.labelsets_, model.estimators_):
        votes[:, subset] += lp._predict_scores(X)[0]
        scores[:, subset] += lp._predict_scores(X)[1]
        counts[subset] += 1
    np.testing.assert_allclose(model.predict_proba(X), scores / counts)
    np.testing.assert_array_equal(model.predict(X), (votes / counts >= 0.5).astype(int))
    assert len(RAkEL(labelset_size=3, mode="overlapping", n_models=20, random_state=0).fit(X, Y).labelsets_) == 20
    with pytest.raises(ValueError, match="n_models"):
        RAkEL(labelset_size=3, mode="overlapping", n_models=21).fit(X, Y)
    with pytest.raises(ValueError, match="n_models"):
        RAkEL(labelset_size=3, mode="overlapping", n_models=1).fit(X, Y)
    with pytest.raises(ValueError, match="n_models"):
        RAkEL(labelset_size=3, n_models=4).fit(X, Y)
    with pytest.raises(ValueError, match="mode"):
        RAkEL(mode="both").fit(X, Y)


# --------------------------------------------------------------------------- real data


@needs_mulan
@pytest.mark.parametrize("estimator, floor", [
    # micro-F1 on the official emotions split (391 train / 202 test, standardized features);
    # observed: BR 0.641, CC 0.638, ECC(5) 0.662, LP 0.626, RAkELd 0.647, RAkELo 0.661
    (BinaryRelevance(), 0.60),
    (ClassifierChain(order="frequency"), 0.60),
    (EnsembleClassifierChains(n_chains=5, random_state=0), 0.60),
    (LabelPowerset(), 0.58),
    (RAkEL(random_state=0), 0.60),
    (RAkEL(mode="overlapping", random_state=0), 0.60),
], ids=["BR", "CC", "ECC", "LP", "RAkELd", "RAkELo"])
def test_emotions_official_split(estimator, floor, emotions):
    X_train, Y_train, X_test, Y_test = emotions
    model = clone(estimator).fit(X_train, Y_train)
    assert multilabel_metrics(Y_test, model.predict(X_test))["micro_f1"] > floor
