"""Encoded data sets, padded batches, and length-bucketed batch order."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from seq2labels.data.labels import EOS_ID, PAD_ID, LabelVocab
from seq2labels.data.readers import Example
from seq2labels.data.tokenizer import tokenize
from seq2labels.data.vocab import Vocab

BUCKET_FACTOR = 50  # a training chunk holds this many batches before it is sorted by length
MAX_LABELS_NAMED = 20


@dataclass
class EncodedDataset:
    """Examples as ids: tokens (already truncated) and targets in training order."""

    token_ids: list[list[int]]
    target_ids: list[list[int]]

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.target_ids):
            raise ValueError(f"token_ids has {len(self.token_ids)} rows but target_ids has "
                             f"{len(self.target_ids)}")

    def __len__(self) -> int:
        return len(self.token_ids)

    def lengths(self) -> list[int]:
        """Token count of each example (for bucketing)."""
        return [len(ids) for ids in self.token_ids]


def encode_dataset(examples: Sequence[Example], tokenizer: Callable[[str], list[str]],
                   vocab: Vocab, label_vocab: LabelVocab,
                   max_len: int | None) -> EncodedDataset:
    """Tokenize and encode ``examples``.

    Labels missing from ``label_vocab`` cannot be targets; they are dropped here with one
    warning, and still count as misses when the evaluation compares with the gold labels.
    """
    token_ids: list[list[int]] = []
    target_ids: list[list[int]] = []
    unseen: set[str] = set()
    for ex in examples:
        token_ids.append(vocab.encode(tokenize(tokenizer, ex.text, max_len), max_len=max_len))
        target_ids.append(label_vocab.encode_targets(ex.labels))
        unseen.update(label_vocab.unknown(ex.labels))
    if unseen:
        _warn_unseen_labels(unseen)
    return EncodedDataset(token_ids=token_ids, target_ids=target_ids)


def _warn_unseen_labels(unseen: set[str]) -> None:
    """One warning naming the labels (sorted, at most 20) the model can never predict."""
    names = sorted(unseen)
    shown = ", ".join(repr(n) for n in names[:MAX_LABELS_NAMED])
    more = f" and {len(names) - MAX_LABELS_NAMED} more" if len(names) > MAX_LABELS_NAMED else ""
    warnings.warn(
        f"{len(names)} label(s) not in the label vocabulary (never seen in training) are "
        f"dropped from the targets and count as misses: {shown}{more}",
        UserWarning, stacklevel=3)


@dataclass
class SeqBatch:
    """One padded mini-batch for the encoder-decoder."""

    src: torch.Tensor          # (batch, time) long, padded with PAD (0); or a data.multimodal.Inputs
    src_lengths: torch.Tensor  # (batch,) long, >= 1
    targets: torch.Tensor      # (batch, steps) long: label ids, EOS, then PAD
    index: torch.Tensor        # (batch,) long: rows of the EncodedDataset

    def to(self, device: torch.device | str) -> SeqBatch:
        """The same batch with every tensor on ``device`` (packing copies lengths back itself)."""
        return SeqBatch(src=self.src.to(device), src_lengths=self.src_lengths.to(device),
                        targets=self.targets.to(device), index=self.index.to(device))

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def collate(dataset: EncodedDataset, indices: Sequence[int]) -> SeqBatch:
    """Pad the rows ``indices`` of ``dataset`` into a batch.

    An empty text becomes a single PAD token of length 1, because packed sequences reject
    length 0; every target ends with EOS so the decoder learns when to stop.
    """
    if hasattr(dataset, "collate"):  # a data set with its own inputs (images, fused modalities)
        return dataset.collate(indices)
    if len(indices) == 0:
        raise ValueError("cannot collate an empty batch")
    rows = [dataset.token_ids[i] or [PAD_ID] for i in indices]
    goals = [[*dataset.target_ids[i], EOS_ID] for i in indices]
    src = _pad(rows)  # (batch, time)
    targets = _pad(goals)  # (batch, steps)
    src_lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (batch,)
    index = torch.tensor(list(indices), dtype=torch.long)  # (batch,)
    return SeqBatch(src=src, src_lengths=src_lengths, targets=targets, index=index)


def _pad(rows: list[list[int]]) -> torch.Tensor:
    """Right-pad integer rows with PAD into a (rows, longest) long tensor."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), PAD_ID, dtype=np.int64)  # (rows, width)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return torch.from_numpy(out)  # (rows, width)


def batch_indices(lengths: Sequence[int], batch_size: int, *, shuffle: bool, seed: int = 0,
                  bucket: bool = True) -> list[list[int]]:
    """Split ``range(len(lengths))`` into batches; every index appears exactly once.

    Training (``shuffle``) draws a seeded permutation; with ``bucket`` it sorts chunks of
    ``batch_size * 50`` by length so a batch holds similar lengths (less padding) while the
    batch order stays random. Evaluation keeps a fixed order, sorted by length with ``bucket``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    lens = np.asarray(lengths, dtype=np.int64).reshape(-1)  # (n,)
    if shuffle:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(lens))  # (n,)
        if not bucket:
            return _cut(order, batch_size)
        batches = _bucketed(order, lens, batch_size)
        return [batches[i] for i in rng.permutation(len(batches))]
    order = np.arange(len(lens))  # (n,)
    if bucket:
        order = np.argsort(lens, kind="stable")
    return _cut(order, batch_size)


def _bucketed(order: np.ndarray, lens: np.ndarray, batch_size: int) -> list[list[int]]:
    """Sort each chunk of ``order`` by length (stable) and cut it into batches."""
    chunk = batch_size * BUCKET_FACTOR
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]  # (chunk,)
        part = part[np.argsort(lens[part], kind="stable")]
        batches.extend(_cut(part, batch_size))
    return batches


def _cut(order: np.ndarray, batch_size: int) -> list[list[int]]:
    """Consecutive slices of ``batch_size`` (the last may be shorter), as Python ints."""
    flat = order.tolist()
    return [flat[i:i + batch_size] for i in range(0, len(flat), batch_size)]


def iter_batches(dataset: EncodedDataset, batch_size: int, *, shuffle: bool, seed: int = 0,
                 bucket: bool = True) -> Iterator[SeqBatch]:
    """Collated batches of ``dataset`` in the order of :func:`batch_indices`."""
    for indices in batch_indices(dataset.lengths(), batch_size, shuffle=shuffle, seed=seed,
                                 bucket=bucket):
        yield collate(dataset, indices)
