"""Running the model on hypothesis rows: the ``StepModel`` protocol and the model's batch layout.

Search keeps every hypothesis row; the model only computes the rows of examples still being
decoded. This module owns that mapping (:class:`_Layout`), the per-row static/state tensors
and the one masked model step, so the search loops stay free of row bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from seq2labels.decoding.hypotheses import NEG_INF, BeamState, _previous_labels, forbidden_labels


class StepModel(Protocol):
    """What decoding needs from a model: encode once, then one decoder step at a time."""

    num_outputs: int  # V = num_labels + 3 (a ``config.num_outputs`` is accepted too)

    def start(self, src: Tensor, src_lengths: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Encode a batch. Returns (static, state): every tensor has batch as dim 0.

        ``static`` never changes during decoding (encoder memory, source mask); ``state`` does
        (decoder h/c, previous distributions...). ``static["mask"]`` (batch, time) is required:
        its width is the number of positions attention runs over, whatever the input's shape.
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
