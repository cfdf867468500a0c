"""Distillation targets: trained teachers' step distributions along each training example's targets.

A single model can be taught what an ensemble knows (Hinton et al., 2015, "Distilling the
knowledge in a neural network"): besides the one gold label of each step, it learns the
distribution the teachers give that step, which spreads mass over the labels they hesitate
between (``train.distill_from``, ``train.distill_weight``; the loss is in
:func:`seq2labels.training.losses.distillation_cross_entropy`).

Teachers are trained model folders with a text encoder, each with its own tokenizer, vocabulary
and label ids. For every training example each teacher is teacher-forced along the *student's*
target sequence (its fixed label order, then EOS); a label the teacher lacks reaches it as PAD,
as in an ensemble. Its step distributions are mapped onto the student's label ids (mass on a
label the student lacks is dropped and the step renormalised) and the teachers are averaged, as
:class:`~seq2labels.pipeline.ensemble.EnsembleGenerator` averages them when decoding. The order
is fixed, so this runs once, before training, and a resumed run recomputes the same table.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from seq2labels.data.dataset import EncodedDataset, batch_indices, collate
from seq2labels.data.labels import PAD_ID, LabelVocab
from seq2labels.errors import ConfigError
from seq2labels.pipeline.ensemble import _label_map
from seq2labels.pipeline.generator import LabelGenerator

__all__ = ["TeacherTargets", "distillation_targets", "load_teachers", "teacher_step_probs"]

log = logging.getLogger(__name__)


class TeacherTargets:
    """The soft targets of an encoded training set, (rows, steps, V) on the CPU; called with a
    batch's row index (batch,) and its number of target steps, returns (batch, steps, V)."""

    def __init__(self, table: Tensor):
        self.table = table

    def __call__(self, index: Tensor, steps: int) -> Tensor:
        return self.table.index_select(0, index.cpu())[:, :steps]  # (batch, steps, V)


def load_teachers(folders: Sequence[str | Path], device: str = "cpu") -> list[LabelGenerator]:
    """The teacher models, each checked to be a text model folder."""
    teachers = []
    for folder in folders:
        if not (Path(folder) / "config.json").is_file():
            raise ConfigError(f"train.distill_from: {folder} is not a model folder (it has no config.json)")
        teacher = LabelGenerator.load(folder, device=device)
        if teacher.uses_inputs:
            raise ConfigError(f"train.distill_from: {folder} reads images or features; a teacher must read texts")
        teachers.append(teacher)
    return teachers


def _student_to_teacher(student: LabelVocab, teacher: LabelVocab) -> tuple[Tensor, Tensor]:
    """(V_s,) the teacher's id of each student output (PAD where it lacks the label) and (V_s,)
    whether it has it; PAD, BOS and EOS map to themselves (the ensemble's label map)."""
    ids = _label_map(list(student.labels), teacher)
    if ids is None:
        ids = torch.arange(student.size)
    return ids.clamp(min=PAD_ID), ids >= 0


@torch.inference_mode()
def teacher_step_probs(teacher: LabelGenerator, texts: Sequence[str], targets: Sequence[Sequence[int]],
                       student_labels: LabelVocab, batch_size: int = 128) -> Tensor:
    """One teacher's step distributions, (rows, steps, V_s) over the student's label ids, along the
    student's ``targets`` (each row's label ids, EOS appended here); steps past a row's end are 0."""
    to_teacher, present = _student_to_teacher(student_labels, teacher.label_vocab)
    encoded = teacher.encode_texts(texts)
    fed = EncodedDataset(token_ids=encoded.token_ids,
                         target_ids=[to_teacher[list(row)].tolist() if row else [] for row in targets])
    steps = max(len(row) for row in targets) + 1
    table = torch.zeros(len(texts), steps, len(to_teacher))             # (rows, steps, V_s)
    was_training = teacher.model.training
    teacher.model.eval()
    try:
        for idx in batch_indices(encoded.lengths(), batch_size, shuffle=False, bucket=True):
            batch = collate(fed, idx).to(teacher.device)
            log_probs = teacher.model(batch.src, batch.src_lengths, batch.targets).float().cpu()  # (batch, k, V_t)
            probs = log_probs.exp()[..., to_teacher] * present          # (batch, k, V_s)
            total = probs.sum(-1, keepdim=True)                         # (batch, k, 1)
            probs = torch.where(total > 0, probs / total.clamp(min=1e-30), probs)
            probs = probs.masked_fill((batch.targets.cpu() == PAD_ID).unsqueeze(-1), 0.0)
            table[batch.index.cpu(), :probs.size(1)] = probs
    finally:
        teacher.model.train(was_training)
    return table


def distillation_targets(folders: Sequence[str | Path], texts: Sequence[str], dataset: EncodedDataset,
                         label_vocab: LabelVocab, *, device: str = "cpu", batch_size: int = 128) -> TeacherTargets:
    """The teachers' mean step distributions for every row of the encoded training set ``dataset``
    (whose texts are ``texts``, in its row order)."""
    if len(texts) != len(dataset):
        raise ValueError(f"{len(texts)} texts for {len(dataset)} encoded rows")
    start = time.perf_counter()
    teachers = load_teachers(folders, device)
    table = None
    for teacher in teachers:
        probs = teacher_step_probs(teacher, texts, dataset.target_ids, label_vocab, batch_size)
        table = probs if table is None else table + probs
    table /= len(teachers)                                              # (rows, steps, V_s)
    log.info("distillation: %d teachers' step distributions for %d training texts in %.0f s",
             len(teachers), len(texts), time.perf_counter() - start)
    return TeacherTargets(table)
