"""Label vocabulary: ids, training orders, decoding, and saving."""

from __future__ import annotations

import os
from pathlib import Path

import json

import pytest

from seq2labels.data.labels import (
    BOS_ID,
    EOS_ID,
    LABEL_ORDERS,
    PAD_ID,
    SPECIAL_LABELS,
    LabelVocab,
)
from seq2labels.data.readers import read_examples

SHARED_DATA = Path(os.environ.get("SEQ2LABELS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data sets not found at {SHARED_DATA}")

# counts (once per example): b:3, a:2, c:2, d:1
TRAIN = [["a", "b"], ["c", "b"], ["b", "c", "a"], ["d"]]


def test_ids_and_sizes():
    lv = LabelVocab.build(TRAIN)
    assert (PAD_ID, BOS_ID, EOS_ID) == (0, 1, 2)
    assert lv.labels == ["b", "a", "c", "d"]  # by frequency, ties alphabetical
    assert lv.num_labels == 4 and lv.size == 7 and len(lv) == 4
    assert [lv.id(x) for x in lv.labels] == [3, 4, 5, 6]
    assert [lv.name(i) for i in range(7)] == [*SPECIAL_LABELS, "b", "a", "c", "d"]
    with pytest.raises(KeyError, match="unknown label 'zz'"):
        lv.id("zz")
    with pytest.raises(IndexError):
        lv.name(7)


def test_label_counted_once_per_example():
    lv = LabelVocab.build([["a", "a", "a"], ["b"], ["b"]])
    assert lv.labels == ["b", "a"]


def test_frequency_order_with_ties():
    lv = LabelVocab.build(TRAIN, order="frequency")
    # a and c both occur twice: the tie is broken alphabetically, after the more frequent b
    assert lv.decode(lv.encode_targets(["d", "c", "a", "b"])) == ["b", "a", "c", "d"]


def test_alphabetical_order():
    lv = LabelVocab.build(TRAIN, order="alphabetical")
    assert lv.decode(lv.encode_targets(["d", "b", "c", "a"])) == ["a", "b", "c", "d"]


def test_given_order_keeps_example_order_and_drops_repeats():
    lv = LabelVocab.build(TRAIN, order="given")
    assert lv.decode(lv.encode_targets(["d", "b", "d", "a"])) == ["d", "b", "a"]


def test_random_order_is_seeded_and_fixed_across_examples():
    a = LabelVocab.build(TRAIN, order="random", seed=5)
    b = LabelVocab.build(TRAIN, order="random", seed=5)
    assert a.rank == b.rank
    assert sorted(a.rank.values()) == [0, 1, 2, 3]
    full = a.decode(a.encode_targets(["a", "b", "c", "d"]))
    assert a.decode(a.encode_targets(["d", "c", "b", "a"])) == full  # one permutation for all
    # subsets follow the same permutation
    assert a.decode(a.encode_targets(["c", "a"])) == [x for x in full if x in ("a", "c")]
    seeds = {tuple(LabelVocab.build(TRAIN, order="random", seed=s).decode(
        LabelVocab.build(TRAIN, order="random", seed=s).encode_targets("abcd")))
        for s in range(20)}
    assert len(seeds) > 1  # the seed matters


def test_unknown_labels_are_dropped():
    lv = LabelVocab.build(TRAIN)
    assert lv.encode_targets(["zz", "a"]) == [lv.id("a")]
    assert lv.encode_targets([]) == []
    assert lv.unknown(["a", "zz", "yy"]) == ["zz", "yy"]


def test_decode_skips_specials():
    lv = LabelVocab.build(TRAIN)
    assert lv.decode([BOS_ID, 3, 4, EOS_ID, PAD_ID, PAD_ID]) == ["b", "a"]


@pytest.mark.parametrize("order", LABEL_ORDERS)
def test_round_trip_keeps_order_and_rank(order):
    lv = LabelVocab.build(TRAIN, order=order, seed=11)
    back = LabelVocab.from_dict(json.loads(json.dumps(lv.to_dict())))
    assert back == lv and back.order == order
    targets = ["d", "a", "c", "b"]
    assert back.encode_targets(targets) == lv.encode_targets(targets)


def test_validation():
    with pytest.raises(ValueError, match="unknown label order"):
        LabelVocab(["a"], order="size")
    with pytest.raises(ValueError, match="unknown label order"):
        LabelVocab.build(TRAIN, order="size")
    with pytest.raises(ValueError, match="twice"):
        LabelVocab(["a", "a"])
    with pytest.raises(ValueError, match="non-empty"):
        LabelVocab(["a", ""])
    with pytest.raises(ValueError, match="rank does not match"):
        LabelVocab(["a", "b"], order="random", rank={"a": 0})
    with pytest.raises(ValueError, match="distinct"):
        LabelVocab(["a", "b"], order="random", rank={"a": 0, "b": 0})
    with pytest.raises(ValueError, match="no labels"):
        LabelVocab.build([[], []])


@needs_shared_data
def test_goemotions_label_set():
    examples = read_examples(SHARED_DATA / "goemotions" / "valid.jsonl.gz")
    lv = LabelVocab.build(e.labels for e in examples)
    expected = json.loads(open(SHARED_DATA / "goemotions" / "labels.json").read())
    assert set(lv.labels) == set(expected)
    assert lv.labels[0] == "neutral"  # the most frequent GoEmotions label
    for e in examples[:200]:
        ids = lv.encode_targets(e.labels)
        assert ids == sorted(ids)  # frequency order == id order for a built vocabulary
        assert sorted(lv.decode(ids)) == sorted(e.labels)


@pytest.mark.parametrize("order", ["orderfree", "learned"])
def test_model_decided_orders_start_from_frequency_order(order):
    """Their targets are built (and evaluation's gold is listed) in frequency order; the
    training loss or the learned order reorders them."""
    frequency = LabelVocab.build(TRAIN, order="frequency")
    lv = LabelVocab.build(TRAIN, order=order, seed=5)
    assert lv.order == order and lv.rank == frequency.rank
    assert lv.encode_targets(["d", "a", "c", "b"]) == frequency.encode_targets(["d", "a", "c", "b"])
