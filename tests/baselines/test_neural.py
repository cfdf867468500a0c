"""Neural baselines: MLPClassifier on numeric features, Kim CNN and CNN-RNN on raw texts."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import f1_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from seq2labels.baselines import CNNRNNClassifier, KimCNNClassifier, MLPClassifier
from seq2labels.apps.cli import sample_path
from seq2labels.data.readers import read_examples

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT_KW = dict(embedding_dim=16, filter_sizes=(2, 3), num_filters=8, epochs=2, batch_size=32, max_len=40)
CNN_RNN_KW = dict(TEXT_KW, label_embedding_dim=8, decoder_hidden=16)


def separable(n: int = 400, seed: int = 0):
    """4 labels, each the sign of one feature (with a margin), plus 6 noise features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10))
    X[:, :4] += np.sign(X[:, :4]) * 0.5
    return X, (X[:, :4] > 0).astype(np.int64)


@pytest.fixture(scope="module")
def goemotions():
    """300 sample texts and their (300, L) indicator matrix."""
    examples = read_examples(sample_path("goemotions_train.jsonl.gz"))[:300]
    names = sorted({label for ex in examples for label in ex.labels})
    column = {name: j for j, name in enumerate(names)}
    Y = np.zeros((len(examples), len(names)), dtype=np.int64)
    for i, ex in enumerate(examples):
        Y[i, [column[label] for label in ex.labels]] = 1
    return [ex.text for ex in examples], Y


# ---- MLPClassifier -----------------------------------------------------------------

@pytest.mark.parametrize("per_label_heads", [False, True])
def test_mlp_learns_separable_problem(per_label_heads):
    X, Y = separable()
    clf = MLPClassifier(hidden=(32,), epochs=30, lr=1e-2, per_label_heads=per_label_heads).fit(X[:300], Y[:300])
    assert f1_score(Y[300:], clf.predict(X[300:]), average="micro") > 0.9
    proba = clf.predict_proba(X[300:])
    assert proba.shape == (100, 4) and ((proba > 0) & (proba < 1)).all()
    assert np.array_equal(clf.predict(X[300:]), (proba > 0.5).astype(np.int64))
    assert clf.best_epoch_ >= 1 and len(clf.history_) >= clf.best_epoch_


def test_mlp_head_variants_differ_in_parameter_layout():
    X, Y = separable(60)
    one = MLPClassifier(hidden=(8,), epochs=1).fit(X, Y).model_
    per = MLPClassifier(hidden=(8,), epochs=1, per_label_heads=True).fit(X, Y).model_
    assert {n for n, _ in one.named_parameters()} != {n for n, _ in per.named_parameters()}
    assert one.output.weight.shape == (4, 8)
    assert len(per.heads) == 4 and per.heads[0].weight.shape == (1, 8)


def test_mlp_accepts_sparse_input_like_dense():
    X, Y = separable(80)
    dense = MLPClassifier(hidden=(8,), epochs=3).fit(X, Y)
    sparse = MLPClassifier(hidden=(8,), epochs=3).fit(sp.csr_matrix(X), Y)
    np.testing.assert_allclose(dense.predict_proba(X), sparse.predict_proba(sp.csr_matrix(X)), rtol=1e-5)


def test_mlp_seeded_determinism_and_seed_matters():
    X, Y = separable(120)
    a = MLPClassifier(hidden=(8,), epochs=3, random_state=3).fit(X, Y)
    b = MLPClassifier(hidden=(8,), epochs=3, random_state=3).fit(X, Y)
    c = MLPClassifier(hidden=(8,), epochs=3, random_state=4).fit(X, Y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_mlp_fallback_top1_fills_empty_rows():
    X, Y = separable(80)
    clf = MLPClassifier(hidden=(8,), epochs=2, threshold=1.0, fallback_top1=True).fit(X, Y)
    pred = clf.predict(X)
    assert (pred.sum(axis=1) == 1).all()
    assert np.array_equal(pred.argmax(axis=1), clf.predict_proba(X).argmax(axis=1))


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(hidden=(0,)), dict(threshold=2.0), dict(lr=0.0),
                                 dict(validation_fraction=1.0), dict(fallback_top1="yes")])
def test_mlp_rejects_bad_params(bad):
    X, Y = separable(20)
    with pytest.raises(ValueError):
        MLPClassifier(**bad).fit(X, Y)


# ---- shared estimator conventions --------------------------------------------------

@pytest.mark.parametrize("est", [MLPClassifier(hidden=(8, 4), per_label_heads=True, epochs=3),
                                 KimCNNClassifier(filter_sizes=(2,), num_filters=7),
                                 CNNRNNClassifier(beam_size=3, max_labels=4)])
def test_clone_get_params_round_trip(est):
    params = est.get_params()
    copy = clone(est)
    assert copy.get_params() == params and copy is not est
    assert type(est)(**params).get_params() == params


