"""What every encoder gives the SGM decoder: memory to attend over, its mask, and a pooled vector."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class EncoderOutput(NamedTuple):
    """``memory`` (batch, time, dim): one vector per position the decoder may attend to (a token, a
    word piece, an image cell, a feature); ``mask`` (batch, time) True on real positions; ``pooled``
    (batch, dim): the whole input in one vector, which starts the decoder's state."""

    memory: Tensor
    mask: Tensor
    pooled: Tensor


def masked_mean(memory: Tensor, mask: Tensor, zero_on_padding: bool = False) -> Tensor:
    """Mean of ``memory`` over the real positions; ``zero_on_padding`` skips the mask multiply when
    the caller knows padding is already exactly zero (same result, one tensor less)."""
    on_tokens = memory if zero_on_padding else memory * mask.unsqueeze(-1)  # (batch, time, dim)
    return on_tokens.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)        # (batch, dim)
