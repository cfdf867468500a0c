"""scikit-learn's estimator checks on every baseline (numeric input).

A 1-D ``y`` (the checks' binary and multi-class problems) is accepted as a single-output problem,
one-vs-rest encoded (see seq2labels.baselines.problem_transformation), so the classifier checks
apply unchanged; ``classifier_tags.multi_label`` adds the multi-label checks.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from seq2labels.baselines import (
    BinaryRelevance,
    BRkNN,
    ClassifierChain,
    EnsembleClassifierChains,
    LabelPowerset,
    MLkNN,
    RAkEL,
)

ESTIMATORS = [
    BinaryRelevance(),
    ClassifierChain(order="frequency"),
    EnsembleClassifierChains(n_chains=2, random_state=0),
    LabelPowerset(),
    RAkEL(labelset_size=2, random_state=0),
    RAkEL(labelset_size=2, mode="overlapping", random_state=0),
    MLkNN(k=3),
    BRkNN(k=3),
]


def expected_failed_checks(estimator) -> dict[str, str]:
    """Checks that cannot pass by design, with the reason (strict: a pass would fail the test)."""
    if isinstance(estimator, BRkNN):
        return {"check_classifiers_multilabel_output_format_predict_proba":
                "BRkNN's score is the fraction of the k neighbours having the label, exactly 0 when none "
                "has it; the check requires every multi-label probability to be strictly positive"}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks, xfail_strict=True)
def test_sklearn_compatible(estimator, check):
    check(estimator)
