"""Losses for label-sequence models, computed from the decoder's teacher-forced outputs.

Class imbalance: ``label_weights`` (V,) weighs each target step by its label, and an example's
EOS step by the mean weight of that example's gold labels (:func:`step_weights`); the batch loss
is the weighted mean, sum(w_step * loss_step) / sum(w_step). Were EOS weighed 1 while frequent
labels get far less, stopping would outweigh emitting them and recall collapses (measured on
Reuters-21578 in the issue-15 ablation); tied to its own example's labels, EOS keeps the balance of
each example, and the weights re-weigh whole examples by how rare their labels are.
:func:`label_weights` builds them from training counts (inverse frequency, or the effective
number of samples of Cui et al., CVPR 2019). ``"focal"`` is the focal loss (Lin et al., ICCV
2017) on each step's softmax: -(1 - p_target)^gamma * log p_target, which is the cross-entropy
at gamma = 0.

Distillation (:func:`distillation_cross_entropy`): the cross-entropy of each step against a
teacher's step distribution (soft targets, Hinton et al. 2015) instead of the one gold label, so
a single model can learn what an ensemble spreads over the labels it hesitates between.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

PAD_ID = 0

BOS_ID, EOS_ID, FIRST_LABEL_ID = 1, 2, 3

LOSSES = ("ce", "bce", "ce+bce", "focal")
LABEL_WEIGHTS = ("none", "inverse", "effective")


def sequence_cross_entropy(log_probs: Tensor, targets: Tensor, weight: Tensor | None = None) -> Tensor:
    """The SGM paper's loss: mean negative log-likelihood of each gold label and the final EOS
    (with ``weight`` (V,): the weighted mean over :func:`step_weights`)."""
    vocab = log_probs.size(-1)
    if weight is None:
        return F.nll_loss(log_probs.reshape(-1, vocab), targets.reshape(-1), ignore_index=PAD_ID)
    nll = -log_probs.gather(2, targets.unsqueeze(2)).squeeze(2)          # (batch, steps)
    w = step_weights(targets, weight).to(nll.dtype)                      # (batch, steps), 0 on PAD
    return (w * nll.masked_fill(targets == PAD_ID, 0.0)).sum() / w.sum()


def step_weights(targets: Tensor, weight: Tensor) -> Tensor:
    """(batch, steps) loss weight of each target step: its label's weight, EOS the mean weight
    of its example's gold labels (``weight[EOS]`` for an example without labels), PAD 0."""
    weight = weight.to(targets.device)
    w = weight[targets]                                                  # (batch, steps)
    is_label = targets >= FIRST_LABEL_ID                                 # (batch, steps)
    n = is_label.sum(1)                                                  # (batch,)
    own = (w * is_label).sum(1) / n.clamp(min=1)                         # (batch,)
    own = torch.where(n > 0, own, weight[EOS_ID])                        # (batch,)
    w = torch.where(targets == EOS_ID, own.unsqueeze(1), w)              # (batch, steps)
    return w.masked_fill(targets == PAD_ID, 0.0)


def sequence_focal_loss(log_probs: Tensor, targets: Tensor, gamma: float = 2.0,
                        weight: Tensor | None = None) -> Tensor:
    """Focal loss over the label steps: easy steps (p_target near 1) count less, so the many
    confident frequent-label steps do not drown the rare ones. gamma = 0 is the cross-entropy."""
    vocab = log_probs.size(-1)
    flat = targets.reshape(-1)                                           # (batch*steps,)
    valid = (flat != PAD_ID).nonzero().squeeze(1)                        # (n,)
    gold = flat.index_select(0, valid)                                   # (n,)
    lp = log_probs.reshape(-1, vocab).index_select(0, valid).gather(1, gold.unsqueeze(1)).squeeze(1)  # (n,)
    modulation = (1.0 - lp.exp()).clamp(min=0.0).pow(gamma)              # (n,)
    steps = -modulation * lp                                             # (n,)
    w = (step_weights(targets, weight).reshape(-1).index_select(0, valid).to(lp.dtype)
         if weight is not None else torch.ones_like(lp))                 # (n,)
    return (w * steps).sum() / w.sum()


