"""Encoders of non-text inputs: a small CNN over an image, and an MLP over a features vector.

The CNN's last feature map (h x w cells, after one 2x2 max pool per block) is the memory the
SGM decoder attends over, one position per cell, so every emitted label has an attention map
over the image (the COCO setting of the SGM paper). A learned embedding per cell tells the
decoder where a cell is. The features encoder turns one vector into ``slots`` memory positions.

Settings live in ``SGMConfig.encoder_options`` (JSON); no pretrained weights are read.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2labels.models.config import SGMConfig
from seq2labels.models.encoders.base import EncoderOutput
from seq2labels.models.layers import Dropout

CNN_DEFAULTS = {"in_channels": 3, "size": 32, "channels": [32, 64, 128]}
FEATURE_DEFAULTS = {"features_dim": None, "slots": 8}


def checked_cnn_options(options: dict) -> dict:
    """The CNN's options over the defaults; a ValueError names a bad one."""
    opts = {**CNN_DEFAULTS, **{k: options[k] for k in CNN_DEFAULTS if k in options}}
    channels = [int(c) for c in opts["channels"]]
    if not channels or min(channels) < 1:
        raise ValueError(f"cnn channels must be a non-empty list of widths >= 1, got {opts['channels']}")
    if int(opts["in_channels"]) not in (1, 3):
        raise ValueError(f"cnn in_channels must be 1 (gray) or 3 (rgb), got {opts['in_channels']}")
    if int(opts["size"]) >> len(channels) < 1:
        raise ValueError(f"an image of {opts['size']} pixels cannot be pooled {len(channels)} times")
    return {"in_channels": int(opts["in_channels"]), "size": int(opts["size"]), "channels": channels}


def image_batch(src) -> Tensor:
    """The image tensor of ``src``: an Inputs dict's ``image``, or ``src`` itself."""
    return src["image"] if isinstance(src, dict) else src


class CNNEncoder(nn.Module):
    """uint8 images (batch, C, size, size) -> memory (batch, cells, memory_dim) over the last feature map."""

    modality = "image"

    def __init__(self, cfg: SGMConfig):
        super().__init__()
        opts = checked_cnn_options(cfg.encoder_options)
        self.options = opts
        blocks, width = [], opts["in_channels"]
        for out in opts["channels"]:
            blocks += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.blocks = nn.Sequential(*blocks)
        side = opts["size"] >> len(opts["channels"])
        self.grid = (side, side)
        self.project = nn.Linear(width, cfg.memory_dim)
        self.cell_embedding = nn.Parameter(torch.zeros(side * side, cfg.memory_dim))
        nn.init.normal_(self.cell_embedding, std=0.02)
        self.dropout = Dropout(cfg.dropout)
        self.memory_dim = cfg.memory_dim

    @property
    def output_dim(self) -> int:
        return self.memory_dim

    @property
    def fixed_positions(self) -> int:
        return self.grid[0] * self.grid[1]

    def layout(self) -> list[tuple[str, int, int]]:
        """(modality, first position, positions) of the memory's fixed part."""
        return [("image", 0, self.fixed_positions)]

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images (batch, C, H, W) uint8 or float in [0, 255] -> memory (batch, cells, mem), pooled (batch, mem)."""
        x = images.float() / 127.5 - 1.0                                  # (batch, C, H, W) in [-1, 1]
        fmap = self.blocks(x)                                             # (batch, width, h, w)
        cells = fmap.flatten(2).transpose(1, 2)                           # (batch, h * w, width)
        memory = self.dropout(torch.tanh(self.project(cells) + self.cell_embedding))  # (batch, cells, mem)
        return memory, memory.mean(1)                                     # (batch, cells, mem), (batch, mem)

    def forward(self, src, lengths: Tensor) -> EncoderOutput:
        memory, pooled = self.encode(image_batch(src))
        mask = torch.ones(memory.shape[:2], dtype=torch.bool, device=memory.device)  # (batch, cells)
        return EncoderOutput(memory, mask, pooled)


class FeatureEncoder(nn.Module):
    """A features vector (batch, F), standardised with the training set's mean and spread,
    -> an MLP -> ``slots`` memory positions (batch, slots, memory_dim)."""

    modality = "features"

    def __init__(self, cfg: SGMConfig):
        super().__init__()
        opts = {**FEATURE_DEFAULTS, **{k: cfg.encoder_options[k] for k in FEATURE_DEFAULTS if k in cfg.encoder_options}}
        if not opts["features_dim"] or int(opts["features_dim"]) < 1 or int(opts["slots"]) < 1:
            raise ValueError(f"a features encoder needs features_dim >= 1 and slots >= 1, got {opts}")
        dim, self.slots = int(opts["features_dim"]), int(opts["slots"])
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        hidden = cfg.encoder_hidden
        self.hidden = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), Dropout(cfg.dropout))
        self.slot_out = nn.Linear(hidden, self.slots * cfg.memory_dim)
        self.memory_dim = cfg.memory_dim

    @property
    def output_dim(self) -> int:
        return self.memory_dim

    @property
    def fixed_positions(self) -> int:
        return self.slots

    def layout(self) -> list[tuple[str, int, int]]:
        return [("features", 0, self.slots)]

    def set_statistics(self, features: Tensor) -> None:
        """Standardise with these (n, F) training rows' mean and standard deviation (saved with the weights)."""
        with torch.no_grad():
            self.mean.copy_(features.mean(0))
            self.scale.copy_(features.std(0, unbiased=False).clamp(min=1e-6))

    def encode(self, features: Tensor) -> tuple[Tensor, Tensor]:
        x = (features.float() - self.mean) / self.scale                   # (batch, F)
        memory = torch.tanh(self.slot_out(self.hidden(x)))                # (batch, slots * mem)
        memory = memory.view(x.size(0), self.slots, self.memory_dim)      # (batch, slots, mem)
        return memory, memory.mean(1)                                     # (batch, slots, mem), (batch, mem)

    def forward(self, src, lengths: Tensor) -> EncoderOutput:
        memory, pooled = self.encode(src["features"] if isinstance(src, dict) else src)
        mask = torch.ones(memory.shape[:2], dtype=torch.bool, device=memory.device)  # (batch, slots)
        return EncoderOutput(memory, mask, pooled)
