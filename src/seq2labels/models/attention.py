"""Additive (Bahdanau) attention of the SGM decoder over the encoder memory, and dtype helpers."""

from __future__ import annotations

import torch
from torch import Tensor, nn


# At inference the energy tensor (examples, group, time, hidden) is built, squashed and projected
# a slice of examples at a time, each slice about this many floats (1 MiB): it stays in the CPU
# cache instead of making three trips through memory, and no allocation is large enough for
# malloc to hand it back to the kernel. One slice when the whole tensor is smaller.
ENERGY_CHUNK_ELEMENTS = 1 << 18


class AdditiveAttention(nn.Module):
    """Bahdanau-style attention: score = v^T tanh(W_q q + W_k k), as in SGM."""

    def __init__(self, query_dim: int, key_dim: int, hidden: int):
        super().__init__()
        self.query = nn.Linear(query_dim, hidden, bias=False)
        self.key = nn.Linear(key_dim, hidden)
        self.v = nn.Linear(hidden, 1, bias=False)

    def _scores(self, keys: Tensor, q: Tensor) -> Tensor:
        """v^T tanh(k + q) for a slice of the examples: keys (m, time, hidden), q (m, group, hidden)."""
        energy = (keys[:, None] + q[:, :, None]).tanh_()                 # (m, group, time, hidden)
        with torch.autocast(energy.device.type, enabled=False):
            return self.v(energy).squeeze(-1)                            # (m, group, time)

    def project_keys(self, memory: Tensor) -> Tensor:
        """Computed once per batch: the keys do not change across decoder steps."""
        return self.key(memory)                                          # (batch, time, hidden)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """query (N, q) with N = n * group: ``group`` consecutive queries (an example's beam
        hypotheses) attend over the same keys, memory and mask (n rows each), so beam search
        needs no per-hypothesis copy of the encoder outputs.

        The energy (the decoder's largest tensor) stays in float32 even under bf16 autocast:
        on CPUs bf16 tanh is several times slower than float32 tanh, and the scores keep
        their precision."""
        n, time, hidden = keys.shape
        q = at_least_float32(self.query(query)).view(n, -1, hidden)      # (n, group, hidden)
        keys = at_least_float32(keys)                                    # (n, time, hidden)
        step = max(1, ENERGY_CHUNK_ELEMENTS // (q.size(1) * time * hidden))
        # One piece when it is small, when an export traces the graph (any n must work), and under
        # autograd: the backward of every slice would write a zero-filled gradient of all the keys.
        if n <= step or torch.jit.is_tracing() or torch.is_grad_enabled():
            scores = self._scores(keys, q)                               # (n, group, time)
        else:
            scores = torch.cat([self._scores(keys[i:i + step], q[i:i + step]) for i in range(0, n, step)])
        scores = scores.masked_fill(~mask[:, None], float("-inf"))
        weights = torch.softmax(at_least_float32(scores), dim=-1)        # (n, group, time)
        context = torch.bmm(weights.to(memory.dtype), memory)            # (n, group, mem)
        return context.reshape(-1, memory.size(-1)), weights.reshape(-1, time)  # (N, mem), (N, time)


def at_least_float32(x: Tensor) -> Tensor:
    """Softmax and log-probabilities in float32 at least: under bf16/fp16 autocast the scores
    would otherwise be normalised in 8 bits of mantissa."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def per_hypothesis(x: Tensor, rows: int) -> Tensor:
    """A per-example tensor (n, ...) repeated for each of the ``rows / n`` hypotheses of its example."""
    group = rows // x.size(0)
    return x if group == 1 else x.repeat_interleave(group, dim=0)       # (rows, ...)
