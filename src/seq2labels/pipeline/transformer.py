"""The recipe's part for ``model.encoder: transformer``: tokenizer, vocabulary, network config,
pretrained weights, and label embeddings from the label names.

Everything a saved model needs to rebuild the encoder goes into ``SGMConfig.encoder_options``
(the Hugging Face config as a dict) and the weights file; the pretrained folder is read only
here, at training time, offline (``local_files_only=True``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from seq2labels.data.labels import N_SPECIAL, LabelVocab
from seq2labels.data.vocab import PAD_ID, Vocab
from seq2labels.data.wordpiece import WordPieceTokenizer
from seq2labels.errors import ConfigError, DataFormatError
from seq2labels.models.config import SGMConfig
from seq2labels.models.sgm import SGM
from seq2labels.pipeline.config import RunConfig
from seq2labels.utils.hf import require_transformers, resolve_pretrained

log = logging.getLogger(__name__)

# SGMConfig fields that are not ModelConfig keys of the same name
_NOT_FROM_MODEL = {"vocab_size", "num_outputs", "encoder_options"}


def uses_transformer(cfg: RunConfig) -> bool:
    return cfg.model.encoder == "transformer"


def build_tokenizer(cfg: RunConfig) -> tuple[WordPieceTokenizer, Vocab]:
    """The pretrained model's own tokenizer, cut to ``text.max_len`` pieces, and our vocabulary
    over its pieces (text.lowercase, min_count and max_vocab do not apply: the model decides)."""
    folder = resolve_pretrained(cfg.model.pretrained)
    truncation = "head_tail" if cfg.model.long_text == "head_tail" else "head"
    tokenizer = WordPieceTokenizer.from_pretrained(folder, max_tokens=cfg.text.max_len, truncation=truncation,
                                                   head_tokens=cfg.model.head_tokens if truncation == "head_tail" else 0)
    vocab, _ = tokenizer.build_vocab()
    return tokenizer, vocab


def encoder_options(cfg: RunConfig, tokenizer: WordPieceTokenizer) -> dict:
    """The JSON settings that rebuild the encoder (see seq2labels.models.encoders.transformer)."""
    folder = resolve_pretrained(cfg.model.pretrained)
    transformers = require_transformers()
    hf_config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True).to_dict()
    special_ids = {role: tokenizer.token_id(role) for role in ("cls", "sep", "pad")}
    specials = sum(special_ids[r] is not None for r in ("cls", "sep"))
    window = min(int(hf_config.get("max_position_embeddings") or 512), 512) - specials
    if cfg.model.long_text != "windows" and cfg.text.max_len > window:
        raise ConfigError(f"text.max_len ({cfg.text.max_len}) is more than the encoder reads at once ({window} word "
                          f"pieces): set model.long_text: windows, or text.max_len <= {window}")
    return {"hf_config": hf_config, "mode": cfg.model.encoder_mode, "train_layers": cfg.model.finetune_layers,
            "lr": cfg.model.encoder_lr, "window": window, "pooling": cfg.model.pooling,
            "precision": cfg.model.encoder_precision, "special_ids": special_ids,
            "source": str(cfg.model.pretrained)}


def sgm_config(cfg: RunConfig, vocab_size: int, num_outputs: int, options: dict | None = None) -> SGMConfig:
    """The network config: ModelConfig's keys that SGMConfig has, plus the encoder's options."""
    names = {f.name for f in fields(SGMConfig)} - _NOT_FROM_MODEL
    values = {name: getattr(cfg.model, name) for name in names if hasattr(cfg.model, name)}
    return SGMConfig(vocab_size=vocab_size, num_outputs=num_outputs, encoder_options=dict(options or {}), **values)


def build_transformer_model(cfg: RunConfig, tokenizer: WordPieceTokenizer, vocab: Vocab,
                            label_vocab: LabelVocab) -> SGM:
    """SGM over the pretrained transformer: its weights copied in, our ids mapped to its ids, and
    (``model.label_init: names``) label embeddings from the encoder's view of each label name."""
    model = SGM(sgm_config(cfg, len(vocab), label_vocab.size, encoder_options(cfg, tokenizer)))
    folder = resolve_pretrained(cfg.model.pretrained)
    model.encoder.load_pretrained(str(folder))
    _, model_ids = tokenizer.build_vocab()
    with torch.no_grad():
        model.encoder.model_ids.copy_(torch.tensor(model_ids, dtype=torch.long))
    log.info("transformer encoder from %s (%s, %s layers, %d-wide), %s", folder,
             model.encoder.model.config.model_type, model.encoder.model.config.num_hidden_layers,
             model.encoder.output_dim, cfg.model.encoder_mode)
    if cfg.model.label_init == "names":
        texts = label_texts(label_vocab, cfg.model.label_descriptions)
        init_label_embeddings(model, embed_texts(model, tokenizer, vocab, texts), seed=cfg.train.seed)
    return model


