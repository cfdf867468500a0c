"""Training without a fixed label order: order-free losses and the learned order.

SGM learns a label *set* as a *sequence*, so some order must be taught. ``labels.order`` picks it:

* fixed orders (frequency, alphabetical, given, random): the targets the data layer built.
* ``orderfree`` with ``labels.orderfree: pla`` (predicted-label alignment, Yazici et al., CVPR
  2020): at every step the target is the not-yet-emitted gold label the model currently ranks
  highest (chosen without gradient), the next step is fed that label, and the loss is the usual
  one on those targets; after the last gold label, EOS (see :mod:`seq2labels.decoding.orderfree`).
* ``orderfree`` with ``labels.orderfree: hungarian`` (minimal-cost alignment): first a no-grad,
  free-running pass: the decoder feeds back its own greedy choices with EOS forbidden, for k_max
  steps (the batch's largest gold set), in the mode it trains in (dropout on, as for PLA's choice). For an example with k gold labels g_1..g_k,
  cost[t, j] = -log p_t(g_j) for steps t = 0..k-1 (a label the model already emitted before
  step t is masked there: a very large cost). ``scipy.optimize.linear_sum_assignment`` finds
  the step -> label bijection of minimal total cost; the targets become the labels in that step
  order, then EOS, and the loss is the usual teacher-forced one on them (a second, grad pass).
  Frequency-order teacher forcing cannot supply the costs: under the repeat mask it gives label
  j an infinite cost at every step after its own, which leaves only the identity assignment.
* ``learned`` (:class:`LearnedOrder`): ``labels.learned_warmup`` epochs on frequency order,
  then, at the start of every later epoch, each training example's gold labels are put in the
  order PLA would choose them under the current weights (eval mode, no dropout, no gradient):
  label 1 is the gold label with the highest first-step probability, label 2 the highest of the
  rest at step 2 after feeding label 1, and so on. That order is then fixed for the epoch's
  ordinary teacher-forced training. It depends only on the weights at the epoch's start, which
  a checkpoint holds, so a resumed run recomputes the same orders (and draws no random numbers).

The alignment losses depend on the label set only: each row's gold ids are sorted first
(:func:`~seq2labels.decoding.orderfree.canonical_targets`), so permuting an example's gold
labels changes nothing, ties included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from seq2labels.data.dataset import EncodedDataset, SeqBatch, collate
from seq2labels.decoding.orderfree import (
    canonical_targets,
    free_running_log_probs,
    gold_counts,
    pla_targets,
)
from seq2labels.evaluation.metrics import label_position_deviation
from seq2labels.training.losses import distillation_cross_entropy, sequence_loss

logger = logging.getLogger(__name__)

ALIGNMENTS = ("none", "pla", "hungarian")
ORDERFREE_VARIANTS = ("pla", "hungarian")
# Stands in for the infinite cost of a label masked at a step, so the assignment stays solvable.
MASKED_COST = 1e9

ScoreBatch = Callable[[SeqBatch], Tensor]
SoftTargets = Callable[[Tensor, int], Tensor]  # (row index (batch,), steps) -> (batch, steps, V)


def alignment_for(order: str, variant: str) -> str:
    """The loss alignment a ``labels.order`` (and ``labels.orderfree`` variant) trains with."""
    if order != "orderfree":
        return "none"
    if variant not in ORDERFREE_VARIANTS:
        raise ValueError(f"unknown order-free variant {variant!r}; choose one of {', '.join(ORDERFREE_VARIANTS)}")
    return variant


# ---- the minimal-cost (Hungarian) alignment ------------------------------------------

def assignment_costs(step_log_probs: Tensor, targets: Tensor) -> Tensor:
    """cost[b, t, j] = -log p_t(gold label j of row b). step_log_probs (batch, K, V); targets
    (batch, steps) with the gold labels first. Returns (batch, K, K); columns past a row's gold
    count and -inf log-probabilities hold :data:`MASKED_COST`."""
    k_max = step_log_probs.size(1)
    gold = targets[:, :k_max].clamp(min=0)                               # (batch, K)
    index = gold.unsqueeze(1).expand(-1, k_max, -1)                      # (batch, K, K)
    costs = -step_log_probs.detach().gather(2, index)                    # (batch, K, K)
    return torch.nan_to_num(costs, nan=MASKED_COST, posinf=MASKED_COST).clamp(max=MASKED_COST)


def hungarian_order(costs: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    """Per row, the gold-label column assigned to steps 0..k-1 by the minimal-cost bijection.

    costs (batch, K, K), counts (batch,). One ``linear_sum_assignment`` per row (SciPy solves
    one matrix at a time; the gathers around it are batched).
    """
    orders = []
    for row, k in enumerate(counts.tolist()):
        steps, columns = linear_sum_assignment(costs[row, :k, :k])
        orders.append(columns[np.argsort(steps)])
    return orders


def hungarian_targets(step_log_probs: Tensor, targets: Tensor) -> Tensor:
    """``targets`` (batch, steps) with each row's gold labels reordered by the minimal-cost
    assignment of steps to labels under step_log_probs (batch, K, V); EOS and PAD stay."""
    counts = gold_counts(targets).cpu().numpy()                          # (batch,)
    costs = assignment_costs(step_log_probs, targets).cpu().double().numpy()  # (batch, K, K)
    reordered = targets.cpu().numpy().copy()                             # (batch, steps)
    for row, columns in enumerate(hungarian_order(costs, counts)):
        k = len(columns)
        reordered[row, :k] = reordered[row, :k][columns]
    return torch.from_numpy(reordered).to(targets.device)


def _step_model(net: nn.Module) -> nn.Module:
    """The model itself under a DistributedDataParallel wrapper (for the no-grad pass only)."""
    return getattr(net, "module", net)


def minimal_cost_targets(net: nn.Module, batch: SeqBatch, targets: Tensor) -> Tensor:
    """The Hungarian variant's targets: free-running no-grad pass, then the assignment."""
    k_max = int(gold_counts(targets).max())
    if k_max == 0:
        return targets
    with torch.no_grad():
        step_log_probs = free_running_log_probs(_step_model(net), batch.src, batch.src_lengths, k_max)  # (batch, K, V)
    return hungarian_targets(step_log_probs, targets)


