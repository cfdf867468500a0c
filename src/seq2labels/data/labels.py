"""The label vocabulary and the order in which the decoder learns to emit labels.

SGM turns a label *set* into a *sequence*; the order matters for training. The paper sorts
each target by descending training frequency, so frequent labels (easier to predict) come
first. The other orders exist to compare against that choice.

"orderfree" and "learned" are *training* orders decided by the model while it trains (see
:mod:`seq2labels.training.label_order`); the vocabulary gives them the frequency rank, which is
the starting order their targets are built in and the reference order evaluation reports the
label position deviation against.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIAL_LABELS = ("<pad>", "<bos>", "<eos>")
LABEL_ORDERS = ("frequency", "alphabetical", "given", "random", "orderfree", "learned")
# Orders the model decides during training; their targets start from (and are reported against) frequency.
MODEL_ORDERS = ("orderfree", "learned")
N_SPECIAL = len(SPECIAL_LABELS)


class LabelVocab:
    """Label names <-> decoder ids (label ``i`` of :attr:`labels` has id ``i + 3``).

    ``rank`` fixes the training order of targets: a smaller rank is emitted earlier. When it is
    omitted, "frequency" (and "orderfree", "learned") takes the order of ``labels`` (which
    :meth:`build` sorts by frequency), "alphabetical" sorts the names, and "random" draws the seed-0 permutation.
    "given" keeps each example's own order and needs no rank.
    """

    def __init__(self, labels: list[str], order: str = "frequency",
                 rank: dict[str, int] | None = None):
        if order not in LABEL_ORDERS:
            raise ValueError(f"unknown label order {order!r}; expected one of {LABEL_ORDERS}")
        self.labels: list[str] = _check_labels(labels)
        self.order = order
        self._index = {name: i + N_SPECIAL for i, name in enumerate(self.labels)}
        self.rank: dict[str, int] | None = (
            _check_rank(rank, self.labels) if rank is not None
            else default_rank(self.labels, order))

    @classmethod
    def build(cls, label_lists: Iterable[Sequence[str]], order: str = "frequency",
              seed: int = 0) -> LabelVocab:
        """Collect the labels of a training set, listed by descending frequency (ties by name).

        Frequency counts each label once per example. ``seed`` only matters for "random".
        """
        if order not in LABEL_ORDERS:
            raise ValueError(f"unknown label order {order!r}; expected one of {LABEL_ORDERS}")
        counts: Counter[str] = Counter()
        for labels in label_lists:
            counts.update(set(labels))
        names = sorted(counts, key=lambda name: (-counts[name], name))
        if not names:
            raise ValueError("no labels found in the training data")
        rank = random_rank(names, seed) if order == "random" else None
        return cls(names, order=order, rank=rank)

    @property
    def num_labels(self) -> int:
        """Number of real labels (without the 3 special symbols)."""
        return len(self.labels)

    @property
    def size(self) -> int:
        """The decoder's output size: real labels plus PAD, BOS and EOS."""
        return self.num_labels + N_SPECIAL

    def __len__(self) -> int:
        return self.num_labels

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LabelVocab) and self.labels == other.labels
                and self.order == other.order and self.rank == other.rank)

    def __repr__(self) -> str:
        return f"LabelVocab(num_labels={self.num_labels}, order={self.order!r})"

    def id(self, label: str) -> int:
        """The decoder id of ``label`` (KeyError when it is not in the vocabulary)."""
        try:
            return self._index[label]
        except KeyError:
            raise KeyError(f"unknown label {label!r}") from None

    def name(self, id: int) -> str:  # noqa: A002 - the API name is fixed
        """The name of decoder id ``id``; ids 0-2 are the special symbols."""
        if not 0 <= id < self.size:
            raise IndexError(f"label id {id} out of range [0, {self.size})")
        return SPECIAL_LABELS[id] if id < N_SPECIAL else self.labels[id - N_SPECIAL]

    def unknown(self, labels: Iterable[str]) -> list[str]:
        """The labels not in this vocabulary, in input order (used to warn about them)."""
        return [name for name in labels if name not in self._index]

    def encode_targets(self, labels: Sequence[str]) -> list[int]:
        """Ids of the known labels, in training order; unknown labels and repeats are dropped."""
        known = [name for name in dict.fromkeys(labels) if name in self._index]
        if self.order != "given":
            assert self.rank is not None
            known.sort(key=self.rank.__getitem__)
        return [self._index[name] for name in known]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Label names of ``ids``, skipping PAD, BOS and EOS."""
        return [self.name(int(i)) for i in ids if int(i) >= N_SPECIAL]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (keeps order and rank so a saved model trains/decodes the same)."""
        return {"labels": list(self.labels), "order": self.order,
                "rank": dict(self.rank) if self.rank is not None else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelVocab:
        """Rebuild a label vocabulary saved by :meth:`to_dict`."""
        if "labels" not in d:
            raise ValueError("label vocabulary dict has no 'labels' key")
        rank = d.get("rank")
        rank = {str(k): int(v) for k, v in rank.items()} if rank is not None else None
        return cls(d["labels"], order=d.get("order", "frequency"), rank=rank)


def default_rank(labels: list[str], order: str) -> dict[str, int] | None:
    """The rank used when none is given (see :class:`LabelVocab`)."""
    if order == "frequency" or order in MODEL_ORDERS:
        return {name: i for i, name in enumerate(labels)}
    if order == "alphabetical":
        return {name: i for i, name in enumerate(sorted(labels))}
    if order == "random":
        return random_rank(labels, seed=0)
    return None


def random_rank(labels: list[str], seed: int) -> dict[str, int]:
    """A fixed, seeded permutation of the label set (independent of any example)."""
    perm = np.random.default_rng(seed).permutation(len(labels))
    return {name: int(r) for name, r in zip(labels, perm)}


def _check_labels(labels: Sequence[str]) -> list[str]:
    """Labels must be distinct non-empty strings, or ids would be ambiguous."""
    labels = list(labels)
    seen: set[str] = set()
    for name in labels:
        if not isinstance(name, str) or not name:
            raise ValueError(f"labels must be non-empty strings, got {name!r}")
        if name in seen:
            raise ValueError(f"label {name!r} listed twice")
        seen.add(name)
    return labels


def _check_rank(rank: dict[str, int], labels: list[str]) -> dict[str, int]:
    """A rank must cover exactly the labels with distinct integers."""
    if set(rank) != set(labels):
        missing = sorted(set(labels) - set(rank))[:5]
        extra = sorted(set(rank) - set(labels))[:5]
        raise ValueError(f"rank does not match the labels (missing {missing}, extra {extra})")
    if len(set(rank.values())) != len(rank):
        raise ValueError("rank values must be distinct")
    return {name: int(rank[name]) for name in labels}
