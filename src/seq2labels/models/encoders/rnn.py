"""The bi-RNN text encoder (SGM's): word embeddings -> (bi)LSTM/GRU -> optional self-attention."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2labels.models.config import SGMConfig
from seq2labels.models.encoders.base import EncoderOutput, masked_mean
from seq2labels.models.layers import Dropout


def reversal_rows(lengths: Tensor, time: int) -> Tensor:
    """Row indices into a (batch * time, ...) view that reverse each sequence's first ``length``
    steps and leave its padding where it is (see :func:`reverse_within_length`)."""
    batch = lengths.size(0)
    steps = torch.arange(time, device=lengths.device)[None, :]           # (1, time)
    last = (lengths - 1).clamp(min=0)[:, None]                            # (batch, 1)
    index = torch.where(steps < lengths[:, None], last - steps, steps)   # (batch, time)
    offsets = torch.arange(batch, device=lengths.device)[:, None] * time  # (batch, 1)
    return (index + offsets).reshape(-1)                                  # (batch * time,)


def reverse_rows(x: Tensor, rows: Tensor) -> Tensor:
    """x (batch, time, dim) reordered by :func:`reversal_rows`: one ``index_select`` of whole
    feature rows, several times faster than a ``gather`` with an expanded index (forward and
    backward)."""
    batch, time, _ = x.shape
    return x.reshape(batch * time, -1).index_select(0, rows).view(batch, time, -1)  # (batch, time, dim)


def reverse_within_length(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence's first ``length`` steps, leaving padding where it is.

    Applying it twice is the identity; it lets a plain (unpacked) RNN read each text
    backwards starting from its last real token.
    """
    return reverse_rows(x, reversal_rows(lengths, x.size(1)))          # (batch, time, dim)


class Encoder(nn.Module):
    """Embeddings -> (bi)RNN -> optional self-attention.

    Each direction is a plain unidirectional RNN over the padded batch; the backward
    one reads every text reversed within its own length. This is exact (padding sits
    after the last real token, so it never reaches a real position) and on CPU it is
    several times faster than packed sequences of uneven lengths, which fall off
    oneDNN's fast path; length-bucketed batches keep the padding small.
    """

    def __init__(self, cfg: SGMConfig):
        super().__init__()
        self.memory_dim = cfg.encoder_hidden * (2 if cfg.bidirectional else 1)
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embedding_dim, padding_idx=0)
        rnn = nn.LSTM if cfg.rnn_type == "lstm" else nn.GRU
        directions = 2 if cfg.bidirectional else 1
        self.layers = nn.ModuleList()
        for layer in range(cfg.encoder_layers):
            in_dim = cfg.embedding_dim if layer == 0 else cfg.encoder_hidden * directions
            self.layers.append(nn.ModuleList(rnn(in_dim, cfg.encoder_hidden, batch_first=True)
                                             for _ in range(directions)))
        self.dropout = Dropout(cfg.dropout)
        self.self_attn = None
        if cfg.self_attention:
            self.self_attn = nn.MultiheadAttention(cfg.memory_dim, cfg.self_attention_heads,
                                                   dropout=cfg.dropout, batch_first=True)
            self.self_attn_norm = nn.LayerNorm(cfg.memory_dim)

    @property
    def memory_zero_on_padding(self) -> bool:
        """Whether ``forward``'s memory is exactly zero on padding (lets pooling skip a mask)."""
        return self.self_attn is None

    @property
    def output_dim(self) -> int:
        return self.memory_dim

    def forward(self, src: Tensor, lengths: Tensor) -> EncoderOutput:
        """src (batch, time) token ids, lengths (batch,): memory (batch, time, memory_dim), mask
        (batch, time) True on real tokens, pooled (batch, memory_dim) the mean over real tokens."""
        time = src.size(1)
        mask = torch.arange(time, device=src.device)[None, :] < lengths[:, None]  # (batch, time)
        x = self.dropout(self.embedding(src))                            # (batch, time, emb)
        rows = reversal_rows(lengths, time) if len(self.layers[0]) == 2 else None  # (batch * time,)
        for i, directions in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            outputs = [directions[0](x)[0]]                              # (batch, time, hidden)
            if rows is not None:
                backward, _ = directions[1](reverse_rows(x, rows))       # (batch, time, hidden)
                outputs.append(reverse_rows(backward, rows))             # (batch, time, hidden)
            x = torch.cat(outputs, dim=-1)                               # (batch, time, mem)
        memory = self.dropout(x.mul_(mask.unsqueeze(-1)))                # (batch, time, mem) zero on padding; x is cat's own
        if self.self_attn is not None:
            attended, _ = self.self_attn(memory, memory, memory, key_padding_mask=~mask,
                                         need_weights=False)             # (batch, time, mem)
            memory = self.self_attn_norm(memory + attended)
        pooled = masked_mean(memory, mask, zero_on_padding=self.memory_zero_on_padding)  # (batch, mem)
        return EncoderOutput(memory, mask, pooled)
