"""Several step models decoded as one: each step's distribution is the mean of the members'.

Averaging the members' step probabilities, ``log(mean_i p_i)``, inside one beam (rather than
voting over each member's finished output) lets the members correct each other at every
step: a label two of three models rate highly survives in the beam even when one member
alone would have stopped. The search code is unchanged; :class:`EnsembleStepModel` is just
another :class:`~seq2labels.decoding.stepping.StepModel`.

Members may read the text differently (own vocabulary, tokenizer, length): ``start`` takes
one ``(src, src_lengths)`` pair per member. They may also number the same labels differently
(the label vocabulary is sorted by training frequency, and each seed holds out another
validation split): ``label_maps[i][j]`` is member ``i``'s id of the ensemble's output ``j``, and
previous labels, the forbidden mask and the member's log-probabilities are translated with it. Their tensors live in flat static/state dicts
under prefixed keys (``"m0.h"``, ``"m1.memory"``...), so the search's row gathers
(``_select_rows``, ``_repeat_rows``, compaction) reorder every member at once. The
attention reported is the **first member's** (the members' token positions need not line
up, so a mean would mix different words); ``static["mask"]`` is the first member's mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from seq2labels.decoding.hypotheses import FIRST_LABEL_ID
from seq2labels.decoding.stepping import StepModel, _num_outputs, _static_per_example, masks_repeats

__all__ = ["EnsembleStepModel"]


@dataclass(frozen=True)
class _EnsembleConfig:
    """What the search reads from ``model.config``."""

    num_outputs: int
    mask_repeats: bool


class EnsembleStepModel:
    """A :class:`StepModel` whose step is ``log(mean_i exp(log_probs_i))`` over its members."""

    def __init__(self, members: Sequence[StepModel], label_maps: Sequence[Tensor | None] | None = None):
        members = list(members)
        if not members:
            raise ValueError("an ensemble needs at least one member")
        outputs = {_num_outputs(m) for m in members}
        if len(outputs) != 1:
            raise ValueError(f"ensemble members must share the label vocabulary; their output sizes differ: "
                             f"{sorted(outputs)}")
        self.label_maps = _checked_maps(label_maps, len(members), next(iter(outputs)))
        repeats = {masks_repeats(m) for m in members}
        if len(repeats) != 1:
            raise ValueError("ensemble members must all mask repeated labels, or none of them")
        self.members = members
        self.num_outputs = outputs.pop()
        self.config = _EnsembleConfig(self.num_outputs, repeats.pop())
        # Static rows per example only when every member takes them so; otherwise the search
        # repeats static per hypothesis, which a per-example member also accepts.
        self.static_per_example = all(_static_per_example(m) for m in members)
        self._log_n = math.log(len(members))

    def start(self, src, src_lengths: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``src``: one tensor all members read, or one ``(src, src_lengths)`` pair per member.
        ``src_lengths`` (batch,) only sets the batch size for the search."""
        inputs = self._member_inputs(src, src_lengths)
        static: dict[str, Tensor] = {}
        state: dict[str, Tensor] = {}
        for i, (member, (member_src, member_lengths)) in enumerate(zip(self.members, inputs)):
            member_static, member_state = member.start(member_src, member_lengths)
            static.update(_prefixed(i, member_static))
            state.update(_prefixed(i, member_state))
        static["mask"] = static["m0.mask"]                                 # (batch, time of member 0)
        return static, state

    def step(self, prev_labels: Tensor, state: dict[str, Tensor], static: dict[str, Tensor],
             forbidden: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Every member steps on its own state; returns the log of their mean distribution."""
        log_probs, new_state, attention = [], {}, None
        for i, member in enumerate(self.members):
            to_member = self.label_maps[i]
            member_prev, member_forbidden = prev_labels, forbidden
            if to_member is not None:
                to_member = to_member.to(prev_labels.device)
                member_prev = to_member.index_select(0, prev_labels)        # (N,) member ids
                member_forbidden = forbidden.new_zeros(forbidden.shape).index_copy(1, to_member, forbidden)
            member_log_probs, member_state, member_attention = member.step(
                member_prev, _unprefixed(i, state), _unprefixed(i, static), member_forbidden)
            if to_member is not None:
                member_log_probs = member_log_probs.index_select(1, to_member)  # (N, V) ensemble ids
            log_probs.append(member_log_probs)                              # (N, V)
            new_state.update(_prefixed(i, member_state))
            if i == 0:
                attention = member_attention                                # (N, time of member 0)
        dtype = _common_float(log_probs)
        stacked = torch.stack([lp.to(dtype) for lp in log_probs])           # (members, N, V)
        mean = torch.logsumexp(stacked, dim=0) - self._log_n               # (N, V)
        return mean, new_state, attention

    def _member_inputs(self, src, src_lengths: Tensor) -> list[tuple[Tensor, Tensor]]:
        if isinstance(src, Tensor):
            return [(src, src_lengths)] * len(self.members)
        inputs = list(src)
        if len(inputs) != len(self.members):
            raise ValueError(f"the ensemble has {len(self.members)} members but got {len(inputs)} inputs")
        for member_src, member_lengths in inputs:
            if member_lengths.size(0) != src_lengths.size(0):
                raise ValueError("every member's input must hold the same examples (batch sizes differ)")
        return inputs


def _checked_maps(label_maps, n_members: int, num_outputs: int) -> list[Tensor | None]:
    """One permutation of ``range(V)`` (or None: same ids) per member."""
    if label_maps is None:
        return [None] * n_members
    maps = list(label_maps)
    if len(maps) != n_members:
        raise ValueError(f"got {len(maps)} label maps for {n_members} members")
    for i, m in enumerate(maps):
        if m is not None and not torch.equal(torch.sort(m.long()).values, torch.arange(num_outputs)):
            raise ValueError(f"label map {i} is not a permutation of the {num_outputs} output ids")
        if m is not None and m[:FIRST_LABEL_ID].tolist() != list(range(FIRST_LABEL_ID)):
            raise ValueError(f"label map {i} must keep PAD, BOS and EOS (ids 0, 1, 2) in place")
    return [None if m is None else m.long() for m in maps]


def _common_float(tensors: list[Tensor]) -> torch.dtype:
    """The widest member dtype, at least float32 (half-precision members are averaged in float32)."""
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def _prefixed(index: int, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {f"m{index}.{name}": value for name, value in tensors.items()}


def _unprefixed(index: int, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    prefix = f"m{index}."
    return {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}
