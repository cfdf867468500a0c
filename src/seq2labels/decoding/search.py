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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

# Must equal seq2labels.data.labels (tests/decoding/test_constants.py checks it); kept here
# so decoding imports nothing from data/.
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_LABEL_ID = 3  # real labels have ids >= 3; the output vocabulary is num_labels + 3

NEG_INF = float("-inf")


class StepModel(Protocol):
    """What decoding needs from a model: encode once, then one decoder step at a time."""

    num_outputs: int  # V = num_labels + 3 (a ``config.num_outputs`` is accepted too)

    def start(self, src: Tensor, src_lengths: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Encode a batch. Returns (static, state): every tensor has batch as dim 0.

        ``static`` never changes during decoding (encoder memory, source mask); ``state`` does
        (decoder h/c, previous distributions...).
        """
        ...

    def step(self, prev_labels: Tensor, state: dict[str, Tensor], static: dict[str, Tensor],
             forbidden: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """One decoder step.

        prev_labels (N,) long; forbidden (N, V) bool = labels that must get -inf before the
        softmax (the SGM masked softmax). Returns (log_probs (N, V), new_state,
        attention (N, src_time)). ``static`` has N rows, or one row per example when the
        model sets ``static_per_example = True``: then the N state rows are ``N / n``
        consecutive hypotheses per example, and beam search never copies the encoder outputs
        once per hypothesis.
        """
        ...


@dataclass
class DecodeOutput:
    """One decoded label sequence per example.

    ``scores`` keep the model's float dtype (at least float32, so half-precision models do
    not accumulate in half); probabilities and attention are stored as float32.
    """

    sequences: Tensor             # (batch, steps) long: labels in generated order, PAD after the end
    lengths: Tensor               # (batch,) long: number of labels
    step_probs: Tensor            # (batch, steps) float: probability of each label at its step, 0 at PAD
    scores: Tensor                # (batch,) float: log-probability, including the EOS step when EOS was emitted
    attention: Tensor | None      # (batch, steps, src_time): attention when each label was emitted, 0 at PAD
    label_scores: Tensor | None   # (batch, V): max over the path's steps of each output's probability


@dataclass
class BeamState:
    """Every hypothesis being decoded, one row each (``batch * beam`` rows, example-major).

    Histories are stored per row and reordered with the parents at each step, so the
    final answer is read off one row instead of backtracking through pointers.
    """

    scores: Tensor            # (rows,) float: log-probability so far
    finished: Tensor          # (rows,) bool: ended (EOS, max_labels), dead (-inf) or pruned (hopeless)
    emitted: Tensor           # (rows, V) bool: labels already in the sequence
    tokens: Tensor            # (rows, t) long: labels, then EOS at the stop step, then PAD
    step_probs: Tensor        # (rows, t) float: probability of the label at each step, 0 elsewhere
    label_scores: Tensor      # (rows, V) float: running max of each output's probability
    attention: Tensor | None  # (rows, t, src_time) float, only when attention is returned

    def select(self, rows: Tensor) -> BeamState:
        """The hypotheses at ``rows`` (repeats allowed): how beams follow their parents."""
        return BeamState(
            scores=self.scores.index_select(0, rows),              # (rows,)
            finished=self.finished.index_select(0, rows),          # (rows,)
            emitted=self.emitted.index_select(0, rows),            # (rows, V)
            tokens=self.tokens.index_select(0, rows),              # (rows, t)
            step_probs=self.step_probs.index_select(0, rows),      # (rows, t)
            label_scores=self.label_scores.index_select(0, rows),  # (rows, V)
            attention=None if self.attention is None else self.attention.index_select(0, rows),  # (rows, t, src)
        )


# ---- masks ---------------------------------------------------------------------------

def forbidden_labels(emitted: Tensor, min_labels: int = 0, mask_repeats: bool = True) -> Tensor:
    """The SGM mask for the next step: True where the output must get -inf before the softmax.

    PAD and BOS are never outputs; emitted labels may not repeat; EOS is held back while
    fewer than ``min_labels`` labels exist, unless no label is left to emit (a row must
    always keep at least one allowed output, or the softmax would be NaN).
    ``mask_repeats=False`` lets emitted labels repeat: the "no mask" ablation only.
    emitted: (N, V) bool, True for labels already in the sequence.
    """
    if not mask_repeats:
        emitted = torch.zeros_like(emitted)                            # (N, V)
    num_outputs = emitted.size(1)
    ids = torch.arange(num_outputs, device=emitted.device)            # (V,)
    count = emitted.sum(dim=1)                                         # (N,)
    exhausted = emitted[:, FIRST_LABEL_ID:].all(dim=1)                 # (N,)
    hold_eos = (count < min_labels) & ~exhausted                       # (N,)
    always = (ids == PAD_ID) | (ids == BOS_ID)                         # (V,)
    eos_blocked = (ids == EOS_ID)[None, :] & hold_eos[:, None]         # (N, V)
    return emitted | always[None, :] | eos_blocked                     # (N, V)


def _pad_only_when_finished(log_probs: Tensor, finished: Tensor) -> Tensor:
    """Finished rows may only continue with PAD at zero cost, so their score is kept."""
    ids = torch.arange(log_probs.size(1), device=log_probs.device)     # (V,)
    pad_only = torch.where(ids == PAD_ID, 0.0, NEG_INF).to(log_probs.dtype)  # (V,)
    return torch.where(finished[:, None], pad_only[None, :], log_probs)  # (N, V)


# ---- one search step -----------------------------------------------------------------

def beam_step(log_probs: Tensor, scores: Tensor, finished: Tensor, beam_size: int
              ) -> tuple[Tensor, Tensor, Tensor]:
    """Choose the next ``beam_size`` hypotheses of every example (model-free).

    log_probs (batch*beam, V) already masked (-inf for forbidden); scores (batch*beam,);
    finished (batch*beam,) bool. A finished hypothesis may only be extended by PAD at zero
    cost. Candidates are ``scores[:, None] + log_probs``; the top ``beam_size`` over
    ``beam * V`` per example survive, best first. A survivor with score -inf is a dead slot
    (fewer live candidates than the beam); callers must mark it finished.
    Returns (new_scores (batch*beam,), parent (batch*beam,) index into the flattened rows,
    token (batch*beam,)).
    """
    rows, num_outputs = log_probs.shape
    if beam_size < 1 or rows % beam_size:
        raise ValueError(f"{rows} rows do not split into beams of {beam_size}")
    batch = rows // beam_size
    extendable = _pad_only_when_finished(log_probs, finished)          # (batch*beam, V)
    candidates = scores[:, None] + extendable                          # (batch*beam, V)
    flat = candidates.reshape(batch, beam_size * num_outputs)          # (batch, beam*V)
    top_scores, top_index = flat.topk(beam_size, dim=1)                # (batch, beam)
    parent_in_beam = torch.div(top_index, num_outputs, rounding_mode="floor")  # (batch, beam)
    token = top_index % num_outputs                                    # (batch, beam)
    first_row = torch.arange(batch, device=log_probs.device) * beam_size  # (batch,)
    parent = first_row[:, None] + parent_in_beam                       # (batch, beam)
    return top_scores.reshape(-1), parent.reshape(-1), token.reshape(-1)


def _greedy_choice(log_probs: Tensor, scores: Tensor, finished: Tensor) -> tuple[Tensor, Tensor]:
    """The argmax output of every row (PAD for finished rows) and the new scores."""
    extendable = _pad_only_when_finished(log_probs, finished)          # (batch, V)
    token = extendable.argmax(dim=1)                                   # (batch,)
    gained = extendable.gather(1, token[:, None]).squeeze(1)           # (batch,)
    return scores + gained, token                                      # (batch,), (batch,)


def _advance(hyps: BeamState, parent: Tensor, token: Tensor, new_scores: Tensor,
             log_probs: Tensor, attention: Tensor | None, max_labels: int) -> BeamState:
    """Row i of the result continues row ``parent[i]`` of ``hyps`` with ``token[i]``.

    log_probs (rows, V) and attention (rows, src_time) are this step's model outputs for
    the *parent* rows. A hypothesis ends on EOS, on reaching ``max_labels`` labels, or
    when its score is -inf (a dead beam slot, never chosen as an answer).
    """
    prev = hyps.select(parent)
    dead = torch.isneginf(new_scores) & ~prev.finished                 # (rows,)
    token = token.masked_fill(dead, PAD_ID)                            # (rows,)
    is_label = token >= FIRST_LABEL_ID                                 # (rows,)
    one_hot = F.one_hot(token, log_probs.size(1)).bool()               # (rows, V)
    emitted = prev.emitted | (one_hot & is_label[:, None])             # (rows, V)
    count = emitted.sum(dim=1)                                         # (rows,)
    finished = prev.finished | dead | (token == EOS_ID) | (count >= max_labels)  # (rows,)
    probs = log_probs.index_select(0, parent).exp()                    # (rows, V)
    probs = probs.masked_fill(prev.finished[:, None], 0.0)             # (rows, V)
    token_prob = probs.gather(1, token[:, None]).squeeze(1) * is_label  # (rows,)
    step_attention = None
    if prev.attention is not None and attention is not None:
        picked = attention.index_select(0, parent) * is_label[:, None]  # (rows, src_time)
        step_attention = torch.cat([prev.attention, picked[:, None, :].to(prev.attention.dtype)], dim=1)  # (rows, t+1, src)
    return BeamState(
        scores=new_scores,                                                           # (rows,)
        finished=finished,                                                           # (rows,)
        emitted=emitted,                                                             # (rows, V)
        tokens=torch.cat([prev.tokens, token[:, None]], dim=1),                      # (rows, t+1)
        step_probs=torch.cat([prev.step_probs, token_prob[:, None].to(prev.step_probs.dtype)], dim=1),  # (rows, t+1)
        label_scores=torch.maximum(prev.label_scores, probs.to(prev.label_scores.dtype)),  # (rows, V)
        attention=step_attention,
    )


# ---- setup and teardown --------------------------------------------------------------

def _num_outputs(model: StepModel) -> int:
    """V is needed before the first step (the forbidden mask has V columns)."""
    value = getattr(model, "num_outputs", None)
    if value is None:
        value = getattr(getattr(model, "config", None), "num_outputs", None)
    if value is None:
        raise TypeError(f"{type(model).__name__} must expose num_outputs (V = num_labels + 3) "
                        "or config.num_outputs to be decoded")
    return int(value)


def masks_repeats(model: StepModel) -> bool:
    """Whether decoding forbids repeating a label: True unless the model was built without
    the mask (``config.mask_repeats = False``, the ablation)."""
    return bool(getattr(getattr(model, "config", None), "mask_repeats", True))


def _check_limits(max_labels: int, min_labels: int, beam_size: int = 1, n_best: int = 1) -> None:
    """Fail early with the offending value instead of decoding nonsense."""
    if max_labels < 1:
        raise ValueError(f"max_labels must be >= 1, got {max_labels}")
    if not 0 <= min_labels <= max_labels:
        raise ValueError(f"min_labels must be in [0, max_labels={max_labels}], got {min_labels}")
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if n_best != 1:
        raise ValueError(f"n_best={n_best} is not supported: only the best hypothesis is returned")


def _initial_state(batch: int, beam_size: int, num_outputs: int, src_time: int,
                   device: torch.device, return_attention: bool) -> BeamState:
    """Empty hypotheses; only beam 0 of each example is live (the others score -inf) so the
    first step does not fill the beam with copies of one hypothesis."""
    rows = batch * beam_size
    in_beam = torch.arange(beam_size, device=device).repeat(batch)    # (rows,)
    zero = torch.zeros(rows, device=device)                            # (rows,)
    return BeamState(
        scores=zero.masked_fill(in_beam > 0, NEG_INF),                                    # (rows,)
        finished=torch.zeros(rows, dtype=torch.bool, device=device),                      # (rows,)
        emitted=torch.zeros(rows, num_outputs, dtype=torch.bool, device=device),          # (rows, V)
        tokens=torch.zeros(rows, 0, dtype=torch.long, device=device),                     # (rows, 0)
        step_probs=torch.zeros(rows, 0, device=device),                                   # (rows, 0)
        label_scores=torch.zeros(rows, num_outputs, device=device),                       # (rows, V)
        attention=torch.zeros(rows, 0, src_time, device=device) if return_attention else None,  # (rows, 0, src)
    )


def _previous_labels(hyps: BeamState) -> Tensor:
    """BOS at the first step, then each row's last token (EOS/PAD once it has finished)."""
    if hyps.tokens.size(1) == 0:
        return torch.full_like(hyps.scores, BOS_ID, dtype=torch.long)  # (rows,)
    return hyps.tokens[:, -1]                                          # (rows,)