@pytest.mark.parametrize("est, X", [(MLPClassifier(), np.zeros((2, 3))),
                                    (KimCNNClassifier(), ["a text"]),
                                    (CNNRNNClassifier(), ["a text"])])
def test_not_fitted_error(est, X):
    with pytest.raises(NotFittedError):
        est.predict(X)
    with pytest.raises(NotFittedError):
        est.predict_proba(X)


# ---- text estimators ---------------------------------------------------------------

@pytest.mark.parametrize("cls, kw", [(KimCNNClassifier, TEXT_KW), (CNNRNNClassifier, CNN_RNN_KW)])
def test_text_estimators_fit_goemotions(goemotions, cls, kw):
    texts, Y = goemotions
    clf = cls(**kw).fit(texts, Y)
    test = texts[:50] + ["", "zzqx qqzx"]
    pred, proba = clf.predict(test), clf.predict_proba(test)
    assert pred.shape == proba.shape == (52, Y.shape[1])
    assert pred.dtype == np.int64 and set(np.unique(pred)) <= {0, 1}
    assert ((proba >= 0) & (proba <= 1)).all()
    assert len(clf.history_) == 2


@pytest.mark.parametrize("cls, kw", [(KimCNNClassifier, TEXT_KW), (CNNRNNClassifier, CNN_RNN_KW)])
def test_text_estimators_are_seeded(goemotions, cls, kw):
    texts, Y = goemotions
    texts, Y = texts[:120], Y[:120]
    a = cls(**kw, random_state=5).fit(texts, Y)
    b = cls(**kw, random_state=5).fit(texts, Y)
    assert np.array_equal(a.predict_proba(texts), b.predict_proba(texts))
    assert np.array_equal(a.predict(texts), b.predict(texts))


def test_cnn_rnn_predicts_through_beam_search(goemotions):
    texts, Y = goemotions
    clf = CNNRNNClassifier(**dict(CNN_RNN_KW, epochs=3), max_labels=3).fit(texts, Y)
    greedy = clf.predict(texts[:40])
    assert (greedy.sum(axis=1) <= 3).all()
    clf.set_params(beam_size=4)
    beam = clf.predict(texts[:40])
    assert beam.shape == greedy.shape and (beam.sum(axis=1) <= 3).all()
    # label scores always come from the greedy path, whatever the beam
    clf.set_params(beam_size=1)
    np.testing.assert_array_equal(clf.predict_proba(texts[:40]), clf.set_params(beam_size=4).predict_proba(texts[:40]))


def test_cnn_rnn_scores_the_labels_it_predicts(goemotions):
    texts, Y = goemotions
    clf = CNNRNNClassifier(**dict(CNN_RNN_KW, epochs=3)).fit(texts, Y)
    pred, proba = clf.predict(texts[:60]), clf.predict_proba(texts[:60])
    assert (proba[pred == 1] > 0).all()
    never = Y.sum(axis=0) == 0
    assert (proba[:, never] == 0).all()


def test_text_estimators_reject_non_texts():
    with pytest.raises(TypeError):
        KimCNNClassifier().fit("one string", np.ones((1, 1)))
    with pytest.raises(TypeError):
        CNNRNNClassifier().fit([1, 2], np.ones((2, 1)))


def test_text_estimator_with_1d_targets(goemotions):
    texts, Y = goemotions
    y = np.where(Y[:, 0] == 1, "first", "other")
    clf = KimCNNClassifier(**TEXT_KW).fit(texts[:100], y[:100])
    assert list(clf.classes_) == ["first", "other"]
    assert set(clf.predict(texts[:10])) <= {"first", "other"}
    np.testing.assert_allclose(clf.predict_proba(texts[:10]).sum(axis=1), 1.0)


# ---- scikit-learn's checks ---------------------------------------------------------

def expected_failed_checks(estimator) -> dict[str, str]:
    return {}


@parametrize_with_checks([MLPClassifier(hidden=(16,), epochs=10, lr=2e-2, batch_size=32),
                          MLPClassifier(hidden=(16,), epochs=10, lr=2e-2, batch_size=32, per_label_heads=True)],
                         expected_failed_checks=expected_failed_checks, xfail_strict=True)
def test_mlp_sklearn_compatible(estimator, check):
    check(estimator)


def test_validation_micro_f1_matches_the_metrics_module():
    from seq2labels.baselines.neural.common import _micro_f1
    from seq2labels.evaluation.metrics import multilabel_metrics

    rng = np.random.default_rng(0)
    for shape in [(30, 5), (20, 1)]:
        Y, pred = rng.integers(0, 2, shape), rng.integers(0, 2, shape)
        assert _micro_f1(Y, pred)["micro_f1"] == pytest.approx(multilabel_metrics(Y, pred)["micro_f1"])
    zeros = np.zeros((4, 3), dtype=np.int64)
    assert _micro_f1(zeros, zeros)["micro_f1"] == multilabel_metrics(zeros, zeros)["micro_f1"] == 0.0
