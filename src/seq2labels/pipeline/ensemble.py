"""Several trained models decoded together: :class:`EnsembleGenerator`.

One beam runs over the mean of the members' step distributions
(:class:`seq2labels.decoding.ensemble.EnsembleStepModel`), not a vote over their outputs.
The ensemble's labels are the union of the members': the first member's in its order, then
labels only later members know. Members' label ids may differ (each seed's training split
sorts the labels by its own frequencies) and a member may lack a label (a seed's validation
split can hold a rare label's only examples): it then gives that label probability 0, so a
label known to one member of three can still be emitted, with a third of that member's
probability. Members sharing no label at all are refused. Each member reads the text with
its own tokenizer and vocabulary. Decoding defaults (beam, label limits, text settings for
attention tokens) and the attention shown are the **first member's**; training label counts
(rare_macro_f1) are the first member's too. A member's own thresholds are not used (they were
tuned for that member's scores); tune the ensemble's with
:func:`seq2labels.pipeline.thresholds.tune_generator` and set ``thresholds``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from seq2labels.data.dataset import batch_indices, collate
from seq2labels.data.labels import BOS_ID, EOS_ID, PAD_ID, LabelVocab
from seq2labels.data.readers import Example
from seq2labels.decoding import decode
from seq2labels.decoding.ensemble import EnsembleStepModel
from seq2labels.errors import ConfigError
from seq2labels.pipeline.generator import LabelDecoding, LabelGenerator, _check_texts, _split_rows, resolve_decoding

__all__ = ["EnsembleGenerator", "load_ensemble"]


class EnsembleGenerator(LabelDecoding):
    """Decode ``members`` (LabelGenerators) as one model; same predict/evaluate as a LabelGenerator."""

    def __init__(self, members: Sequence[LabelGenerator]):
        members = list(members)
        if not members:
            raise ConfigError("an ensemble needs at least one model")
        first = list(members[0].label_vocab.labels)
        for k, member in enumerate(members[1:], start=1):
            if not set(member.label_vocab.labels) & set(first):
                raise ConfigError(f"ensemble member {k} shares no label with member 0 (its labels begin "
                                  f"{list(member.label_vocab.labels)[:5]}, member 0's {first[:5]})")
        devices = {str(m.device) for m in members}
        if len(devices) != 1:
            raise ConfigError(f"ensemble members must be on one device, got {sorted(devices)}")
        self.members = members
        self.label_vocab = _union_vocab(members)
        self.config = members[0].config
        self.tokenizer = members[0].tokenizer
        self.data_summary = members[0].data_summary
        self.thresholds = None
        self.use_thresholds = True
        self.label_maps = [_label_map(list(self.label_vocab.labels), member.label_vocab) for member in members]

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    def encode_texts(self, texts: Sequence[str]) -> list:
        texts = _check_texts(texts)
        return [member.encode_texts(texts) for member in self.members]

    def encode_examples(self, examples: Sequence[Example]) -> list:
        return [member.encode_examples(examples) for member in self.members]

    @torch.inference_mode()
    def decode_encoded(self, encoded: list, *, beam_size: int | None = None, max_labels: int | None = None,
                       min_labels: int | None = None, batch_size: int = 256, return_attention: bool = False,
                       precision: str | None = None) -> list[dict]:
        """Decode per-member encodings of the same texts; rows come back in input order.
        Batches are cut by the first member's lengths; every member sees the same documents."""
        from seq2labels.training.precision import autocast

        beam_size, max_labels, min_labels = resolve_decoding(self.config.decode, beam_size, max_labels, min_labels)
        first = self.members[0]
        precision = first._checked_precision(first.precision if precision is None else precision)
        step_model = EnsembleStepModel([m.model if m.step_model is None else m.step_model for m in self.members],
                                       label_maps=self.label_maps)
        training = [m.model.training for m in self.members]
        for member in self.members:
            member.model.eval()
        rows: list[dict | None] = [None] * len(encoded[0])
        lengths = [len(t) for t in encoded[0].token_ids]
        try:
            for idx in batch_indices(lengths, batch_size, shuffle=False, bucket=True):
                batches = [collate(member_encoded, idx).to(self.device) for member_encoded in encoded]
                inputs = [(batch.src, batch.src_lengths) for batch in batches]
                with autocast(self.device, precision):
                    out = decode(step_model, inputs, batches[0].src_lengths, beam_size=beam_size,
                                 max_labels=max_labels, min_labels=min_labels, return_attention=return_attention)
                for r, row in enumerate(_split_rows(out, batches[0], return_attention)):
                    rows[int(batches[0].index[r])] = row
        finally:
            for member, was_training in zip(self.members, training):
                member.model.train(was_training)
        return rows  # type: ignore[return-value]


def _union_vocab(members: Sequence[LabelGenerator]) -> LabelVocab:
    """Member 0's label vocabulary, extended by the labels only later members know."""
    first = members[0].label_vocab
    labels = list(first.labels)
    seen = set(labels)
    for member in members[1:]:
        extra = [label for label in member.label_vocab.labels if label not in seen]
        labels += extra
        seen.update(extra)
    if len(labels) == len(first.labels):
        return first
    rank = None
    if first.rank is not None:  # later labels go after member 0's in the training order
        rank = {**first.rank, **{label: len(first.labels) + i for i, label in enumerate(labels[len(first.labels):])}}
    return LabelVocab(labels, order=first.order, rank=rank)


def _label_map(labels: list[str], member_vocab) -> torch.Tensor | None:
    """(V,) member id of each ensemble output id (PAD, BOS, EOS stay; -1: the member lacks the
    label); None when the member's ids are the ensemble's."""
    if list(member_vocab.labels) == labels:
        return None
    known = set(member_vocab.labels)
    return torch.tensor([PAD_ID, BOS_ID, EOS_ID, *(member_vocab.id(label) if label in known else -1
                                                   for label in labels)], dtype=torch.long)


def load_ensemble(paths: Sequence[str | Path], load=None) -> LabelDecoding:
    """One model folder: that LabelGenerator; several: their EnsembleGenerator. ``load(path)``
    loads one folder (default :meth:`LabelGenerator.load`, e.g. load_for_inference with options)."""
    load = load or LabelGenerator.load
    members = [load(path) for path in paths]
    return members[0] if len(members) == 1 else EnsembleGenerator(members)
