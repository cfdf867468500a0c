"""The recipe's part for image, features and fused inputs (``model.encoder`` cnn | features | fusion).

Reads JSON Lines with images (``data.images``), decides which modalities the model reads (cnn:
image, features: features, fusion: every modality the training data carries), builds the
network config (the encoder's settings go into ``SGMConfig.encoder_options``, so a saved model
rebuilds it) and encodes examples into a :class:`MultiModalDataset`.
"""

from __future__ import annotations

from typing import Sequence

import torch

from seq2labels.data.images import ImageSpec, iter_multimodal_examples
from seq2labels.data.labels import LabelVocab
from seq2labels.data.multimodal import MultiModalDataset, encode_multimodal, modalities_of
from seq2labels.data.readers import Example
from seq2labels.data.vocab import Vocab
from seq2labels.errors import DataFormatError
from seq2labels.models.encoders import INPUT_ENCODERS
from seq2labels.models.sgm import SGM
from seq2labels.pipeline.config import RunConfig
from seq2labels.pipeline.transformer import sgm_config

FIXED_MODALITIES = {"cnn": ("image",), "features": ("features",)}


def uses_inputs(cfg: RunConfig) -> bool:
    """Whether the model reads Inputs batches (images, features, fused) rather than token ids."""
    return cfg.model.encoder in INPUT_ENCODERS


def image_spec(cfg: RunConfig) -> ImageSpec:
    i = cfg.image
    return ImageSpec(size=i.size, color=i.color, max_pixels=i.max_pixels, max_bytes=i.max_bytes)


def read_inputs_file(cfg: RunConfig, path: str, encoding_errors: str | None = None) -> list[Example]:
    """Every example of a JSON Lines file with images / features / text, each image checked with its line."""
    return list(iter_multimodal_examples(path, image_spec(cfg), allow_outside=cfg.image.allow_outside,
                                         encoding_errors=encoding_errors or cfg.data.encoding_errors))


def model_modalities(cfg: RunConfig, train: Sequence[Example]) -> tuple[str, ...]:
    """The modalities the model reads: fixed by cnn / features, those of the training data for fusion."""
    if cfg.model.encoder in FIXED_MODALITIES:
        return FIXED_MODALITIES[cfg.model.encoder]
    found = modalities_of(train)
    if not found:
        raise DataFormatError(f"{cfg.data.train or 'training data'}: no example has text, an image or features")
    return found


def features_dim(train: Sequence[Example]) -> int | None:
    """The length of the training examples' features vectors (all must agree), None without features."""
    dims = {len(ex.features) for ex in train if ex.features is not None}
    if len(dims) > 1:
        raise DataFormatError(f"training examples' 'features' have different lengths: {sorted(dims)[:5]}")
    return dims.pop() if dims else None


def encoder_options(cfg: RunConfig, train: Sequence[Example]) -> dict:
    """The JSON settings that rebuild the encoder (see seq2labels.models.encoders.cnn / fusion)."""
    modalities = model_modalities(cfg, train)
    opts: dict = {"modalities": list(modalities), "mode": cfg.model.fusion}
    if "image" in modalities:
        spec = image_spec(cfg)
        opts.update(in_channels=spec.channels, size=spec.size, channels=[int(c) for c in cfg.image.channels.split(",")])
    if "features" in modalities:
        dim = features_dim(train)
        if dim is None:
            raise DataFormatError(f"{cfg.data.train or 'training data'}: model.encoder features needs a 'features' "
                                  "list in the examples")
        opts.update(features_dim=dim, slots=cfg.model.feature_slots)
    return opts


def build_inputs_model(cfg: RunConfig, vocab: Vocab, label_vocab: LabelVocab, train: Sequence[Example]) -> SGM:
    """SGM over the image / features / fusion encoder; a features encoder gets the training set's statistics."""
    model = SGM(sgm_config(cfg, len(vocab), label_vocab.size, encoder_options(cfg, train)))
    feature_part = features_encoder(model)
    if feature_part is not None:
        rows = [ex.features for ex in train if ex.features is not None]
        feature_part.set_statistics(torch.tensor(rows, dtype=torch.float32))
    return model


def features_encoder(model: SGM):
    """The model's features encoder (on its own or inside a fusion), or None."""
    encoder = model.encoder
    if getattr(encoder, "modality", None) == "features":
        return encoder
    parts = getattr(encoder, "parts", None)
    return parts["features"] if parts is not None and "features" in parts else None


def modalities_read(model: SGM) -> tuple[str, ...]:
    """What a built model reads, from its encoder's options."""
    encoder = model.config.encoder
    if encoder in FIXED_MODALITIES:
        return FIXED_MODALITIES[encoder]
    return tuple(m for m in ("text", "image", "features") if m in model.config.encoder_options.get("modalities", ()))


def encode_inputs(examples: Sequence[Example], model: SGM, tokenizer, vocab: Vocab, label_vocab: LabelVocab,
                  cfg: RunConfig, name: str = "examples") -> MultiModalDataset:
    """Examples as the model's encoder reads them."""
    modalities = modalities_read(model)
    opts = model.config.encoder_options
    return encode_multimodal(examples, tokenizer, vocab, label_vocab, cfg.text.max_len, modalities=modalities,
                             spec=image_spec(cfg) if "image" in modalities else None,
                             features_dim=opts.get("features_dim"),
                             fixed_positions=int(getattr(model.encoder, "fixed_positions", 0)), name=name)
