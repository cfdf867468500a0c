"""Greedy and batched beam search over label sequences (SGM decoding).

The decoder emits label ids one by one until EOS. Decoding owns the *forbidden* mask that
the model applies before its softmax: PAD and BOS are never allowed, a label is never
emitted twice, and EOS waits until ``min_labels`` labels exist (unless every label has
already been emitted, then EOS is the only choice).

Both searches keep one row per hypothesis in a :class:`BeamState` (greedy: one row per
example; beam: ``batch * beam`` rows, example-major) and share the bookkeeping in
:func:`_advance`, so ``beam_size=1`` reproduces greedy decoding exactly. Beam search keeps
*finished* hypotheses in the beam (they extend with PAD at zero cost), which lets a short
sequence compete with longer ones on the same log-probability scale.

Sequences are ranked by their plain log-probability, with no length normalisation: SGM
scores a label set by the probability of its sequence, EOS included, and the EOS step
already makes the model pay for stopping early. Normalising would favour long, noisy
label sets.

This module holds the search loops (and teacher forcing, which reuses the mask and the row
layout); the model-free hypothesis steps live in :mod:`~seq2labels.decoding.hypotheses` and
the model-facing row layout in :mod:`~seq2labels.decoding.stepping`. Every public name stays
importable from here. The loops and the tunable fractions stay in this one module because
callers patch them here (benchmarks shadow ``bool`` and set ``TEACHER_FORCING_KEEP_FRACTION``),
and a name is read from the module that defines the code reading it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seq2labels.decoding.hypotheses import (  # noqa: F401  (also re-exported: the public names)
    BOS_ID,
    EOS_ID,
    FIRST_LABEL_ID,
    NEG_INF,
    PAD_ID,
    BeamState,
    DecodeOutput,
    _advance,
    _best_rows,
    _check_limits,
    _finalize,
    _greedy_choice,
    _initial_state,
    _prune_hopeless,
    beam_step,
    forbidden_labels,
)
from seq2labels.decoding.orderfree import ChooseNext
from seq2labels.decoding.stepping import (  # noqa: F401  (also re-exported: StepModel, masks_repeats)
    StepModel,
    _Layout,
    _model_step,
    _num_outputs,
    _repeat_rows,
    _select_rows,
    _shrink_layout,
    _static_per_example,
    masks_repeats,
)

# ---- public searches -----------------------------------------------------------------

# Shrink the model's batch when at most this fraction of its rows still decode.
COMPACT_KEEP_FRACTION = 0.75


def greedy_decode(model: StepModel, src: Tensor, src_lengths: Tensor, *, max_labels: int,
                  min_labels: int = 0, return_attention: bool = False, compact: bool = True) -> DecodeOutput:
    """Emit the most probable allowed output at every step until EOS or ``max_labels``.

    ``label_scores`` always holds, per output id, the highest probability it got at any
    step of the path (the per-label scores SGM papers threshold or rank). With ``compact``
    finished examples leave the model's batch (same results, fewer computed rows).
    """
    _check_limits(max_labels, min_labels)
    batch = src_lengths.size(0)
    static, state = model.start(src, src_lengths)
    hyps = _initial_state(batch, 1, _num_outputs(model), _attention_width(static), src_lengths.device, return_attention)
    keep = torch.arange(batch, device=src_lengths.device)                      # (batch,)
    layout = _Layout.full(batch, src_lengths.device)
    for _ in range(max_labels):
        log_probs, state, attention = _model_step(model, hyps, state, static, min_labels, layout)  # (batch, V)
        new_scores, token = _greedy_choice(log_probs, hyps.scores, hyps.finished)  # (batch,), (batch,)
        hyps = _advance(hyps, keep, token, new_scores, log_probs, attention, max_labels)
        if bool(hyps.finished.all()):
            break
        if compact:
            layout, static, state = _shrink_layout(layout, hyps, 1, static, state, COMPACT_KEEP_FRACTION)
    return _finalize(hyps, keep, return_attention)


def beam_decode(model: StepModel, src: Tensor, src_lengths: Tensor, *, beam_size: int,
                max_labels: int, min_labels: int = 0, return_attention: bool = False,
                n_best: int = 1, compact: bool = True) -> DecodeOutput:
    """Batched beam search; returns the highest-log-probability finished hypothesis.

    All examples decode together as ``batch * beam`` rows: the decoder state follows each
    hypothesis' parent every step; static tensors are shared by an example's hypotheses
    (models with ``static_per_example``) or repeated once. The first step runs once per
    example (see :func:`_first_step`). Decoding stops once every
    hypothesis has finished or can no longer win (see :func:`_prune_hopeless`), at the latest
    after ``max_labels`` steps. ``label_scores`` follow the
    best hypothesis. Only ``n_best=1`` is supported (DecodeOutput holds one sequence per
    example). With ``compact`` examples whose hypotheses have all finished leave the
    model's batch (same results, fewer computed rows).
    """
    _check_limits(max_labels, min_labels, beam_size, n_best)
    batch = src_lengths.size(0)
    num_outputs = _num_outputs(model)
    shared = _static_per_example(model)
    static, state = model.start(src, src_lengths)
    log_probs, state, attention = _first_step(model, static, state, batch, num_outputs, min_labels, src_lengths)
    log_probs, attention = log_probs.repeat_interleave(beam_size, 0), attention.repeat_interleave(beam_size, 0)
    state = _repeat_rows(state, beam_size)
    if not shared:
        static = _repeat_rows(static, beam_size)
    hyps = _initial_state(batch, beam_size, num_outputs, _attention_width(static), src_lengths.device, return_attention)
    layout = _Layout.full(batch * beam_size, src_lengths.device)
    for step in range(max_labels):
        if step:
            log_probs, state, attention = _model_step(model, hyps, state, static, min_labels, layout)  # (batch*beam, V)
        new_scores, parent, token = beam_step(log_probs, hyps.scores, hyps.finished, beam_size)  # (batch*beam,) x3
        hyps = _advance(hyps, parent, token, new_scores, log_probs, attention, max_labels)
        hyps = _prune_hopeless(hyps, beam_size)
        if bool(hyps.finished.all()):
            break
        # Parents stay within their example, so every computed row's parent was computed too.
        state = _select_rows(state, layout.position.index_select(0, parent.index_select(0, layout.rows)))
        if compact:
            layout, static, state = _shrink_layout(layout, hyps, beam_size, static, state, COMPACT_KEEP_FRACTION,
                                                   static_per_example=shared)
    return _finalize(hyps, _best_rows(hyps, beam_size), return_attention)


def _attention_width(static: dict[str, Tensor]) -> int:
    """Positions the decoder attends over: the encoder's memory, which need not match the input's
    shape (image cells, windows of word pieces, several modalities)."""
    return static["mask"].size(1)


def _first_step(model: StepModel, static: dict[str, Tensor], state: dict[str, Tensor], batch: int,
                num_outputs: int, min_labels: int, src_lengths: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """The first decoder step on one row per example.

    Every beam slot of an example starts from the same empty hypothesis (same state, BOS, same
    mask), so the model's first outputs are equal across slots: computing them once and
    copying saves ``(beam - 1) / beam`` of the first step, which is most of the work when
    label sets are short. Returns (log_probs (batch, V), state, attention (batch, src_time)).
    """
    first = _initial_state(batch, 1, num_outputs, _attention_width(static), src_lengths.device, False)
    return _model_step(model, first, state, static, min_labels, _Layout.full(batch, src_lengths.device))


def decode(model: StepModel, src: Tensor, src_lengths: Tensor, *, beam_size: int = 1,
           max_labels: int, min_labels: int = 0, return_attention: bool = False,
           compact: bool = True) -> DecodeOutput:
    """One entry point for prediction code: ``beam_size == 1`` is greedy decoding."""
    if beam_size == 1:
        return greedy_decode(model, src, src_lengths, max_labels=max_labels,
                             min_labels=min_labels, return_attention=return_attention, compact=compact)
    return beam_decode(model, src, src_lengths, beam_size=beam_size, max_labels=max_labels,
                       min_labels=min_labels, return_attention=return_attention, compact=compact)


# ---- teacher forcing -----------------------------------------------------------------

# Rows past their EOS leave the training batch when at most this fraction of the computed rows
# would remain (the gather copies the encoder memory, so not at every step); 0 never drops a row.
TEACHER_FORCING_KEEP_FRACTION = 0.75


def teacher_forced_log_probs(model: StepModel, src: Tensor, src_lengths: Tensor, targets: Tensor,
                             choose_next: ChooseNext | None = None) -> Tensor:
    """Feed the gold labels as previous outputs, under the mask decoding uses.

    targets (batch, steps): labels, then EOS, then PAD. PAD, BOS and every gold label fed
    at an earlier step are forbidden, so training sees the same masked softmax as greedy
    and beam search. A row whose EOS step is done leaves the model's batch once enough rows
    have (most texts have one or two labels, a few have many); its later positions hold -inf
    (no output possible), and every loss ignores them as PAD. Returns log-probabilities
    (batch, steps, V).

    ``choose_next(t, log_probs (batch, V), rows (R,))``, when given, picks the labels fed after
    step ``t`` (and masked from then on) instead of ``targets[:, t]``: order-free training (see
    :mod:`~seq2labels.decoding.orderfree`). It must keep each row's label count and EOS step.
    """
    batch, steps = targets.shape
    num_outputs = _num_outputs(model)
    static, state = model.start(src, src_lengths)
    forbidden = torch.zeros(batch, num_outputs, dtype=torch.bool, device=src_lengths.device)  # (batch, V)
    forbidden[:, PAD_ID] = True
    forbidden[:, BOS_ID] = True
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src_lengths.device)  # (batch,)
    needed = (targets != PAD_ID).sum(dim=1)                                # (batch,) labels + EOS per row
    rows = torch.arange(batch, device=src_lengths.device)                          # (R,) rows the model computes
    mask_repeats = masks_repeats(model)
    outputs = []
    for t in range(steps):
        keep = needed.index_select(0, rows) > t                            # (R,)
        kept = int(keep.sum())
        if kept == 0:                                                      # only PAD columns are left
            outputs.extend(outputs[-1].new_full((batch, num_outputs), NEG_INF) for _ in range(t, steps))
            break
        if kept <= TEACHER_FORCING_KEEP_FRACTION * rows.numel():
            index = keep.nonzero().squeeze(1)                              # (R',)
            rows, prev, forbidden = rows.index_select(0, index), prev.index_select(0, index), forbidden.index_select(0, index)
            static, state = _select_rows(static, index), _select_rows(state, index)
        log_probs, state, _ = model.step(prev, state, static, forbidden)  # (R, V)
        if rows.numel() < batch:
            log_probs = log_probs.new_full((batch, num_outputs), NEG_INF).index_copy(0, rows, log_probs)  # (batch, V)
        outputs.append(log_probs)
        prev = (targets[:, t].index_select(0, rows) if choose_next is None
                else choose_next(t, log_probs, rows))                      # (R,)
        if mask_repeats:
            forbidden = forbidden.clone()
            forbidden.scatter_(1, prev.unsqueeze(1), True)                 # emitted labels
            forbidden[:, EOS_ID] = False                                   # rows past EOS are ignored by the loss
    return torch.stack(outputs, dim=1)                                     # (batch, steps, V)