@dataclass
class _Layout:
    """Which hypothesis rows the model computes: the rows of examples still being decoded.

    An example whose hypotheses have all finished needs no more model steps, so its rows
    are dropped from the model's batch (static and state tensors) once enough examples
    are done; the search itself keeps every row.
    """

    rows: Tensor       # (L,) long: full row index of each row the model computes
    position: Tensor   # (batch*beam,) long: layout position of each full row, -1 if dropped

    @classmethod
    def full(cls, num_rows: int, device: torch.device) -> "_Layout":
        rows = torch.arange(num_rows, device=device)                   # (rows,)
        return cls(rows, rows.clone())

    def is_full(self) -> bool:
        return self.rows.numel() == self.position.numel()


def _shrink_layout(layout: _Layout, hyps: BeamState, beam_size: int, static: dict[str, Tensor],
                   state: dict[str, Tensor], keep_fraction: float, static_per_example: bool = False
                   ) -> tuple[_Layout, dict[str, Tensor], dict[str, Tensor]]:
    """Drop finished examples' rows from the model's batch when at most ``keep_fraction``
    of its rows would remain (the gather copies the encoder memory, so not every step).
    ``static_per_example``: static holds one row per example instead of one per hypothesis."""
    open_examples = ~hyps.finished.reshape(-1, beam_size).all(dim=1)   # (batch,)
    keep = open_examples.repeat_interleave(beam_size)[layout.rows]     # (L,)
    kept = int(keep.sum())
    if kept == keep.numel() or kept > keep_fraction * keep.numel():
        return layout, static, state
    index = keep.nonzero().squeeze(1)                                  # (L',)
    rows = layout.rows.index_select(0, index)                          # (L',)
    position = torch.full_like(layout.position, -1)                    # (batch*beam,)
    position[rows] = torch.arange(rows.numel(), device=rows.device)
    static_index = keep.reshape(-1, beam_size)[:, 0].nonzero().squeeze(1) if static_per_example else index
    return _Layout(rows, position), _select_rows(static, static_index), _select_rows(state, index)