def distillation_cross_entropy(log_probs: Tensor, targets: Tensor, soft_targets: Tensor,
                               weight: Tensor | None = None) -> Tensor:
    """Mean over the target steps of -sum_v q(v) log p(v), with q = ``soft_targets`` (batch, steps, V),
    each step a distribution. Outputs the model forbids at a step (log p = -inf: PAD, BOS, labels
    already emitted) drop out of q; PAD steps count 0. With ``weight`` (V,), the same weighted mean
    over :func:`step_weights` as the cross-entropy."""
    log_p = log_probs.float()                                            # (batch, steps, V)
    allowed = torch.isfinite(log_p)                                      # (batch, steps, V)
    q = soft_targets.to(log_p.dtype).masked_fill(~allowed, 0.0)          # (batch, steps, V)
    per_step = -(q * log_p.masked_fill(~allowed, 0.0)).sum(-1)           # (batch, steps)
    if weight is None:
        w = (targets != PAD_ID).to(per_step.dtype)                       # (batch, steps)
    else:
        w = step_weights(targets, weight).to(per_step.dtype)             # (batch, steps), 0 on PAD
    return (w * per_step).sum() / w.sum().clamp(min=1e-12)


def label_weights(counts: Sequence[int], scheme: str, beta: float = 0.999) -> Tensor | None:
    """Per-output loss weights (V = len(counts) + 3,) from each label's training count.

    ``inverse``: 1 / n; ``effective``: (1 - beta) / (1 - beta^n), the inverse effective number
    of samples (beta -> 1 approaches inverse frequency, beta = 0 is uniform). Both are
    normalised to mean 1 over the labels; EOS and BOS get 1 (an EOS step is weighed by its own
    example's labels, see :func:`step_weights`), PAD 0 (never a target). ``none`` returns None
    (unweighted). A count below 1 counts as 1.
    """
    if scheme not in LABEL_WEIGHTS:
        raise ValueError(f"unknown label weights {scheme!r}; choose one of {', '.join(LABEL_WEIGHTS)}")
    if scheme == "none":
        return None
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"label_weights_beta must be in [0, 1), got {beta!r}")
    if len(counts) == 0:
        raise ValueError("label weights need the count of at least one label")
    n = torch.tensor(list(counts), dtype=torch.float64).clamp(min=1.0)   # (labels,)
    raw = 1.0 / n if scheme == "inverse" else (1.0 - beta) / (1.0 - torch.pow(beta, n))  # (labels,)
    weights = torch.ones(len(counts) + FIRST_LABEL_ID, dtype=torch.float64)  # (V,)
    weights[PAD_ID] = 0.0
    weights[FIRST_LABEL_ID:] = raw / raw.mean()
    return weights.to(torch.float32)


def label_set_scores(log_probs: Tensor, targets: Tensor) -> Tensor:
    """Per-label score of the generated sequence: the largest probability a label got at any step.

    This turns the step distributions into one score per label, so a binary
    cross-entropy can judge the label *set* the decoder produces, regardless of order.
    Returns (batch, V) probabilities.
    """
    valid = (targets != PAD_ID).unsqueeze(-1)                            # (batch, steps, 1)
    probs = log_probs.exp().masked_fill(~valid, 0.0)                     # (batch, steps, V)
    return probs.amax(dim=1)                                             # (batch, V)


def label_set_bce(log_probs: Tensor, targets: Tensor, first_label_id: int = 3,
                  weight: Tensor | None = None) -> Tensor:
    """The seed paper's "binary cross-entropy considering the generated label sequences"
    (with ``weight`` (V,): each label's term times its weight)."""
    scores = label_set_scores(log_probs, targets)[:, first_label_id:]    # (batch, labels)
    gold = torch.zeros_like(log_probs[:, 0, :])                          # (batch, V)
    gold.scatter_(1, targets, 1.0)
    gold = gold[:, first_label_id:]                                      # (batch, labels)
    scores = scores.clamp(1e-6, 1.0 - 1e-6)
    per_label = F.binary_cross_entropy(scores, gold, reduction="none")  # (batch, labels)
    if weight is not None:
        per_label = per_label * weight[first_label_id:].to(per_label.dtype)
    return per_label.sum(dim=1).mean()


def sequence_loss(log_probs: Tensor, targets: Tensor, kind: str = "ce", bce_weight: float = 1.0, *,
                  label_weights: Tensor | None = None, focal_gamma: float = 2.0) -> Tensor:
    """The training loss ``kind`` on teacher-forced log_probs (batch, steps, V) and the targets
    (batch, steps) they were fed; ``label_weights`` (V,) or None."""
    w = label_weights.to(log_probs.device, log_probs.dtype) if label_weights is not None else None
    if kind == "ce":
        return sequence_cross_entropy(log_probs, targets, w)
    if kind == "bce":
        return label_set_bce(log_probs, targets, weight=w)
    if kind == "ce+bce":
        return sequence_cross_entropy(log_probs, targets, w) + bce_weight * label_set_bce(log_probs, targets, weight=w)
    if kind == "focal":
        return sequence_focal_loss(log_probs, targets, focal_gamma, w)
    raise ValueError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
