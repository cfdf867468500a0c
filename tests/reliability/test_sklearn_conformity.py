"""SGMClassifier against scikit-learn's data-free estimator checks.

scikit-learn's full ``parametrize_with_checks`` feeds numeric arrays, which a text model cannot
take (the baselines run it in tests/baselines/test_sklearn_checks.py); the checks here need no
data: construction, ``get_params``/``set_params``/``clone``, ``repr``, tags, and the
``NotFittedError`` of every prediction method before ``fit``.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as checks

from seq2labels.apps.estimators import SGMClassifier

DATA_FREE_CHECKS = [
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_parameters_default_constructible",
    "check_no_attributes_set_in_init",
    "check_get_params_invariance",
    "check_set_params",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_estimators_unfitted",
]
NON_DEFAULT = dict(embedding_dim=16, encoder_hidden=24, rnn_type="gru", global_embedding=True, dropout=0.1,
                   max_len=50, label_order="alphabetical", epochs=3, lr=0.01, beam_size=4, max_labels=6,
                   min_labels=1, seed=7, classes=["a", "b"])


@pytest.mark.parametrize("check", DATA_FREE_CHECKS)
def test_sklearn_data_free_check(check):
    getattr(checks, check)("SGMClassifier", SGMClassifier())


def test_get_params_returns_exactly_the_init_arguments():
    est = SGMClassifier(**NON_DEFAULT)
    params = est.get_params()
    for key, value in NON_DEFAULT.items():
        assert params[key] == value
    assert SGMClassifier(**params).get_params() == params


def test_set_params_round_trip_and_clone_keeps_params_not_state(tiny):
    est = SGMClassifier()
    assert est.set_params(**NON_DEFAULT) is est
    assert {k: est.get_params()[k] for k in NON_DEFAULT} == NON_DEFAULT
    est.generator_ = tiny.generator                       # as if fitted
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "generator_")
    with pytest.raises(ValueError, match="Invalid parameter 'no_such_param'"):
        est.set_params(no_such_param=1)


def test_repr_shows_only_changed_params():
    text = repr(SGMClassifier(epochs=3, beam_size=4))
    assert text == "SGMClassifier(beam_size=4, epochs=3)"
    assert eval(text, {"SGMClassifier": SGMClassifier}).get_params() == SGMClassifier(epochs=3, beam_size=4).get_params()


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_labels", "predict_sequences",
                                    "decision_function", "score", "save"])
def test_every_method_raises_not_fitted_before_fit(method, tmp_path):
    est = SGMClassifier()
    args = {"score": (["a text"], [["x"]]), "save": (tmp_path / "m",)}.get(method, (["a text"],))
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(est, method)(*args)


def test_an_unfitted_estimator_pickles_and_stays_unfitted():
    est = pickle.loads(pickle.dumps(SGMClassifier(epochs=2)))
    assert est.get_params() == SGMClassifier(epochs=2).get_params()
    with pytest.raises(NotFittedError):
        est.predict(["x"])


def test_params_are_not_validated_or_changed_in_init():
    """scikit-learn's rule: __init__ stores arguments as given (validation happens in fit)."""
    odd = np.array(["b", "a"], dtype=object)
    est = SGMClassifier(epochs=-1, classes=odd)
    assert est.epochs == -1 and est.classes is odd
