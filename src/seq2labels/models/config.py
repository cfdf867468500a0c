"""The SGM network's frozen config, shared by its encoders and its decoder."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class SGMConfig:
    vocab_size: int
    num_outputs: int                 # label vocabulary size incl. PAD, BOS, EOS
    embedding_dim: int = 128
    encoder_hidden: int = 256        # per direction
    encoder_layers: int = 1
    rnn_type: str = "lstm"           # "lstm" | "gru"
    bidirectional: bool = True
    self_attention: bool = False     # a self-attention layer over encoder states
    self_attention_heads: int = 4
    attention: bool = True           # contextual attention; False = mean-pooled encoder states
    label_embedding_dim: int = 128
    decoder_hidden: int = 256
    global_embedding: bool = False   # SGM+GE
    bag_of_words: bool = False       # add a per-label bias from the mean word embedding at every step
    mask_repeats: bool = True        # masked softmax over emitted labels; False = the "no mask" ablation
    dropout: float = 0.3
    encoder: str = "rnn"             # which file of models/encoders builds the encoder
    encoder_options: dict[str, Any] = field(default_factory=dict)  # that encoder's own settings (JSON)

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, str) or not self.encoder:
            raise ValueError(f"encoder must name an encoder, got {self.encoder!r}")
        if not isinstance(self.encoder_options, dict):
            raise ValueError(f"encoder_options must be a mapping, got {type(self.encoder_options).__name__}")
        if self.bag_of_words and self.encoder != "rnn":
            raise ValueError("bag_of_words reads the rnn encoder's word embeddings; it needs encoder 'rnn'")
        if self.rnn_type not in ("lstm", "gru"):
            raise ValueError(f"rnn_type must be 'lstm' or 'gru', got {self.rnn_type!r}")
        for name in ("vocab_size", "embedding_dim", "encoder_hidden", "encoder_layers",
                     "label_embedding_dim", "decoder_hidden", "self_attention_heads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_outputs < 4:
            raise ValueError("num_outputs must count PAD, BOS, EOS and at least one label")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.self_attention and self.memory_dim % self.self_attention_heads:
            raise ValueError(f"self_attention_heads ({self.self_attention_heads}) must divide "
                             f"the encoder output size ({self.memory_dim})")

    @property
    def memory_dim(self) -> int:
        return self.encoder_hidden * (2 if self.bidirectional else 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SGMConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SGM config keys: {', '.join(unknown)}")
        return cls(**data)
