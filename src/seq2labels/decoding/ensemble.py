"""Several step models decoded as one: each step's distribution is the mean of the members'.

Averaging the members' step probabilities, ``log(mean_i p_i)``, inside one beam (rather than
voting over each member's finished output) lets the members correct each other at every
step: a label two of three models rate highly survives in the beam even when one member
alone would have stopped. The search code is unchanged; :class:`EnsembleStepModel` is just
another :class:`~seq2labels.decoding.stepping.StepModel`.

Members may read the text differently (own vocabulary, tokenizer, length): ``start`` takes
one ``(src, src_lengths)`` pair per member. They may also number the labels differently,
or lack some (the label vocabulary is sorted by the training split's frequencies, and each
seed holds out another validation split, which can take a rare label's only examples):
``label_maps[i][j]`` is member ``i``'s id of the ensemble's output ``j``, or -1 where the member
has no such label. Previous labels, the forbidden mask and the member's log-probabilities are
translated with it; a label a member lacks gets probability 0 from that member (the mixture
is still a distribution), and a previous label it lacks reaches it as PAD (no label embedding). Their tensors live in flat static/state dicts
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

from seq2labels.decoding.hypotheses import EOS_ID, FIRST_LABEL_ID, PAD_ID
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
        sizes = [_num_outputs(m) for m in members]
        if label_maps is None and len(set(sizes)) != 1:
            raise ValueError(f"ensemble members must share the label vocabulary (or come with label maps); "
                             f"their output sizes differ: {sorted(set(sizes))}")
        self.label_maps, num_outputs = _checked_maps(label_maps, sizes)
        repeats = {masks_repeats(m) for m in members}
        if len(repeats) != 1:
            raise ValueError("ensemble members must all mask repeated labels, or none of them")
        self.members = members
        self.num_outputs = num_outputs
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
            label_map = self.label_maps[i]
            member_prev, member_forbidden = prev_labels, forbidden
            if label_map is not None:
                member_prev, member_forbidden = label_map.to_member(prev_labels, forbidden)
            member_log_probs, member_state, member_attention = member.step(
                member_prev, _unprefixed(i, state), _unprefixed(i, static), member_forbidden)
            if label_map is not None:
                member_log_probs = label_map.to_ensemble(member_log_probs)   # (N, V) ensemble ids
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


class _LabelMap:
    """Translation between the ensemble's output ids and one member's (see the module doc)."""

    def __init__(self, to_member: Tensor, member_outputs: int):
        self.to_member_ids = to_member.long()                              # (V,) member id or -1
        present = self.to_member_ids >= 0
        self.present = present.nonzero().squeeze(1)                         # (P,) ensemble ids the member has
        self.member_ids = self.to_member_ids.index_select(0, self.present)  # (P,) their member ids
        self.member_outputs = member_outputs

    def _on(self, device: torch.device) -> "_LabelMap":
        if self.present.device != device:
            self.to_member_ids, self.present, self.member_ids = (
                t.to(device) for t in (self.to_member_ids, self.present, self.member_ids))
        return self

    def to_member(self, prev: Tensor, forbidden: Tensor) -> tuple[Tensor, Tensor]:
        """Previous labels (N,) and forbidden (N, V) in member ids; a row the mask would leave
        without any output gets EOS (the member then says "stop"; the ensemble's mask still rules)."""
        self._on(prev.device)
        member_prev = self.to_member_ids.index_select(0, prev).clamp(min=PAD_ID)  # (N,) unknown -> PAD
        member_forbidden = forbidden.new_ones((forbidden.size(0), self.member_outputs))  # (N, V_i)
        member_forbidden = member_forbidden.index_copy(1, self.member_ids, forbidden.index_select(1, self.present))
        stuck = member_forbidden.all(dim=1)                                 # (N,)
        member_forbidden[:, EOS_ID] &= ~stuck
        return member_prev, member_forbidden

    def to_ensemble(self, log_probs: Tensor) -> Tensor:
        """(N, V_i) member log-probabilities -> (N, V) ensemble ids, -inf where the member has no label."""
        out = log_probs.new_full((log_probs.size(0), self.to_member_ids.numel()), float("-inf"))  # (N, V)
        return out.index_copy(1, self.present, log_probs.index_select(1, self.member_ids))


def _checked_maps(label_maps, sizes: list[int]) -> tuple[list[_LabelMap | None], int]:
    """One map per member (ensemble id -> member id, -1: the member lacks that label; or None:
    the ensemble's ids), and the ensemble's number of outputs."""
    if label_maps is None:
        return [None] * len(sizes), sizes[0]
    maps = list(label_maps)
    if len(maps) != len(sizes):
        raise ValueError(f"got {len(maps)} label maps for {len(sizes)} members")
    given = [m for m in maps if m is not None]
    width = len(given[0]) if given else sizes[0]
    out: list[_LabelMap | None] = []
    for i, (m, size) in enumerate(zip(maps, sizes)):
        if m is None:
            if size != width:
                raise ValueError(f"member {i} has {size} outputs but the ensemble has {width}; give its label map")
            out.append(None)
            continue
        m = m.long()
        if m.numel() != width:
            raise ValueError(f"label map {i} has {m.numel()} entries, the ensemble {width} outputs")
        if m[:FIRST_LABEL_ID].tolist() != list(range(FIRST_LABEL_ID)):
            raise ValueError(f"label map {i} must keep PAD, BOS and EOS (ids 0, 1, 2) in place")
        present = m[m >= 0]
        if not torch.equal(torch.sort(present).values, torch.arange(size)):
            raise ValueError(f"label map {i} must name each of the member's {size} output ids exactly once")
        out.append(_LabelMap(m, size))
    return out, width


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
