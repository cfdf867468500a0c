"""Kim (2014) CNN for multi-label text classification.

Embeddings -> parallel 1-D convolutions of several widths -> ReLU -> max over time ->
dropout -> one logit per label. Padding never influences the result: padded embeddings
are zeroed, every text is extended with ``width - 1`` zero vectors (so a text shorter
than a filter still has one window), and only windows starting on a real token take part
in the max.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class KimCNNConfig:
    vocab_size: int
    num_labels: int
    embedding_dim: int = 128
    filter_sizes: tuple[int, ...] = (3, 4, 5)
    num_filters: int = 100            # per filter width
    dropout: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "filter_sizes", tuple(int(k) for k in self.filter_sizes))
        for name in ("vocab_size", "num_labels", "embedding_dim", "num_filters"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.filter_sizes or any(k < 1 for k in self.filter_sizes):
            raise ValueError(f"filter_sizes must be a non-empty tuple of widths >= 1, got {self.filter_sizes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def feature_dim(self) -> int:
        return self.num_filters * len(self.filter_sizes)

    def to_dict(self) -> dict:
        return asdict(self)


class ConvTextFeatures(nn.Module):
    """Token ids -> one fixed-size vector per text (the CNN part, shared with CNN-RNN)."""

    def __init__(self, vocab_size: int, embedding_dim: int, filter_sizes: tuple[int, ...], num_filters: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, num_filters, k) for k in filter_sizes)

    def forward(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (features (batch, filters * widths), mask (batch, time) True on real tokens)."""
        time = src.size(1)
        mask = torch.arange(time, device=src.device)[None, :] < lengths[:, None]  # (batch, time)
        emb = self.embedding(src) * mask.unsqueeze(-1)                   # (batch, time, emb) zero on padding
        x = emb.transpose(1, 2)                                          # (batch, emb, time)
        pooled = []
        for conv in self.convs:
            width = conv.kernel_size[0]
            out = F.relu(conv(F.pad(x, (0, width - 1))))                 # (batch, filters, time)
            out = out.masked_fill(~mask.unsqueeze(1), float("-inf"))     # windows starting on padding
            pooled.append(out.amax(dim=2))                               # (batch, filters)
        return torch.cat(pooled, dim=1), mask                            # (batch, filters * widths)


class KimCNN(nn.Module):
    def __init__(self, cfg: KimCNNConfig):
        super().__init__()
        self.config = cfg
        self.features = ConvTextFeatures(cfg.vocab_size, cfg.embedding_dim, cfg.filter_sizes, cfg.num_filters)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(cfg.feature_dim, cfg.num_labels)

    def forward(self, src: Tensor, src_lengths: Tensor) -> Tensor:
        """src (batch, time) ids padded with 0, src_lengths (batch,) >= 1 -> (batch, labels) logits."""
        features, _ = self.features(src, src_lengths)                    # (batch, feature)
        return self.output(self.dropout(features))                       # (batch, labels)
