"""SGMClassifier: the scikit-learn contract on a tiny fit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from seq2labels import SGMClassifier
from seq2labels.data.readers import Example
from seq2labels.errors import DataFormatError
from seq2labels.pipeline.recipe import split_validation

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*never seen in training:UserWarning")]

SMALL = dict(embedding_dim=16, encoder_hidden=16, decoder_hidden=16, label_embedding_dim=16, max_len=24,
             min_count=1, epochs=1, batch_size=32, lr=0.005)


@pytest.fixture(scope="module")
def data(sample_examples):
    train, test = sample_examples
    texts = [ex.text for ex in train[:150]]
    labels = [list(ex.labels) for ex in train[:150]]
    return texts, labels, [ex.text for ex in test[:25]] + [""]


@pytest.fixture(scope="module")
def fitted(data, single_thread):
    texts, labels, _ = data
    with single_thread():
        return SGMClassifier(**SMALL).fit(texts, labels)


@pytest.fixture(scope="module")
def indicator_fit(data, single_thread):
    texts, labels, _ = data
    names = sorted({lab for row in labels for lab in row})
    y = np.array([[int(n in row) for n in names] for row in labels])
    extra = np.zeros((len(texts), 1), dtype=int)                     # a class no text has
    y = np.hstack([y, extra])
    with single_thread():
        return SGMClassifier(**SMALL, min_labels=1).fit(texts, y), y, names


# ---- fit and predict --------------------------------------------------------------------------

def test_fit_on_label_lists_learns_the_classes(fitted, data):
    _, labels, _ = data
    assert set(fitted.classes_) == {lab for row in labels for lab in row}
    assert fitted.n_features_in_ == 1 and fitted.best_epoch_ >= 1 and len(fitted.history_) == 1


def test_fit_returns_self(data):
    texts, labels, _ = data
    est = SGMClassifier(**{**SMALL, "embedding_dim": 4, "encoder_hidden": 4, "decoder_hidden": 4,
                           "label_embedding_dim": 4})
    assert est.fit(texts[:20], labels[:20]) is est


def test_predict_is_an_indicator_matrix_in_classes_order(fitted, data):
    texts = data[2]
    y = fitted.predict(texts)
    ordered = fitted.predict_labels(texts)
    assert y.shape == (len(texts), len(fitted.classes_))
    assert set(np.unique(y)) <= {0, 1}
    for row, labels in zip(y, ordered):
        assert sorted(fitted.classes_[np.flatnonzero(row)]) == sorted(labels)


def test_predict_proba_shape_and_range(fitted, data):
    proba = fitted.predict_proba(data[2])
    assert proba.shape == (len(data[2]), len(fitted.classes_))
    assert proba.dtype == np.float64
    assert ((proba >= 0) & (proba <= 1)).all()
    assert np.array_equal(fitted.decision_function(data[2]), proba)


def test_predict_labels_are_ordered_lists_as_generated(fitted, data):
    texts = data[2]
    lists = fitted.predict_labels(texts, beam_size=2)
    sequences = fitted.predict_sequences(texts, beam_size=2)
    assert lists == [p.labels for p in sequences]
    for labels in lists:
        assert isinstance(labels, list) and len(set(labels)) == len(labels)
        assert all(isinstance(lab, str) for lab in labels)


def test_fit_on_an_indicator_matrix(indicator_fit, data):
    est, y, names = indicator_fit
    texts = data[2]
    assert list(est.classes_) == [str(i) for i in range(y.shape[1])]
    pred = est.predict(texts)
    assert pred.shape == (len(texts), y.shape[1])
    assert pred.sum(axis=1).min() >= 1                                  # min_labels=1
    assert pred[:, -1].sum() == 0                                        # the class no text has
    proba = est.predict_proba(texts)
    assert proba.shape == pred.shape and (proba[:, -1] == 0).all()
    # column j is class "j", i.e. names[j]
    for row, labels in zip(pred, est.predict_labels(texts)):
        assert sorted(np.flatnonzero(row).tolist()) == sorted(int(lab) for lab in labels)
    assert 0.0 <= est.score(data[0][:30], y[:30]) <= 1.0


def test_named_classes_for_an_indicator_matrix(data):
    texts, labels, _ = data
    y = np.array([[int("neutral" in row), int("admiration" in row)] for row in labels[:60]])
    est = SGMClassifier(**SMALL, classes=["neutral", "admiration"]).fit(texts[:60], y)
    assert list(est.classes_) == ["neutral", "admiration"]
    assert set(est.generator_.label_vocab.labels) <= {"neutral", "admiration"}


def test_labels_only_in_the_validation_split_are_still_classes(data):
    texts, labels, _ = data
    texts, labels = texts[:40], [list(row) for row in labels[:40]]
    examples = [Example(t, tuple(row)) for t, row in zip(texts, labels)]
    _, valid = split_validation(examples, 0.1, seed=0)
    k = next(i for i, ex in enumerate(examples) if ex in valid)
    labels[k] = ["only_in_validation"]
    est = SGMClassifier(**SMALL).fit(texts, labels)
    assert "only_in_validation" not in est.generator_.label_vocab.labels
    assert "only_in_validation" in list(est.classes_)
    assert est.predict(texts[:3]).shape == (3, len(est.classes_))


# ---- persistence and sklearn plumbing --------------------------------------------------------

@pytest.mark.parametrize("which", ["lists", "indicator"])
def test_save_load_round_trip_predicts_the_same(which, fitted, indicator_fit, data, tmp_path):
    est = fitted if which == "lists" else indicator_fit[0]
    texts = data[2]
    est.save(tmp_path / "m")
    loaded = SGMClassifier.load(tmp_path / "m")
    assert list(loaded.classes_) == list(est.classes_)
    assert np.array_equal(loaded.predict(texts), est.predict(texts))
    np.testing.assert_array_equal(loaded.predict_proba(texts), est.predict_proba(texts))
    assert loaded.predict_labels(texts) == est.predict_labels(texts)
    params = {k: v for k, v in est.get_params().items() if k not in ("classes", "verbose")}
    assert {k: loaded.get_params()[k] for k in params} == params


def test_clone_and_get_params_round_trip(fitted):
    params = fitted.get_params()
    assert params["embedding_dim"] == 16 and params["epochs"] == 1
    copy = clone(fitted)
    assert copy.get_params() == params
    assert not hasattr(copy, "generator_") and not hasattr(copy, "classes_")
    assert SGMClassifier(**params).get_params() == params
    copy.set_params(beam_size=3, lr=0.01)
    assert copy.beam_size == 3 and copy.lr == 0.01 and fitted.beam_size == 5


def test_not_fitted_errors(tmp_path):
    est = SGMClassifier()
    for call in (lambda: est.predict(["a"]), lambda: est.predict_proba(["a"]),
                 lambda: est.predict_labels(["a"]), lambda: est.save(tmp_path / "m")):
        with pytest.raises(NotFittedError):
            call()


# ---- input errors ----------------------------------------------------------------------------

def test_mismatched_lengths_are_data_errors():
    est = SGMClassifier(**SMALL)
    with pytest.raises(DataFormatError, match="3 texts but y has 2 label lists"):
        est.fit(["a", "b", "c"], [["x"], ["y"]])
    with pytest.raises(DataFormatError, match="3 texts but y has 2 rows"):
        est.fit(["a", "b", "c"], np.array([[1, 0], [0, 1]]))


def test_bad_targets_are_data_errors():
    est = SGMClassifier(**SMALL)
    with pytest.raises(DataFormatError, match="only 0 and 1"):
        est.fit(["a", "b"], np.array([[2, 0], [0, 1]]))
    with pytest.raises(DataFormatError, match=r"y\[1\] must be a list of labels"):
        est.fit(["a", "b"], [["x"], "y"])
    with pytest.raises(DataFormatError, match=r"y\[0\] holds ''"):
        est.fit(["a", "b"], [[""], ["y"]])
    with pytest.raises(DataFormatError, match="classes has 1 names but y has 2 columns"):
        SGMClassifier(classes=["a"]).fit(["a", "b"], np.array([[1, 0], [0, 1]]))


def test_non_string_text_is_a_type_error_naming_the_index(fitted):
    with pytest.raises(TypeError, match=r"X\[2\] is int"):
        SGMClassifier(**SMALL).fit(["a", "b", 3], [["x"], ["y"], ["x"]])
    with pytest.raises(TypeError, match=r"X\[1\] is NoneType"):
        fitted.predict(["fine", None])
    with pytest.raises(TypeError, match="single string"):
        fitted.predict_proba("one text")


def test_score_counts_labels_never_seen_in_training_as_misses(fitted, data, monkeypatch):
    texts, labels, _ = data
    monkeypatch.setattr(fitted, "predict", lambda X: fitted._binarize(labels))  # a perfect predictor
    assert fitted.score(texts, labels) == 1.0
    with_unseen = [list(ls) + ["never-seen-label"] for ls in labels]
    n_gold = sum(len(ls) for ls in labels)
    expected = 2 * n_gold / (n_gold + n_gold + len(labels))                      # 2TP / (2TP + FN)
    assert fitted.score(texts, with_unseen) == pytest.approx(expected)


def test_max_labels_per_text_refuses_a_text_with_more_labels():
    texts = ["grain wheat corn", "oil crude", "gold silver", "ships ports"]
    labels = [["grain", "wheat", "corn"], ["crude"], ["gold"], ["ship"]]
    with pytest.raises(DataFormatError, match="max_per_text"):
        SGMClassifier(**SMALL, max_labels_per_text=2).fit(texts, labels)


def test_precision_reaches_training_and_prediction(data, monkeypatch):
    from seq2labels.pipeline import recipe

    seen = {}
    real_train = recipe.train

    def spy(cfg, *args, **kwargs):
        seen["train"], seen["decode"] = cfg.train.precision, cfg.decode.precision
        return real_train(cfg, *args, **kwargs)

    monkeypatch.setattr(recipe, "train", spy)
    texts, labels, _ = data
    est = SGMClassifier(**SMALL, precision="bf16").fit(texts[:40], labels[:40])
    assert seen == {"train": "bf16", "decode": "bf16"} and est.generator_.precision == "bf16"
    with pytest.raises(Exception, match="fp16"):
        SGMClassifier(**SMALL, precision="fp16").fit(texts[:40], labels[:40])   # a GPU mode: refused on the CPU


def test_n_models_trains_seeds_and_decodes_them_as_one(data, fitted, single_thread):
    from seq2labels.errors import ConfigError
    from seq2labels.pipeline.ensemble import EnsembleGenerator

    texts, labels, test = data
    with single_thread():
        est = SGMClassifier(**SMALL, n_models=2, min_labels=1).fit(texts, labels)
    assert isinstance(est.generator_, EnsembleGenerator) and len(est.members_) == 2
    assert [m.config.train.seed for m in est.members_] == [0, 1]
    expected = EnsembleGenerator(est.members_).predict(test, min_labels=1)
    assert est.predict_labels(test) == [p.labels for p in expected]
    assert est.predict(test).shape == (len(test), len(est.classes_))
    assert clone(est).get_params()["n_models"] == 2
    assert clone(est).set_params(n_models=3).n_models == 3
    with pytest.raises(ConfigError, match="no single model folder"):
        est.save("unused")
    with pytest.raises(ConfigError, match="n_models must be an integer >= 1"):
        SGMClassifier(**SMALL, n_models=0).fit(texts, labels)
