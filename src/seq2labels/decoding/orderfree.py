"""Order-free teacher forcing: the decoder, not a fixed order, decides which gold label comes next.

Predicted-label alignment (PLA; Yazici et al., CVPR 2020, "Orderless recurrent models for
multi-label classification"): at step ``t`` the target is the gold label *not yet emitted* that
the model ranks highest at that step (the choice takes no gradient), and the next step is fed
that label, so teacher forcing stays sequential and the repeat mask forbids exactly the labels
chosen so far. After the last gold label the target is EOS. Ties go to the smaller label id,
because the gold ids of each row are sorted first (:func:`canonical_targets`): the targets
depend on the label *set* only.

:func:`free_running_log_probs` is the pass the minimal-cost (Hungarian) alignment scores: the
decoder feeds back its own greedy choices, EOS forbidden, for as many steps as the longest gold
set (see :mod:`seq2labels.training.label_order`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from seq2labels.decoding.hypotheses import BOS_ID, EOS_ID, FIRST_LABEL_ID, NEG_INF, PAD_ID
from seq2labels.decoding.stepping import StepModel, _num_outputs, masks_repeats

# choose_next(step, log_probs (batch, V), rows (R,)) -> the labels fed at the next step, (R,)
ChooseNext = Callable[[int, Tensor, Tensor], Tensor]


def gold_counts(targets: Tensor) -> Tensor:
    """Gold labels per row (targets: labels, EOS, PAD). Returns (batch,) long."""
    return (targets >= FIRST_LABEL_ID).sum(dim=1)                         # (batch,)


def canonical_targets(targets: Tensor) -> Tensor:
    """Each row's gold labels sorted by id (EOS and PAD stay where they are): the label set's one
    spelling, so order-free targets cannot depend on the order the gold labels came in."""
    is_gold = targets >= FIRST_LABEL_ID                                   # (batch, steps)
    big = torch.iinfo(targets.dtype).max
    keys = torch.where(is_gold, targets, torch.full_like(targets, big))   # (batch, steps)
    ordered = keys.sort(dim=1).values                                     # (batch, steps) gold first, ascending
    return torch.where(is_gold, ordered, targets)                         # (batch, steps)


def gold_set(targets: Tensor, num_outputs: int) -> Tensor:
    """(batch, V) bool: True at each row's gold label ids."""
    member = torch.zeros(targets.size(0), num_outputs, dtype=torch.bool, device=targets.device)  # (batch, V)
    ids = torch.where(targets >= FIRST_LABEL_ID, targets, torch.zeros_like(targets))  # (batch, steps) PAD for the rest
    member.scatter_(1, ids, True)
    member[:, PAD_ID] = False
    return member


def pla_step(step_log_probs: Tensor, remaining: Tensor, fallback: Tensor) -> tuple[Tensor, Tensor]:
    """One PLA choice: the remaining gold label with the highest log-probability.

    step_log_probs (batch, V); remaining (batch, V) bool; fallback (batch,) long: the target of a
    row with no gold label left (its EOS, or PAD past it). Returns (chosen (batch,), remaining
    without the chosen labels). ``argmax`` takes the first maximum, i.e. the smallest id.
    """
    scores = step_log_probs.detach().masked_fill(~remaining, NEG_INF)    # (batch, V)
    # A remaining label the model gives -inf (masked: only without the repeat mask's ablation
    # is this impossible) must still be chosen before EOS: lift -inf to the finite minimum.
    scores = torch.where(remaining & torch.isneginf(scores), torch.finfo(scores.dtype).min, scores)
    best = scores.argmax(dim=1)                                           # (batch,)
    has_left = remaining.any(dim=1)                                       # (batch,)
    chosen = torch.where(has_left, best, fallback)                        # (batch,)
    remaining = remaining.clone()
    remaining[has_left.nonzero().squeeze(1), best[has_left]] = False
    return chosen, remaining


def pla_chooser(targets: Tensor, num_outputs: int) -> ChooseNext:
    """The ``choose_next`` callback of :func:`~seq2labels.decoding.search.teacher_forced_log_probs`
    that feeds PLA's choices instead of ``targets``' order (it keeps the remaining set)."""
    state = {"remaining": gold_set(targets, num_outputs)}                 # (batch, V)

    def choose_next(step: int, log_probs: Tensor, rows: Tensor) -> Tensor:
        chosen, state["remaining"] = pla_step(log_probs, state["remaining"], targets[:, step])  # (batch,)
        return chosen.index_select(0, rows)                               # (R,)

    return choose_next


def pla_targets(log_probs: Tensor, targets: Tensor) -> Tensor:
    """The targets PLA chose during a teacher-forced pass, recomputed from its log-probabilities.

    log_probs (batch, steps, V) from ``SGM.forward(..., align="pla")`` on ``targets`` (batch,
    steps): the same :func:`pla_step` on the same values gives the same choices, so the loss can
    score them without the model returning them. Returns (batch, steps): the chosen gold labels,
    then EOS, then PAD.
    """
    remaining = gold_set(targets, log_probs.size(-1))                     # (batch, V)
    chosen = []
    for t in range(targets.size(1)):
        pick, remaining = pla_step(log_probs[:, t], remaining, targets[:, t])  # (batch,)
        chosen.append(pick)
    return torch.stack(chosen, dim=1)                                     # (batch, steps)


@torch.no_grad()
def free_running_log_probs(model: StepModel, src: Tensor, src_lengths: Tensor, steps: int) -> Tensor:
    """``steps`` greedy decoder steps fed with the model's own choices, EOS forbidden, each
    emitted label masked (as in decoding). Returns log-probabilities (batch, steps, V)."""
    num_outputs = _num_outputs(model)
    if steps > num_outputs - FIRST_LABEL_ID:
        raise ValueError(f"{steps} free-running steps need at least as many labels, the model has "
                         f"{num_outputs - FIRST_LABEL_ID}")
    static, state = model.start(src, src_lengths)
    batch = src_lengths.size(0)
    forbidden = torch.zeros(batch, num_outputs, dtype=torch.bool, device=src_lengths.device)  # (batch, V)
    forbidden[:, [PAD_ID, BOS_ID, EOS_ID]] = True
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src_lengths.device)  # (batch,)
    mask_repeats = masks_repeats(model)
    outputs = []
    for _ in range(steps):
        log_probs, state, _ = model.step(prev, state, static, forbidden)  # (batch, V)
        outputs.append(log_probs)
        prev = log_probs.argmax(dim=1)                                    # (batch,)
        if mask_repeats:
            forbidden = forbidden.clone()
            forbidden.scatter_(1, prev.unsqueeze(1), True)
    return torch.stack(outputs, dim=1)                                    # (batch, steps, V)