def _model_step(model: StepModel, hyps: BeamState, state: dict[str, Tensor],
                static: dict[str, Tensor], min_labels: int, layout: _Layout
                ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """Run the model once on the layout's rows; re-apply the mask so constraints hold even
    for a careless model. Rows outside the layout (finished) get -inf and zero attention."""
    forbidden = forbidden_labels(hyps.emitted, min_labels, masks_repeats(model))  # (rows, V)
    previous = _previous_labels(hyps)                                  # (rows,)
    if not layout.is_full():
        forbidden, previous = forbidden.index_select(0, layout.rows), previous.index_select(0, layout.rows)
    log_probs, state, attention = model.step(previous, state, static, forbidden)
    log_probs = log_probs.masked_fill(forbidden, NEG_INF)              # (L, V)
    if not layout.is_full():
        rows = layout.position.numel()
        log_probs = log_probs.new_full((rows, log_probs.size(1)), NEG_INF).index_copy(0, layout.rows, log_probs)
        attention = attention.new_zeros((rows, attention.size(1))).index_copy(0, layout.rows, attention)
    return log_probs, state, attention                                 # (rows, V), ..., (rows, src_time)


def _static_per_example(model: StepModel) -> bool:
    """Whether ``model.step`` takes static tensors with one row per example (see StepModel)."""
    return bool(getattr(model, "static_per_example", False))


def _repeat_rows(tensors: dict[str, Tensor], times: int) -> dict[str, Tensor]:
    """Each example's tensors repeated for each of its beam slots (example-major)."""
    return {name: value.repeat_interleave(times, dim=0) for name, value in tensors.items()}


def _select_rows(tensors: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
    """Decoder state follows each hypothesis' parent."""
    return {name: value.index_select(0, rows) for name, value in tensors.items()}


def _finalize(hyps: BeamState, rows: Tensor, return_attention: bool) -> DecodeOutput:
    """Read the chosen row of each example; trim the width to the longest sequence."""
    tokens = hyps.tokens.index_select(0, rows)                         # (batch, t)
    is_label = tokens >= FIRST_LABEL_ID                                # (batch, t)
    lengths = is_label.sum(dim=1)                                      # (batch,)
    width = int(lengths.max()) if lengths.numel() else 0
    attention = None
    if return_attention and hyps.attention is not None:
        attention = hyps.attention.index_select(0, rows)[:, :width]    # (batch, steps, src_time)
    return DecodeOutput(
        sequences=tokens.masked_fill(~is_label, PAD_ID)[:, :width],    # (batch, steps)
        lengths=lengths,                                               # (batch,)
        step_probs=hyps.step_probs.index_select(0, rows)[:, :width],   # (batch, steps)
        scores=hyps.scores.index_select(0, rows),                      # (batch,)
        attention=attention,
        label_scores=hyps.label_scores.index_select(0, rows),          # (batch, V)
    )


def _prune_hopeless(hyps: BeamState, beam_size: int) -> BeamState:
    """Finish every open hypothesis already scoring below its example's best finished one.

    Log-probabilities are <= 0, so such a hypothesis can only fall further and never be the
    answer; its descendants would also always rank below every hopeful candidate, so
    freezing it changes no result. It lets the search stop as soon as every example's best
    hypothesis has finished (e.g. after one step when EOS comes first everywhere).
    """
    finished_scores = hyps.scores.masked_fill(~hyps.finished, NEG_INF)  # (batch*beam,)
    best_finished = finished_scores.reshape(-1, beam_size).max(dim=1).values  # (batch,)
    bar = best_finished.repeat_interleave(beam_size)                   # (batch*beam,)
    hopeless = ~hyps.finished & (hyps.scores < bar)                    # (batch*beam,)
    return BeamState(hyps.scores, hyps.finished | hopeless, hyps.emitted, hyps.tokens,
                     hyps.step_probs, hyps.label_scores, hyps.attention)


def _best_rows(hyps: BeamState, beam_size: int) -> Tensor:
    """Flattened row of the highest-scoring finished hypothesis of each example."""
    scores = hyps.scores.masked_fill(~hyps.finished, NEG_INF)         # (batch*beam,)
    per_example = scores.reshape(-1, beam_size)                        # (batch, beam)
    first_row = torch.arange(per_example.size(0), device=scores.device) * beam_size  # (batch,)
    return first_row + per_example.argmax(dim=1)                       # (batch,)


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
    hyps = _initial_state(batch, 1, _num_outputs(model), src.size(1), src.device, return_attention)
    keep = torch.arange(batch, device=src.device)                      # (batch,)
    layout = _Layout.full(batch, src.device)
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
    log_probs, state, attention = _first_step(model, static, state, batch, num_outputs, min_labels, src)
    log_probs, attention = log_probs.repeat_interleave(beam_size, 0), attention.repeat_interleave(beam_size, 0)
    state = _repeat_rows(state, beam_size)
    if not shared:
        static = _repeat_rows(static, beam_size)
    hyps = _initial_state(batch, beam_size, num_outputs, src.size(1), src.device, return_attention)
    layout = _Layout.full(batch * beam_size, src.device)
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


def _first_step(model: StepModel, static: dict[str, Tensor], state: dict[str, Tensor], batch: int,
                num_outputs: int, min_labels: int, src: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """The first decoder step on one row per example.

    Every beam slot of an example starts from the same empty hypothesis (same state, BOS, same
    mask), so the model's first outputs are equal across slots: computing them once and
    copying saves ``(beam - 1) / beam`` of the first step, which is most of the work when
    label sets are short. Returns (log_probs (batch, V), state, attention (batch, src_time)).
    """
    first = _initial_state(batch, 1, num_outputs, src.size(1), src.device, False)
    return _model_step(model, first, state, static, min_labels, _Layout.full(batch, src.device))


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


def teacher_forced_log_probs(model: StepModel, src: Tensor, src_lengths: Tensor, targets: Tensor) -> Tensor:
    """Feed the gold labels as previous outputs, under the mask decoding uses.

    targets (batch, steps): labels, then EOS, then PAD. PAD, BOS and every gold label fed
    at an earlier step are forbidden, so training sees the same masked softmax as greedy
    and beam search. A row whose EOS step is done leaves the model's batch once enough rows
    have (most texts have one or two labels, a few have many); its later positions hold -inf
    (no output possible), and every loss ignores them as PAD. Returns log-probabilities
    (batch, steps, V).
    """
    batch, steps = targets.shape
    num_outputs = _num_outputs(model)
    static, state = model.start(src, src_lengths)
    forbidden = torch.zeros(batch, num_outputs, dtype=torch.bool, device=src.device)  # (batch, V)
    forbidden[:, PAD_ID] = True
    forbidden[:, BOS_ID] = True
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)  # (batch,)
    needed = (targets != PAD_ID).sum(dim=1)                                # (batch,) labels + EOS per row
    rows = torch.arange(batch, device=src.device)                          # (R,) rows the model computes
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
        prev = targets[:, t].index_select(0, rows)                         # (R,)
        if mask_repeats:
            forbidden = forbidden.clone()
            forbidden.scatter_(1, prev.unsqueeze(1), True)                 # emitted labels
            forbidden[:, EOS_ID] = False                                   # rows past EOS are ignored by the loss
    return torch.stack(outputs, dim=1)                                     # (batch, steps, V)
