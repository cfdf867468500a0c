"""Layers shared by the model families."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_HALF_WORD = 1 << 16


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper random mask on the CPU.

    PyTorch's CPU dropout draws one random number per element (about 15% of an SGM training
    step in benchmarks/results/profile.md). Here one 64-bit draw gives four 16-bit uniform
    numbers, each compared with the keep probability rounded to 1/65536. The mask comes from
    torch's seeded generator, so training stays reproducible; other devices use
    ``F.dropout``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or self.inplace:
            return F.dropout(x, self.p, self.training, self.inplace)
        keep = 1.0 - self.p
        return x * keep_mask(x.shape, keep, x.device) * (1.0 / keep)


def keep_mask(shape: torch.Size, keep: float, device: torch.device) -> Tensor:
    """Bool mask, each element True with probability ``keep`` (rounded to a multiple of 1/65536)."""
    n = math.prod(shape)
    words = torch.randint(-(1 << 63), (1 << 63) - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    halves = words.view(torch.int16)[:n].view(shape)                 # uniform in [-32768, 32767]
    return halves < round(keep * _HALF_WORD) - _HALF_WORD // 2
