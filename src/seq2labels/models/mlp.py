"""Feed-forward multi-label baselines on fixed-length feature vectors (e.g. TF-IDF).

``SigmoidMLP``: hidden layers, then one linear layer giving a logit per label (trained
with binary cross-entropy on the logits). ``PerLabelMLP``: the same shared hidden
layers, then a separate ``Linear(hidden, 1)`` output head for every label ("one output
layer per label"). Both return (batch, num_labels) logits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class MLPConfig:
    input_dim: int
    num_labels: int
    hidden: tuple[int, ...] = (256,)   # sizes of the shared hidden layers; () = a linear model
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if int(self.input_dim) < 1 or int(self.num_labels) < 1:
            raise ValueError(f"input_dim and num_labels must be >= 1, got {self.input_dim}, {self.num_labels}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be >= 1, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def feature_dim(self) -> int:
        """Size of the representation the output layer(s) read."""
        return self.hidden[-1] if self.hidden else self.input_dim

    def to_dict(self) -> dict:
        return asdict(self)


class HiddenLayers(nn.Module):
    """Linear -> ReLU -> dropout, once per hidden size (dropout on the input too)."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(cfg.dropout)]
        in_dim = cfg.input_dim
        for size in cfg.hidden:
            layers += [nn.Linear(in_dim, size), nn.ReLU(), nn.Dropout(cfg.dropout)]
            in_dim = size
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)                                               # (batch, feature)


class SigmoidMLP(nn.Module):
    """Shared hidden layers and one linear output of ``num_labels`` logits."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.config = cfg
        self.hidden = HiddenLayers(cfg)
        self.output = nn.Linear(cfg.feature_dim, cfg.num_labels)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.hidden(x))                               # (batch, labels) logits


class PerLabelMLP(nn.Module):
    """Shared hidden layers, then one ``Linear(feature, 1)`` head per label."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.config = cfg
        self.hidden = HiddenLayers(cfg)
        self.heads = nn.ModuleList(nn.Linear(cfg.feature_dim, 1) for _ in range(cfg.num_labels))

    def forward(self, x: Tensor) -> Tensor:
        h = self.hidden(x)                                               # (batch, feature)
        return torch.cat([head(h) for head in self.heads], dim=-1)       # (batch, labels) logits
