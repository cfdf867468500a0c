"""Encoders the SGM decoder attends over, one file per family (rnn: the bi-LSTM/GRU text encoder;
transformer: a pretrained Hugging Face model; cnn: images; features: a numbers vector; fusion: several).

Each is an ``nn.Module`` with ``output_dim`` whose ``forward(src, lengths)`` returns an
:class:`EncoderOutput` (memory, mask, pooled); the decoder, beam search and trainer do not change
when one is added here. May import models.config, models.layers and below.
"""

from __future__ import annotations

from torch import nn

from seq2labels.models.config import SGMConfig
from seq2labels.models.encoders.base import EncoderOutput, masked_mean

ENCODERS = ("rnn", "transformer", "cnn", "features", "fusion")
INPUT_ENCODERS = ("cnn", "features", "fusion")  # read a data.multimodal.Inputs batch, not token ids

__all__ = ["ENCODERS", "INPUT_ENCODERS", "EncoderOutput", "build_encoder", "masked_mean"]


def build_encoder(cfg: SGMConfig) -> nn.Module:
    """The encoder ``cfg.encoder`` names, built from the config alone (so a saved model rebuilds it)."""
    if cfg.encoder == "rnn":
        from seq2labels.models.encoders.rnn import Encoder
        return Encoder(cfg)
    if cfg.encoder == "transformer":  # imports transformers only now: the package works without the extra
        from seq2labels.models.encoders.transformer import TransformerEncoder
        return TransformerEncoder(cfg)
    if cfg.encoder == "cnn":
        from seq2labels.models.encoders.cnn import CNNEncoder
        return CNNEncoder(cfg)
    if cfg.encoder == "features":
        from seq2labels.models.encoders.cnn import FeatureEncoder
        return FeatureEncoder(cfg)
    if cfg.encoder == "fusion":
        from seq2labels.models.encoders.fusion import FusionEncoder
        return FusionEncoder(cfg)
    raise ValueError(f"unknown encoder {cfg.encoder!r}; known: {', '.join(ENCODERS)}")
