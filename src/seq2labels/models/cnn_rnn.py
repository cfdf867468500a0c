"""CNN-RNN (Chen et al. 2017), the label-sequence baseline of the SGM paper.

A Kim CNN turns the text into one vector; it initialises an LSTM label decoder and is fed
to it at every step; the decoder emits one label per step until EOS, under the same mask
as SGM (PAD, BOS and already emitted labels get -inf before the softmax). There is no
attention: ``step`` reports uniform weights over the real tokens.

Implements the ``StepModel`` protocol of :mod:`seq2labels.decoding`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from seq2labels.decoding.search import teacher_forced_log_probs

from seq2labels.models.cnn import ConvTextFeatures



@dataclass(frozen=True)
class CNNRNNConfig:
    vocab_size: int
    num_outputs: int                  # label vocabulary size incl. PAD, BOS, EOS
    embedding_dim: int = 128
    filter_sizes: tuple[int, ...] = (3, 4, 5)
    num_filters: int = 100
    label_embedding_dim: int = 64
    decoder_hidden: int = 256
    dropout: float = 0.3

    def __post_init__(self) -> None:
        object.__setattr__(self, "filter_sizes", tuple(int(k) for k in self.filter_sizes))
        for name in ("vocab_size", "embedding_dim", "num_filters", "label_embedding_dim", "decoder_hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.filter_sizes or any(k < 1 for k in self.filter_sizes):
            raise ValueError(f"filter_sizes must be a non-empty tuple of widths >= 1, got {self.filter_sizes}")
        if self.num_outputs < 4:
            raise ValueError("num_outputs must count PAD, BOS, EOS and at least one label")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def feature_dim(self) -> int:
        return self.num_filters * len(self.filter_sizes)

    def to_dict(self) -> dict:
        return asdict(self)


class CNNRNN(nn.Module):
    def __init__(self, cfg: CNNRNNConfig):
        super().__init__()
        self.config = cfg
        self.num_outputs = cfg.num_outputs
        self.features = ConvTextFeatures(cfg.vocab_size, cfg.embedding_dim, cfg.filter_sizes, cfg.num_filters)
        feat = cfg.feature_dim
        self.label_embedding = nn.Embedding(cfg.num_outputs, cfg.label_embedding_dim, padding_idx=0)
        self.init_h = nn.Linear(feat, cfg.decoder_hidden)
        self.init_c = nn.Linear(feat, cfg.decoder_hidden)
        self.cell = nn.LSTMCell(cfg.label_embedding_dim + feat, cfg.decoder_hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(cfg.decoder_hidden + feat, cfg.num_outputs)

    # ---- StepModel protocol -------------------------------------------------------
    def start(self, src: Tensor, src_lengths: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        features, mask = self.features(src, src_lengths)                 # (batch, feat), (batch, time)
        features = self.dropout(features)
        static = {"features": features, "mask": mask}
        state = {
            "h": torch.tanh(self.init_h(features)),                      # (batch, dec)
            "c": torch.tanh(self.init_c(features)),                      # (batch, dec)
        }
        return static, state

    def step(self, prev_labels: Tensor, state: dict[str, Tensor], static: dict[str, Tensor],
             forbidden: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """One decoder step; forbidden (N, V) bool gets -inf before the softmax."""
        features = static["features"]                                    # (N, feat)
        x = self.label_embedding(prev_labels)                            # (N, label_emb)
        h, c = self.cell(torch.cat([x, features], dim=-1), (state["h"], state["c"]))  # (N, dec)
        logits = self.output(self.dropout(torch.cat([h, features], dim=-1)))  # (N, V)
        logits = logits.masked_fill(forbidden, float("-inf"))
        log_probs = torch.log_softmax(logits, dim=-1)                    # (N, V)
        mask = static["mask"].float()                                    # (N, time)
        weights = mask / mask.sum(1, keepdim=True).clamp(min=1)          # (N, time) uniform
        return log_probs, {"h": h, "c": c}, weights

    # ---- training ------------------------------------------------------------------
    def forward(self, src: Tensor, src_lengths: Tensor, targets: Tensor) -> Tensor:
        """Teacher forcing. targets (batch, steps): labels, EOS, PAD -> (batch, steps, V) log-probs.

        The mask is SGM's: PAD, BOS and every gold label fed at an earlier step are forbidden.
        """
        return teacher_forced_log_probs(self, src, src_lengths, targets)  # (batch, steps, V)
