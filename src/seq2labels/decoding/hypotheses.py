"""Hypotheses as tensors: the rows beam and greedy search keep, and the model-free steps on them.

Nothing here calls a model, so every rule of the search (the SGM forbidden mask, which
continuation survives, when a hypothesis ends, which row is the answer) can be tested on
plain tensors. :mod:`seq2labels.decoding.search` runs the loops around these pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# Must equal seq2labels.data.labels (tests/decoding/test_constants.py checks it); kept here
# so decoding imports nothing from data/.
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_LABEL_ID = 3  # real labels have ids >= 3; the output vocabulary is num_labels + 3

NEG_INF = float("-inf")


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