# ---- the loss the trainer calls ------------------------------------------------------

def aligned_log_probs(net: nn.Module, batch: SeqBatch, alignment: str) -> tuple[Tensor, Tensor]:
    """Teacher-forced log-probabilities and the targets they were trained toward, under
    ``alignment`` (none: the batch's order; pla; hungarian). Returns ((batch, steps, V), (batch, steps))."""
    if alignment == "none":
        return net(batch.src, batch.src_lengths, batch.targets), batch.targets
    targets = canonical_targets(batch.targets)                           # (batch, steps)
    if alignment == "pla":
        log_probs = net(batch.src, batch.src_lengths, targets, align="pla")  # (batch, steps, V)
        return log_probs, pla_targets(log_probs, targets)
    if alignment == "hungarian":
        targets = minimal_cost_targets(net, batch, targets)
        return net(batch.src, batch.src_lengths, targets), targets
    raise ValueError(f"unknown alignment {alignment!r}; choose one of {', '.join(ALIGNMENTS)}")


def make_loss_fn(*, alignment: str = "none", kind: str = "ce", bce_weight: float = 1.0,
                 label_weights: Tensor | None = None, focal_gamma: float = 2.0,
                 soft_targets: SoftTargets | None = None, distill_weight: float = 0.5) -> Callable[[nn.Module, Any], Tensor]:
    """The Trainer's ``loss_fn(net, batch)`` for any order and loss: the model is only called
    (``net(src, lengths, targets[, align])``), never imported.

    ``soft_targets(index, steps)`` -> (batch, steps, V): a teacher's step distributions along each
    row's fixed targets (distillation); the loss is then (1 - distill_weight) * loss +
    distill_weight * the soft cross-entropy. They follow the batch's own targets, so they need a
    fixed order (alignment "none")."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {alignment!r}; choose one of {', '.join(ALIGNMENTS)}")
    if soft_targets is not None and alignment != "none":
        raise ValueError(f"distillation follows a fixed label order; alignment {alignment!r} changes the targets")
    if not 0.0 < distill_weight <= 1.0:
        raise ValueError(f"distill_weight must be in (0, 1], got {distill_weight!r}")

    def loss_fn(net: nn.Module, batch: SeqBatch) -> Tensor:
        log_probs, targets = aligned_log_probs(net, batch, alignment)   # (batch, steps, V), (batch, steps)
        loss = sequence_loss(log_probs, targets, kind, bce_weight, label_weights=label_weights,
                             focal_gamma=focal_gamma)
        if soft_targets is None:
            return loss
        soft = soft_targets(batch.index, targets.size(1)).to(log_probs.device)  # (batch, steps, V)
        distilled = distillation_cross_entropy(log_probs, targets, soft, label_weights)
        return (1.0 - distill_weight) * loss + distill_weight * distilled

    return loss_fn


# ---- the learned order ---------------------------------------------------------------

def preferred_targets(score: ScoreBatch, dataset: EncodedDataset, indices: Sequence[int],
                      batch_size: int) -> dict[int, list[int]]:
    """Each example's gold label ids in the order PLA picks them under ``score`` (a no-grad
    ``align="pla"`` forward). Examples go in chunks of ``indices`` sorted by id (fixed, so two
    runs compute the same batches)."""
    ordered = sorted(set(int(i) for i in indices))
    out: dict[int, list[int]] = {}
    for start in range(0, len(ordered), batch_size):
        chunk = ordered[start:start + batch_size]
        batch = collate(dataset, chunk)
        targets = canonical_targets(batch.targets)                      # (batch, steps)
        canonical = SeqBatch(batch.src, batch.src_lengths, targets, batch.index)
        chosen = pla_targets(score(canonical).cpu(), targets).tolist()  # (batch, steps)
        for row, i in enumerate(chunk):
            out[i] = chosen[row][:len(dataset.target_ids[i])]
    return out


class LearnedOrder:
    """The training targets of each epoch under ``labels.order: learned`` (see the module docstring).

    ``score(batch)`` returns the model's PLA log-probabilities for a batch without gradient and
    without randomness (eval mode); the caller owns the model. ``last_deviation`` is the mean
    label position deviation of the latest learned order from frequency order (0 in warm-up).
    """

    def __init__(self, dataset: EncodedDataset, warmup: int, score: ScoreBatch, batch_size: int = 256):
        if warmup < 0:
            raise ValueError(f"learned_warmup must be >= 0, got {warmup!r}")
        self.base = dataset
        self.warmup = warmup
        self.score = score
        self.batch_size = batch_size
        self.last_deviation = 0.0

    def dataset_for(self, epoch: int, batches: Sequence[Sequence[int]]) -> EncodedDataset:
        """The dataset whose targets epoch ``epoch`` trains on (only ``batches``' rows are
        reordered: a process reorders its own share)."""
        if epoch <= self.warmup:
            return self.base
        indices = [i for batch in batches for i in batch]
        learned = preferred_targets(self.score, self.base, indices, self.batch_size)
        targets = list(self.base.target_ids)
        for i, ids in learned.items():
            targets[i] = ids
        self.last_deviation = order_deviation([self.base.target_ids[i] for i in learned], list(learned.values()))
        logger.info("epoch %d: learned label order, position deviation from frequency order %.4f",
                    epoch, self.last_deviation)
        return EncodedDataset(token_ids=self.base.token_ids, target_ids=targets)


def order_deviation(reference: Sequence[Sequence[int]], reordered: Sequence[Sequence[int]]) -> float:
    """Mean |position change| of the labels between two orders of the same label sets."""
    return label_position_deviation([list(map(str, r)) for r in reference], [list(map(str, r)) for r in reordered])
