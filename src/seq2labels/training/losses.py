"""Losses for label-sequence models, computed from the decoder's teacher-forced outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PAD_ID = 0

LOSSES = ("ce", "bce", "ce+bce")


def sequence_cross_entropy(log_probs: Tensor, targets: Tensor) -> Tensor:
    """The SGM paper's loss: mean negative log-likelihood of each gold label and the final EOS."""
    vocab = log_probs.size(-1)
    return F.nll_loss(log_probs.reshape(-1, vocab), targets.reshape(-1), ignore_index=PAD_ID)


def label_set_scores(log_probs: Tensor, targets: Tensor) -> Tensor:
    """Per-label score of the generated sequence: the largest probability a label got at any step.

    This turns the step distributions into one score per label, so a binary
    cross-entropy can judge the label *set* the decoder produces, regardless of order.
    Returns (batch, V) probabilities.
    """
    valid = (targets != PAD_ID).unsqueeze(-1)                            # (batch, steps, 1)
    probs = log_probs.exp().masked_fill(~valid, 0.0)                     # (batch, steps, V)
    return probs.amax(dim=1)                                             # (batch, V)


def label_set_bce(log_probs: Tensor, targets: Tensor, first_label_id: int = 3) -> Tensor:
    """The seed paper's "binary cross-entropy considering the generated label sequences"."""
    scores = label_set_scores(log_probs, targets)[:, first_label_id:]    # (batch, labels)
    gold = torch.zeros_like(log_probs[:, 0, :])                          # (batch, V)
    gold.scatter_(1, targets, 1.0)
    gold = gold[:, first_label_id:]                                      # (batch, labels)
    scores = scores.clamp(1e-6, 1.0 - 1e-6)
    per_doc = F.binary_cross_entropy(scores, gold, reduction="none").sum(dim=1)  # (batch,)
    return per_doc.mean()


def sequence_loss(log_probs: Tensor, targets: Tensor, kind: str = "ce", bce_weight: float = 1.0) -> Tensor:
    if kind == "ce":
        return sequence_cross_entropy(log_probs, targets)
    if kind == "bce":
        return label_set_bce(log_probs, targets)
    if kind == "ce+bce":
        return sequence_cross_entropy(log_probs, targets) + bce_weight * label_set_bce(log_probs, targets)
    raise ValueError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
