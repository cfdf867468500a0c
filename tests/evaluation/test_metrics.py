"""Tests for seq2labels.evaluation.metrics: agreement with scikit-learn, hand-computed values, errors."""

from __future__ import annotations

import warnings
from fractions import Fraction as F

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    hamming_loss,
    jaccard_score,
    precision_recall_fscore_support,
)

from seq2labels.evaluation.metrics import (
    METRIC_NAMES,
    binarize,
    evaluate_label_lists,
    format_metrics,
    label_position_deviation,
    multilabel_metrics,
    per_label_report,
    top1_fallback,
)

TOL = 1e-12


# ---------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------

def sklearn_reference(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Direct sklearn calls on the raw matrices (valid for >= 2 label columns)."""
    def prf(avg):
        return precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0)[:3]

    mi, ma, ex = prf("micro"), prf("macro"), prf("samples")
    return {
        "micro_precision": mi[0], "micro_recall": mi[1], "micro_f1": mi[2],
        "macro_precision": ma[0], "macro_recall": ma[1], "macro_f1": ma[2],
        "example_precision": ex[0], "example_recall": ex[1], "example_f1": ex[2],
        "subset_accuracy": accuracy_score(y_true, y_pred),
        "hamming_loss": hamming_loss(y_true, y_pred),
        "jaccard": jaccard_score(y_true, y_pred, average="samples", zero_division=0),
    }


def single_label_reference(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """One label column: sklearn's binary metrics, plus the per-document values
    written out (sklearn refuses average="samples" for a single column).

    With one label a document scores 1 on every example metric only when gold and
    pred are both {label}; otherwise 0 (both empty is 0 under zero_division=0).
    """
    t, p = y_true[:, 0], y_pred[:, 0]
    bp, br, bf, _ = precision_recall_fscore_support(t, p, average="binary", pos_label=1,
                                                    zero_division=0)
    both = float(np.mean((t == 1) & (p == 1)))
    return {
        "micro_precision": bp, "micro_recall": br, "micro_f1": bf,
        "macro_precision": bp, "macro_recall": br, "macro_f1": bf,
        "example_precision": both, "example_recall": both, "example_f1": both,
        "subset_accuracy": accuracy_score(t, p),
        "hamming_loss": hamming_loss(t, p),
        "jaccard": both,
    }


def reference(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    if y_true.shape[1] == 1:
        return single_label_reference(y_true, y_pred)
    return sklearn_reference(y_true, y_pred)


def assert_metrics_equal(got: dict, expected: dict) -> None:
    assert list(got)[: len(METRIC_NAMES)] == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert isinstance(got[name], float), name
        assert got[name] == pytest.approx(float(expected[name]), abs=TOL, rel=0), name


# ---------------------------------------------------------------------------
# agreement with sklearn on random matrices
# ---------------------------------------------------------------------------

def random_pairs(n_pairs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n_pairs):
        n_docs = int(rng.integers(1, 30))
        n_labels = int(rng.integers(1, 12))
        density_t, density_p = rng.uniform(0, 0.7, size=2)
        y_true = (rng.random((n_docs, n_labels)) < density_t).astype(np.uint8)
        y_pred = (rng.random((n_docs, n_labels)) < density_p).astype(np.uint8)
        yield y_true, y_pred


@pytest.mark.parametrize("y_true,y_pred", list(random_pairs(25)))
def test_random_matrices_match_sklearn(y_true, y_pred):
    assert_metrics_equal(multilabel_metrics(y_true, y_pred), reference(y_true, y_pred))


@st.composite
def indicator_pairs(draw):
    """Small 0/1 matrices; zero-heavy so all-zero rows and columns are common."""
    n_docs = draw(st.integers(1, 7))
    n_labels = draw(st.integers(1, 6))
    cell = st.sampled_from([0, 0, 1])

    def matrix():
        rows = st.lists(st.lists(cell, min_size=n_labels, max_size=n_labels),
                        min_size=n_docs, max_size=n_docs)
        return np.array(draw(rows), dtype=np.uint8).reshape(n_docs, n_labels)

    return matrix(), matrix()


@settings(max_examples=40, deadline=None)
@given(indicator_pairs())
def test_hypothesis_matrices_match_sklearn(pair):
    y_true, y_pred = pair
    expected = reference(y_true, y_pred)
    assert_metrics_equal(multilabel_metrics(y_true, y_pred), expected)
    # sparse input (here mixed with dense) gives identical numbers
    assert_metrics_equal(multilabel_metrics(sp.csr_matrix(y_true), y_pred), expected)


def test_single_row_and_all_zero_columns_match_sklearn():
    y_true = np.array([[1, 0, 0, 1]])
    y_pred = np.array([[1, 1, 0, 0]])
    assert_metrics_equal(multilabel_metrics(y_true, y_pred), sklearn_reference(y_true, y_pred))


def test_both_sparse_inputs_match_dense():
    expected = multilabel_metrics(HAND_TRUE, HAND_PRED)
    got = multilabel_metrics(sp.coo_array(HAND_TRUE), sp.csc_matrix(HAND_PRED))
    assert got == expected
    single = multilabel_metrics(sp.csr_matrix(HAND_TRUE[:, :1]), sp.csr_matrix(HAND_PRED[:, :1]))
    assert single == multilabel_metrics(HAND_TRUE[:, :1], HAND_PRED[:, :1])


def test_bool_and_float_inputs_accepted():
    y_true = np.array([[1, 0], [0, 1]])
    y_pred = np.array([[1, 1], [0, 0]])
    expected = multilabel_metrics(y_true, y_pred)
    assert multilabel_metrics(y_true.astype(bool), y_pred.astype(bool)) == expected
    assert multilabel_metrics(y_true.astype(float), y_pred.astype(np.float32)) == expected


# ---------------------------------------------------------------------------
# hand-computed examples
# ---------------------------------------------------------------------------

# 4 docs x 3 labels
HAND_TRUE = np.array([[1, 1, 0],
                      [0, 1, 1],
                      [1, 0, 0],
                      [0, 0, 1]])
HAND_PRED = np.array([[1, 0, 0],
                      [0, 1, 1],
                      [0, 1, 0],
                      [0, 0, 1]])
# Per label:  L0 tp1 fp0 fn1 -> P 1,   R 1/2, F 2/3
#             L1 tp1 fp1 fn1 -> P 1/2, R 1/2, F 1/2
#             L2 tp2 fp0 fn0 -> P 1,   R 1,   F 1
# Micro: tp4 fp1 fn2 -> P 4/5, R 4/6 = 2/3, F 2*4/(2*4+1+2) = 8/11
# Macro: P (1+1/2+1)/3 = 5/6, R (1/2+1/2+1)/3 = 2/3, F (2/3+1/2+1)/3 = 13/18
# Per doc (P, R, F, J): d0 gold{0,1} pred{0}   -> 1, 1/2, 2/3, 1/2
#                       d1 gold{1,2} pred{1,2} -> 1, 1,   1,   1
#                       d2 gold{0}   pred{1}   -> 0, 0,   0,   0
#                       d3 gold{2}   pred{2}   -> 1, 1,   1,   1
# Example: P 3/4, R (1/2+1+0+1)/4 = 5/8, F (2/3+1+0+1)/4 = 2/3, Jaccard 5/8
# Subset accuracy: d1, d3 exact -> 2/4 = 1/2
# Hamming: wrong cells d0:L1, d2:L0, d2:L1 -> 3/12 = 1/4
HAND_EXPECTED = {
    "micro_f1": F(8, 11), "macro_f1": F(13, 18), "example_f1": F(2, 3),
    "subset_accuracy": F(1, 2), "hamming_loss": F(1, 4),
    "micro_precision": F(4, 5), "micro_recall": F(2, 3),
    "macro_precision": F(5, 6), "macro_recall": F(2, 3),
    "example_precision": F(3, 4), "example_recall": F(5, 8), "jaccard": F(5, 8),
}


def test_hand_example_every_metric():
    assert_metrics_equal(multilabel_metrics(HAND_TRUE, HAND_PRED), HAND_EXPECTED)


def test_hand_example_single_label():
    y_true = np.array([[1], [0], [1], [0]])
    y_pred = np.array([[1], [1], [0], [0]])
    # tp1 fp1 fn1 -> micro = macro P = R = F = 1/2
    # docs: (1,1) scores 1; (0,1), (1,0) and (0,0) score 0 -> example P/R/F/J = 1/4
    # subset accuracy: docs 0 and 3 match -> 1/2; hamming: 2 wrong of 4 cells -> 1/2
    half, quarter = F(1, 2), F(1, 4)
    expected = {n: half for n in METRIC_NAMES}
    expected.update({n: quarter for n in ("example_precision", "example_recall",
                                          "example_f1", "jaccard")})
    assert_metrics_equal(multilabel_metrics(y_true, y_pred), expected)


def test_both_empty_document_scores_zero_in_example_metrics():
    # sklearn convention with zero_division=0: doc 0 (gold {} / pred {}) scores 0,
    # doc 1 is perfect -> example P/R/F1 and Jaccard = (0 + 1)/2 = 1/2,
    # while subset accuracy = 1 and hamming loss = 0.
    y = np.array([[0, 0], [1, 0]])
    m = multilabel_metrics(y, y.copy())
    for name in ("example_precision", "example_recall", "example_f1", "jaccard"):
        assert m[name] == 0.5
    assert m["subset_accuracy"] == 1.0
    assert m["hamming_loss"] == 0.0
    assert m["micro_f1"] == 1.0


# ---------------------------------------------------------------------------
# input validation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "y_true,y_pred,match",
    [
        (np.zeros((2, 3)), np.zeros((2, 4)), "same shape"),
        (np.zeros((2, 3)), np.zeros((3, 3)), "same shape"),
        (np.zeros(3), np.zeros(3), "2-D"),
        (np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), "2-D"),
        (np.array([[0, 2]]), np.array([[0, 1]]), "only 0 and 1"),
        (np.array([[0, 1]]), np.array([[0.5, 1]]), "only 0 and 1"),
        (np.array([[0, np.nan]]), np.array([[0, 1]]), "only 0 and 1"),
        (np.array([[0, -1]]), np.array([[0, 1]]), "only 0 and 1"),
        (sp.csr_matrix(np.array([[0, 3]])), np.array([[0, 1]]), "only 0 and 1"),
        (np.zeros((0, 3)), np.zeros((0, 3)), "zero documents"),
        (np.zeros((2, 0)), np.zeros((2, 0)), "zero labels"),
    ],
)
def test_multilabel_metrics_rejects_bad_input(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        multilabel_metrics(y_true, y_pred)


# ---------------------------------------------------------------------------
# label_position_deviation
# ---------------------------------------------------------------------------

def test_lpd_swapped_labels():
    # a: pred 1, gold 0; b: pred 0, gold 1 -> (1 + 1)/2 = 1.0; c is missed, not counted
    assert label_position_deviation([["a", "b", "c"]], [["b", "a"]]) == 1.0


def test_lpd_perfect_order_is_zero():
    assert label_position_deviation([["a", "b"]], [["a", "b", "x"]]) == 0.0


def test_lpd_no_correct_labels_is_zero_not_nan():
    assert label_position_deviation([["a"], []], [["b"], ["c"]]) == 0.0
    assert label_position_deviation([], []) == 0.0


def test_lpd_averages_over_labels_not_documents():
    # doc0: a |1-0| = 1, b |0-1| = 1; doc1: x |0-0| = 0 -> (1+1+0)/3 = 2/3
    # (a per-document mean would give (1 + 0)/2 = 1/2)
    got = label_position_deviation([["a", "b"], ["x"]], [["b", "a"], ["x"]])
    assert got == pytest.approx(2 / 3, abs=TOL)


def test_lpd_larger_shift_and_repeat_uses_first_position():
    # gold [a, b, c], pred [c, a, c]: c |0-2| = 2, a |1-0| = 1 -> 3/2
    assert label_position_deviation([["a", "b", "c"]], [["c", "a", "c"]]) == 1.5


def test_lpd_length_mismatch():
    with pytest.raises(ValueError, match="documents"):
        label_position_deviation([["a"]], [["a"], ["b"]])


# ---------------------------------------------------------------------------
# binarize
# ---------------------------------------------------------------------------

def test_binarize_basic():
    out = binarize([["b", "a"], [], ["c", "c"]], ["a", "b", "c"])
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[1, 1, 0], [0, 0, 0], [0, 0, 1]])


def test_binarize_unknown_label():
    with pytest.raises(ValueError, match="'z'"):
        binarize([["a"], ["z"]], ["a", "b"])


def test_binarize_duplicate_columns():
    with pytest.raises(ValueError, match="duplicate"):
        binarize([["a"]], ["a", "a"])


def test_binarize_string_instead_of_list():
    with pytest.raises(ValueError, match="list of labels"):
        binarize(["ab"], ["a", "b", "ab"])


# ---------------------------------------------------------------------------
# evaluate_label_lists
# ---------------------------------------------------------------------------

def test_evaluate_label_lists_matches_indicator_metrics():
    names = ["l0", "l1", "l2"]
    gold = [["l0", "l1"], ["l2", "l1"], ["l0"], ["l2"]]
    pred = [["l0"], ["l1", "l2"], ["l1"], ["l2"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = evaluate_label_lists(gold, pred, names)
    assert_metrics_equal(m, HAND_EXPECTED)
    # doc1: l1 |0-1| = 1, l2 |1-0| = 1; doc0 l0: 0; doc3 l2: 0 -> 2/4
    assert m["label_position_deviation"] == 0.5
    assert m["n_docs"] == 4


def test_unseen_gold_label_counts_as_miss_and_warns_once():
    gold = [["a"], ["b", "z"], ["a", "y"]]
    pred = [["a"], ["b"], ["a", "q"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = evaluate_label_lists(gold, pred, ["a", "b"])
    user = [w for w in caught if issubclass(w.category, UserWarning)]
    assert len(user) == 1
    msg = str(user[0].message)
    for label in ("'q'", "'y'", "'z'"):
        assert label in msg
    # tp: a, b, a = 3; fn: z, y = 2; fp: q = 1
    assert m["micro_recall"] == pytest.approx(3 / 5, abs=TOL)
    assert m["micro_precision"] == pytest.approx(3 / 4, abs=TOL)
    assert m["subset_accuracy"] == pytest.approx(1 / 3, abs=TOL)


def test_warning_lists_first_20_and_count():
    extras = [f"x{i:02d}" for i in range(25)]
    with pytest.warns(UserWarning) as record:
        evaluate_label_lists([extras], [["a"]], ["a"])
    assert len(record) == 1
    msg = str(record[0].message)
    assert "25" in msg and "5 more" in msg
    assert "'x19'" in msg and "'x20'" not in msg


def test_evaluate_label_lists_length_mismatch():
    with pytest.raises(ValueError, match="documents"):
        evaluate_label_lists([["a"]], [], ["a"])


# ---------------------------------------------------------------------------
# per_label_report
# ---------------------------------------------------------------------------

def test_per_label_report_hand_example():
    rows = per_label_report(HAND_TRUE, HAND_PRED, ["l0", "l1", "l2"])
    assert [r["label"] for r in rows] == ["l0", "l1", "l2"]
    assert [r["support"] for r in rows] == [2, 2, 2]
    # from the per-label hand computation above
    assert [r["precision"] for r in rows] == pytest.approx([1, 1 / 2, 1], abs=TOL)
    assert [r["recall"] for r in rows] == pytest.approx([1 / 2, 1 / 2, 1], abs=TOL)
    assert [r["f1"] for r in rows] == pytest.approx([2 / 3, 1 / 2, 1], abs=TOL)


def test_per_label_report_support_and_single_label():
    y_true = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0]])
    rows = per_label_report(y_true, np.zeros_like(y_true), ["a", "b", "c"])
    assert [r["support"] for r in rows] == [3, 1, 0]
    assert all(r["precision"] == r["recall"] == r["f1"] == 0.0 for r in rows)
    single = per_label_report(np.array([[1], [1]]), np.array([[1], [0]]), ["only"])
    assert single == [{"label": "only", "precision": 1.0, "recall": 0.5,
                       "f1": pytest.approx(2 / 3, abs=TOL), "support": 2}]


def test_per_label_report_name_count_mismatch():
    with pytest.raises(ValueError, match="label names"):
        per_label_report(HAND_TRUE, HAND_PRED, ["l0", "l1"])


# ---------------------------------------------------------------------------
# top1_fallback
# ---------------------------------------------------------------------------

def test_top1_fallback_fills_empty_rows_only():
    scores = np.array([[0.1, 0.9, 0.3], [0.5, 0.2, 0.1], [0.2, 0.7, 0.7]])
    y_pred = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=np.uint8)
    before = y_pred.copy()
    out = top1_fallback(scores, y_pred)
    # row 0 -> argmax 1; row 1 untouched; row 2 tie -> lowest index 1
    np.testing.assert_array_equal(out, [[0, 1, 0], [0, 0, 1], [0, 1, 0]])
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(y_pred, before)  # input not modified


def test_top1_fallback_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        top1_fallback(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="zero labels"):
        top1_fallback(np.zeros((2, 0)), np.zeros((2, 0)))


# ---------------------------------------------------------------------------
# format_metrics
# ---------------------------------------------------------------------------

def test_format_metrics_order_alignment_and_digits():
    metrics = {"n_docs": 4, "micro_f1": 8 / 11, "macro_f1": 0.5}
    text = format_metrics(metrics, digits=3)
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "value"]
    assert [ln.split()[0] for ln in lines[1:]] == ["micro_f1", "macro_f1", "n_docs"]
    assert lines[1].split()[1] == "0.727"
    assert lines[3].split()[1] == "4"
    assert len({len(ln) for ln in lines}) == 1  # right-aligned values -> equal widths


def test_format_metrics_keys_subset_and_missing():
    text = format_metrics({"a": 0.5, "b": 0.25}, keys=["b"])
    assert text.splitlines()[1].split() == ["b", "0.2500"]
    with pytest.raises(ValueError, match="c"):
        format_metrics({"a": 0.5}, keys=["c"])


def test_rare_macro_f1_by_hand():
    """Labels a (100 training docs), b (10), c (49), d (unseen in training: 0) -> b, c, d are rare."""
    gold = [["a", "b"], ["b"], ["c"], ["a", "d"]]
    pred = [["a", "b"], ["c"], ["c"], ["a"]]
    m = evaluate_label_lists(gold, pred, ["a", "b", "c"], train_counts={"a": 100, "b": 10, "c": 49})
    # b: tp 1, fp 0, fn 1 -> F1 2/3; c: tp 1, fp 1, fn 0 -> 2/3; d: tp 0 -> 0
    assert m["rare_label_count"] == 3
    assert m["rare_macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert "rare_macro_f1" not in evaluate_label_lists(gold, pred, ["a", "b", "c", "d"])


def test_rare_macro_f1_absent_without_rare_labels():
    m = evaluate_label_lists([["a"]], [["a"]], ["a"], train_counts={"a": 50})
    assert m["rare_label_count"] == 0 and "rare_macro_f1" not in m
