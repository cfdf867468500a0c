"""Encoding, collation, and batch order."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seq2labels.data import (
    EOS_ID,
    PAD_ID,
    EncodedDataset,
    Example,
    LabelVocab,
    RegexTokenizer,
    Vocab,
    batch_indices,
    collate,
    encode_dataset,
    iter_batches,
    read_examples,
)

SHARED_DATA = Path(os.environ.get("SEQ2LABELS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data sets not found at {SHARED_DATA}")

TOK = RegexTokenizer()
TRAIN = [Example("the cat sat", ("b", "a")), Example("a dog", ("b",)), Example("", ("a", "c"))]


def fitted():
    vocab = Vocab.build(TOK(e.text) for e in TRAIN)
    labels = LabelVocab.build(e.labels for e in TRAIN)
    return vocab, labels


# --------------------------------------------------------------------------- encode_dataset


def test_encode_dataset_tokens_and_targets():
    vocab, labels = fitted()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = encode_dataset(TRAIN, TOK, vocab, labels, max_len=2)
    assert len(ds) == 3
    assert ds.token_ids[0] == vocab.encode(["the", "cat"])
    assert ds.token_ids[2] == []
    # frequency order: a and b both occur twice -> alphabetical tie-break, then c
    assert [labels.decode(t) for t in ds.target_ids] == [["a", "b"], ["b"], ["a", "c"]]


def test_unseen_labels_warn_once_sorted_with_count():
    vocab, labels = fitted()
    new = [Example("x", ("z", "a")), Example("y", ("y", "z")),
           *[Example("w", (f"new{i:02d}",)) for i in range(25)]]
    with pytest.warns(UserWarning) as record:
        ds = encode_dataset(new, TOK, vocab, labels, max_len=None)
    msgs = [str(w.message) for w in record]
    assert len(msgs) == 1
    assert msgs[0].startswith("27 label(s)")
    assert "'new00'" in msgs[0] and "'new19'" in msgs[0] and "'y'" not in msgs[0]
    assert "and 7 more" in msgs[0]
    assert ds.target_ids[0] == [labels.id("a")] and ds.target_ids[1] == []


def test_encoded_dataset_checks_lengths():
    with pytest.raises(ValueError, match="rows"):
        EncodedDataset(token_ids=[[1]], target_ids=[])


# --------------------------------------------------------------------------- collate


def test_collate_shapes_padding_eos_and_empty_text():
    ds = EncodedDataset(token_ids=[[5, 6, 7], [], [8]], target_ids=[[3], [4, 5], []])
    b = collate(ds, [0, 1, 2])
    assert len(b) == 3
    assert b.src.dtype == torch.long and b.src.shape == (3, 3)
    assert b.src.tolist() == [[5, 6, 7], [PAD_ID, 0, 0], [8, 0, 0]]
    assert b.src_lengths.tolist() == [3, 1, 1]  # empty text -> one PAD of length 1
    assert b.targets.tolist() == [[3, EOS_ID, PAD_ID], [4, 5, EOS_ID], [EOS_ID, PAD_ID, PAD_ID]]
    assert b.index.tolist() == [0, 1, 2]


def test_collate_subset_keeps_index_and_trims_width():
    ds = EncodedDataset(token_ids=[[5, 6, 7, 9], [4], [8, 8]], target_ids=[[3, 4, 5], [4], [3]])
    b = collate(ds, [2, 1])
    assert b.src.shape == (2, 2) and b.targets.shape == (2, 2)
    assert b.index.tolist() == [2, 1]
    # the lengths allow packing
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        b.src.unsqueeze(-1).float(), b.src_lengths, batch_first=True, enforce_sorted=False)
    assert packed.data.shape[0] == 3


def test_batch_to_device_and_empty_collate():
    ds = EncodedDataset(token_ids=[[5]], target_ids=[[3]])
    b = collate(ds, [0]).to("cpu")
    assert b.src.device.type == "cpu" and b.src_lengths.device.type == "cpu"
    with pytest.raises(ValueError, match="empty batch"):
        collate(ds, [])


# --------------------------------------------------------------------------- batch_indices


def flat(batches):
    return sorted(i for b in batches for i in b)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(0, 300), max_size=400), batch_size=st.integers(1, 40),
       shuffle=st.booleans(), bucket=st.booleans(), seed=st.integers(0, 2**31))
def test_each_index_exactly_once(lengths, batch_size, shuffle, bucket, seed):
    batches = batch_indices(lengths, batch_size, shuffle=shuffle, seed=seed, bucket=bucket)
    assert flat(batches) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert sum(len(b) < batch_size for b in batches) <= (
        -(-len(lengths) // (batch_size * 50)) if shuffle and bucket else 1)


def test_deterministic_per_seed_and_seed_matters():
    lengths = list(np.random.default_rng(0).integers(1, 100, size=500))
    a = batch_indices(lengths, 8, shuffle=True, seed=1)
    assert a == batch_indices(lengths, 8, shuffle=True, seed=1)
    assert a != batch_indices(lengths, 8, shuffle=True, seed=2)
    assert all(isinstance(i, int) for b in a for i in b)


def test_eval_order_sorted_by_length_or_plain():
    lengths = [5, 1, 3, 1, 4]
    assert batch_indices(lengths, 2, shuffle=False) == [[1, 3], [2, 4], [0]]
    assert batch_indices(lengths, 2, shuffle=False, bucket=False) == [[0, 1], [2, 3], [4]]


def test_bucketed_batches_have_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 1000, size=3200).tolist()

    def mean_spread(batches):
        return np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])

    bucketed = batch_indices(lengths, 32, shuffle=True, seed=0, bucket=True)
    plain = batch_indices(lengths, 32, shuffle=True, seed=0, bucket=False)
    assert mean_spread(bucketed) < 0.1 * mean_spread(plain)
    # the batch order is still shuffled (not globally ascending)
    firsts = [lengths[b[0]] for b in bucketed]
    assert firsts != sorted(firsts)


def test_batch_size_validated():
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices([1, 2], 0, shuffle=False)
    assert batch_indices([], 4, shuffle=True) == []


# --------------------------------------------------------------------------- real data


@needs_shared_data
def test_iter_batches_on_goemotions():
    examples = read_examples(SHARED_DATA / "goemotions" / "valid.jsonl.gz")
    vocab = Vocab.build((TOK(e.text) for e in examples), min_count=2)
    labels = LabelVocab.build(e.labels for e in examples)
    ds = encode_dataset(examples, TOK, vocab, labels, max_len=40)
    seen = []
    for b in iter_batches(ds, 64, shuffle=True, seed=3):
        assert b.src.shape[1] == int(b.src_lengths.max()) <= 40
        assert (b.src_lengths >= 1).all()
        # exactly one EOS per row, right after the labels
        assert ((b.targets == EOS_ID).sum(dim=1) == 1).all()
        n_labels = (b.targets > EOS_ID).sum(dim=1)
        assert (b.targets.gather(1, n_labels.unsqueeze(1)).squeeze(1) == EOS_ID).all()
        seen.extend(b.index.tolist())
    assert sorted(seen) == list(range(5426))
