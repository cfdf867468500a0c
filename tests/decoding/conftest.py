"""A fake StepModel and an independent teacher-forcing scorer for the decoding tests.

Helpers are handed out as fixtures because tests run with --import-mode=importlib, where
test modules cannot import each other.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

PAD, BOS, EOS, FIRST_LABEL = 0, 1, 2, 3


class FakeStepModel:
    """A seeded random attention 'decoder' that honours the StepModel protocol.

    The state changes every step (a tanh recurrence over the previous label, the state and
    an attention context over a static memory), so a search that reorders state wrongly
    gives different results. float64 keeps ties impossible in practice and batch results
    bit-identical to one-by-one results.
    """

    def __init__(self, num_labels: int = 5, *, seed: int = 0, hidden: int = 8, src_vocab: int = 20,
                 eos_bias: float = 0.0, logit_scale: float = 1.0):
        g = torch.Generator().manual_seed(seed)
        self.num_outputs = num_labels + 3
        self.hidden = hidden
        self.src_vocab = src_vocab

        def randn(*shape: int, scale: float = 1.0) -> Tensor:
            return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

        self.src_embedding = randn(src_vocab, hidden)                          # (src_vocab, hidden)
        self.label_embedding = randn(self.num_outputs, hidden)                 # (V, hidden)
        self.w_state = randn(hidden, hidden, scale=hidden ** -0.5)             # (hidden, hidden)
        self.w_context = randn(hidden, hidden, scale=hidden ** -0.5)           # (hidden, hidden)
        self.w_out = randn(hidden, self.num_outputs, scale=logit_scale)        # (hidden, V)
        self.eos_bias = eos_bias
        self.calls = 0

    def start(self, src: Tensor, src_lengths: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        memory = self.src_embedding[src]                                       # (batch, time, hidden)
        mask = torch.arange(src.size(1))[None, :] < src_lengths[:, None]       # (batch, time)
        pooled = (memory * mask[:, :, None]).sum(1) / src_lengths[:, None]     # (batch, hidden)
        return {"memory": memory, "mask": mask}, {"h": torch.tanh(pooled)}

    def step(self, prev_labels: Tensor, state: dict[str, Tensor], static: dict[str, Tensor],
             forbidden: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        self.calls += 1
        h = state["h"]                                                         # (N, hidden)
        energy = (static["memory"] @ h[:, :, None]).squeeze(2)                 # (N, time)
        attention = energy.masked_fill(~static["mask"], float("-inf")).softmax(dim=1)  # (N, time)
        context = (attention[:, :, None] * static["memory"]).sum(1)            # (N, hidden)
        h = torch.tanh(h @ self.w_state + context @ self.w_context
                       + self.label_embedding[prev_labels])                   # (N, hidden)
        logits = h @ self.w_out                                                # (N, V)
        logits[:, EOS] += self.eos_bias
        logits = logits.masked_fill(forbidden, float("-inf"))                  # (N, V)
        return logits.log_softmax(dim=1), {"h": h}, attention


def random_batch(seed: int, batch: int, *, src_vocab: int = 20, max_time: int = 7
                 ) -> tuple[Tensor, Tensor]:
    """Padded random sources of random lengths (PAD = 0 after each length)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    lengths = torch.randint(1, max_time + 1, (batch,), generator=g)            # (batch,)
    src = torch.randint(1, src_vocab, (batch, max_time), generator=g)          # (batch, time)
    src = src.masked_fill(torch.arange(max_time)[None, :] >= lengths[:, None], 0)  # (batch, time)
    return src, lengths


def teacher_forced_log_prob(model: FakeStepModel, src: Tensor, src_lengths: Tensor,
                            sequences: Tensor, lengths: Tensor, *, max_labels: int,
                            min_labels: int = 0) -> Tensor:
    """Log-probability of given label sequences, masks rebuilt here independently of decoding.

    A sequence shorter than max_labels ended with EOS (its log-prob counts); one of
    max_labels labels stopped there without EOS.
    """
    batch, width = sequences.shape
    rows = torch.arange(batch)
    targets = torch.cat([sequences, torch.zeros(batch, 1, dtype=torch.long)], dim=1)  # (batch, width+1)
    targets[rows, lengths] = torch.where(lengths < max_labels, EOS, PAD)
    static, state = model.start(src, src_lengths)
    emitted = torch.zeros(batch, model.num_outputs, dtype=torch.bool)           # (batch, V)
    prev = torch.full((batch,), BOS)                                            # (batch,)
    total = torch.zeros(batch, dtype=torch.float64)                             # (batch,)
    for t in range(width + 1):
        target = targets[:, t]                                                  # (batch,)
        forbidden = emitted.clone()                                             # (batch, V)
        forbidden[:, PAD] = True
        forbidden[:, BOS] = True
        all_used = emitted[:, FIRST_LABEL:].all(dim=1)
        forbidden[:, EOS] = (emitted.sum(1) < min_labels) & ~all_used
        log_probs, state, _ = model.step(prev, state, static, forbidden)
        picked = log_probs.gather(1, target[:, None]).squeeze(1)                # (batch,)
        total = total + torch.where(target != PAD, picked, torch.zeros_like(picked))
        emitted[rows, target] |= target >= FIRST_LABEL
        prev = target
    return total


@pytest.fixture
def make_model() -> type[FakeStepModel]:
    return FakeStepModel


@pytest.fixture
def make_batch() -> Callable[..., tuple[Tensor, Tensor]]:
    return random_batch


@pytest.fixture
def sequence_log_prob() -> Callable[..., Tensor]:
    return teacher_forced_log_prob