# ---- label embeddings from label names ------------------------------------------------------

def label_texts(label_vocab: LabelVocab, descriptions: str | Path | None = None) -> list[str]:
    """One text per label, in label-id order: its description from the JSON file
    ``{label: description}`` when given, else its name with ``_``/``-`` read as spaces."""
    found: dict[str, str] = {}
    if descriptions:
        path = Path(descriptions)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataFormatError("label description file not found", path=path) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataFormatError(f"not valid JSON ({exc})", path=path) from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise DataFormatError("expected a JSON object {label: description text}", path=path)
        found = data
        unused = sorted(set(found) - set(label_vocab.labels))
        if unused:
            log.warning("%s: %d description(s) for labels not in training: %s", path, len(unused), unused[:10])
    return [found.get(name) or name.replace("_", " ").replace("-", " ") for name in label_vocab.labels]


@torch.no_grad()
def embed_texts(model: SGM, tokenizer: WordPieceTokenizer, vocab: Vocab, texts: Sequence[str]) -> torch.Tensor:
    """(texts, hidden): the encoder's pooled vector of each text, in eval mode, without the cache."""
    rows = [vocab.encode(tokenizer(t)) or [PAD_ID] for t in texts]
    width = max(len(r) for r in rows)
    src = torch.zeros(len(rows), width, dtype=torch.long)                 # (texts, width)
    for i, r in enumerate(rows):
        src[i, :len(r)] = torch.tensor(r)
    lengths = torch.tensor([len(r) for r in rows])                       # (texts,)
    was_training, cache = model.encoder.training, model.encoder.cache
    model.encoder.eval()
    model.encoder.cache = None
    try:
        return model.encoder(src, lengths).pooled.float()                # (texts, hidden)
    finally:
        model.encoder.train(was_training)
        model.encoder.cache = cache


def init_label_embeddings(model: SGM, vectors: torch.Tensor, seed: int) -> None:
    """Copy one vector per label into the decoder's label embeddings (rows after PAD/BOS/EOS).

    Centred first (what all names share says nothing about any one label); when the sizes differ,
    a seeded Gaussian projection keeps the labels' similarities (Johnson-Lindenstrauss); scaled to
    the embedding's own initial spread, so only the directions change.
    """
    weight = model.label_embedding.weight                                # (V, label_emb)
    centred = vectors - vectors.mean(0, keepdim=True)                    # (labels, hidden)
    if centred.size(1) != weight.size(1):
        generator = torch.Generator().manual_seed(seed)
        projection = torch.randn(centred.size(1), weight.size(1), generator=generator)  # (hidden, label_emb)
        centred = centred @ projection / np.sqrt(weight.size(1))         # (labels, label_emb)
    rows = weight[N_SPECIAL:]
    scale = rows.std() / centred.std().clamp(min=1e-12)
    with torch.no_grad():
        weight[N_SPECIAL:] = (centred * scale).to(weight.dtype)
