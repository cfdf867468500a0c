"""Fusion of modalities: text (the bi-RNN), image (the CNN) and features (the MLP) in one memory.

Each modality has its own encoder; the decoder attends over their memories concatenated in a
fixed order (image cells, feature slots, then text tokens, so each row's real positions come
first and decoding's per-row cut keeps them). A learned modality embedding is added to every
position so attention knows where a vector came from. ``mode: gate`` also learns, per example,
a softmax weight for each present modality (from its pooled vector) that scales its memory and
mixes the pooled vectors; ``embedding`` averages the present modalities' pooled vectors. A
modality an example lacks is masked (its positions are never attended to, its pooled vector is
left out), not an error; every example must carry at least one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2labels.models.config import SGMConfig
from seq2labels.models.encoders.base import EncoderOutput, masked_mean
from seq2labels.models.encoders.cnn import CNNEncoder, FeatureEncoder
from seq2labels.models.encoders.rnn import Encoder as TextEncoder

MODALITIES = ("image", "features", "text")   # memory order: fixed-size parts first
FUSION_MODES = ("embedding", "gate")


class FusionEncoder(nn.Module):
    """Inputs dict -> EncoderOutput over the concatenated memories of the model's modalities."""

    def __init__(self, cfg: SGMConfig):
        super().__init__()
        opts = cfg.encoder_options
        wanted = list(opts.get("modalities") or [])
        unknown = sorted(set(wanted) - set(MODALITIES))
        if not wanted or unknown:
            raise ValueError(f"fusion needs modalities from {', '.join(MODALITIES)}, got {wanted}")
        self.mode = opts.get("mode", "embedding")
        if self.mode not in FUSION_MODES:
            raise ValueError(f"fusion mode must be one of {', '.join(FUSION_MODES)}, got {self.mode!r}")
        self.modalities = [m for m in MODALITIES if m in wanted]
        builders = {"image": CNNEncoder, "features": FeatureEncoder, "text": TextEncoder}
        self.parts = nn.ModuleDict({m: builders[m](cfg) for m in self.modalities})
        self.memory_dim = cfg.memory_dim
        self.modality_embedding = nn.Embedding(len(self.modalities), cfg.memory_dim)
        nn.init.normal_(self.modality_embedding.weight, std=0.02)
        if self.mode == "gate":
            self.gate = nn.Sequential(nn.Linear(cfg.memory_dim, cfg.memory_dim), nn.Tanh(),
                                      nn.Linear(cfg.memory_dim, 1))

    @property
    def output_dim(self) -> int:
        return self.memory_dim

    @property
    def grid(self) -> tuple[int, int] | None:
        return self.parts["image"].grid if "image" in self.parts else None

    @property
    def fixed_positions(self) -> int:
        return sum(self.parts[m].fixed_positions for m in self.modalities if m != "text")

    def layout(self) -> list[tuple[str, int, int]]:
        """(modality, first position, positions) of the fixed part; text tokens follow it."""
        out, start = [], 0
        for m in self.modalities:
            if m != "text":
                out.append((m, start, self.parts[m].fixed_positions))
                start += self.parts[m].fixed_positions
        return out

    def _encode_part(self, name: str, src: dict) -> tuple[Tensor, Tensor, Tensor]:
        """One modality: memory (batch, n, mem), mask (batch, n), pooled (batch, mem)."""
        present = src[f"{name}_present"]                                  # (batch,)
        if name == "text":
            out = self.parts["text"](src["text"], src["text_lengths"])
            mask = out.mask & present[:, None]                            # (batch, time)
            return out.memory, mask, masked_mean(out.memory, mask)
        memory, pooled = self.parts[name].encode(src[name])               # (batch, n, mem), (batch, mem)
        mask = present[:, None].expand(memory.shape[:2])                  # (batch, n)
        return memory, mask, pooled

    def forward(self, src: dict, lengths: Tensor) -> EncoderOutput:
        memories, masks, pooled, present = [], [], [], []
        for i, name in enumerate(self.modalities):
            memory, mask, pool = self._encode_part(name, src)
            memories.append(memory + self.modality_embedding.weight[i])  # (batch, n, mem)
            masks.append(mask)
            pooled.append(pool)
            present.append(src[f"{name}_present"])
        pooled_all = torch.stack(pooled, 1)                               # (batch, M, mem)
        present_all = torch.stack(present, 1)                             # (batch, M) bool
        if self.mode == "gate":
            scores = self.gate(pooled_all).squeeze(-1)                    # (batch, M)
            weights = torch.softmax(scores.masked_fill(~present_all, float("-inf")), dim=1)  # (batch, M)
            share = weights * present_all.sum(1, keepdim=True)            # (batch, M) mean 1 over present
            memories = [m * share[:, i, None, None] for i, m in enumerate(memories)]
            pooled_vec = (weights.unsqueeze(-1) * pooled_all).sum(1)      # (batch, mem)
        else:
            pooled_vec = masked_mean(pooled_all, present_all)             # (batch, mem)
        memory = torch.cat(memories, 1)                                   # (batch, positions, mem)
        mask = torch.cat(masks, 1)                                        # (batch, positions)
        return EncoderOutput(memory, mask, pooled_vec)
