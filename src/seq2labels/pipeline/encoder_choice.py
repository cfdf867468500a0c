"""``model.encoder: auto``: the no-config recipe's encoder, picked from the training set's size and
from what is installed, then written into the run's config as a plain ``rnn`` or ``transformer``.

Why a size rule (README, "The no-config default"): the frozen pretrained encoder beat the bi-LSTM
where the training set was small or middling and lost where it was large:
- AAPD, 900 abstracts: 0.597 / 0.338 micro / macro-F1 against 0.441 / 0.177;
- Reuters-21578, 7,769 stories: 0.884 / 0.560 against the best bi-LSTM's 0.872 / 0.489;
- GoEmotions, 43,410 comments: 0.559 / 0.400 against 0.574 / 0.449 (enough text to learn words from).
So below :data:`PRETRAINED_BELOW` texts ``auto`` means the frozen all-MiniLM-L6-v2 when its extra is
installed, and the bi-LSTM otherwise (with a warning naming the extra).
"""

from __future__ import annotations

import dataclasses
import logging

from seq2labels.errors import ConfigError
from seq2labels.pipeline.config import ModelConfig, RunConfig, TextConfig, config_from_dict
from seq2labels.utils.hf import MINILM_PACKAGE, MissingTransformerExtra, minilm_folder, transformer_extra_available

log = logging.getLogger(__name__)

PRETRAINED_BELOW = 20_000   # between Reuters' 7.8k (pretrained ahead) and GoEmotions' 43k (bi-LSTM ahead)

# keys that only the bi-RNN reads: a user who set one asked for the bi-RNN
RNN_MODEL_KEYS = ("embedding_dim", "encoder_hidden", "encoder_layers", "rnn_type", "bidirectional",
                  "self_attention", "self_attention_heads", "bag_of_words")
RNN_TEXT_KEYS = ("lowercase", "min_count", "max_vocab", "word_vectors", "pretrain_embeddings", "pretrain_epochs")
REFERENCE_WINDOW = 510      # word pieces all-MiniLM-L6-v2 reads at once: 512 positions, less [CLS] and [SEP]
# keys that only a transformer reads: a user who set one asked for it
TRANSFORMER_MODEL_KEYS = ("pretrained", "encoder_mode", "finetune_layers", "encoder_lr", "long_text", "head_tokens",
                          "pooling", "encoder_precision", "label_init", "label_descriptions")


def keys_changed(section: object, default: object, names: tuple[str, ...], prefix: str) -> list[str]:
    """``prefix.name`` for each of ``names`` whose value in ``section`` is not its default."""
    return [f"{prefix}.{name}" for name in names if getattr(section, name) != getattr(default, name)]


def rnn_keys_set(cfg: RunConfig) -> list[str]:
    return (keys_changed(cfg.model, ModelConfig(), RNN_MODEL_KEYS, "model")
            + keys_changed(cfg.text, TextConfig(), RNN_TEXT_KEYS, "text"))


def transformer_keys_set(cfg: RunConfig) -> list[str]:
    return keys_changed(cfg.model, ModelConfig(), TRANSFORMER_MODEL_KEYS, "model")


def reference_encoder_installed() -> bool:
    """transformers, tokenizers and the all-MiniLM-L6-v2 package are all importable."""
    if not transformer_extra_available():
        return False
    try:
        minilm_folder()
    except MissingTransformerExtra:
        return False
    return True


def choose_encoder(cfg: RunConfig, n_texts: int | None) -> tuple[str, str]:
    """``("rnn" | "transformer", why)`` for ``model.encoder: auto``; ``n_texts`` None = not counted (streaming)."""
    rnn_keys, transformer_keys = rnn_keys_set(cfg), transformer_keys_set(cfg)
    if rnn_keys and transformer_keys:
        raise ConfigError(f"model.encoder: auto got keys of both encoders ({rnn_keys[0]} and "
                          f"{transformer_keys[0]}): set model.encoder: rnn or transformer")
    if transformer_keys:
        return "transformer", f"{transformer_keys[0]} is set"
    if rnn_keys:
        return "rnn", f"{rnn_keys[0]} is set"
    if cfg.data.streaming or n_texts is None:
        return "rnn", "data.streaming reads the training set in shards (the transformer encoder needs it in memory)"
    if n_texts >= PRETRAINED_BELOW:
        return "rnn", f"{n_texts} training texts (>= {PRETRAINED_BELOW}: enough for the bi-LSTM to learn its words)"
    if not reference_encoder_installed():
        return "rnn", (f"only {n_texts} training texts, where the pretrained encoder does far better, but it is not "
                       f"installed (pip install 'seq2labels[transformer]')")
    return "transformer", f"{n_texts} training texts (< {PRETRAINED_BELOW}: the pretrained encoder does better)"


def resolve_auto_encoder(cfg: RunConfig, n_texts: int | None) -> RunConfig:
    """``cfg`` with ``model.encoder: auto`` replaced by the chosen encoder (other configs unchanged);
    a transformer choice without ``model.pretrained`` gets the installed all-MiniLM-L6-v2, frozen,
    reading a ``text.max_len`` longer than its window as consecutive windows (``model.long_text:
    windows``), so the texts are not cut shorter than asked."""
    if cfg.model.encoder != "auto":
        return cfg
    encoder, why = choose_encoder(cfg, n_texts)
    model = dataclasses.replace(cfg.model, encoder=encoder)
    if encoder == "transformer" and model.pretrained is None:
        model = dataclasses.replace(model, pretrained=MINILM_PACKAGE)
        if cfg.text.max_len > REFERENCE_WINDOW:
            model = dataclasses.replace(model, long_text="windows")
            why += (f"; text.max_len {cfg.text.max_len} is over its {REFERENCE_WINDOW}-piece window, so "
                    "model.long_text: windows")
    resolved = config_from_dict(dataclasses.replace(cfg, model=model).to_dict())  # checked as the chosen encoder
    if encoder == "transformer":
        log.info("model.encoder: auto -> transformer (%s, %s): %s; --encoder rnn trains the smaller, faster "
                 "bi-LSTM", resolved.model.pretrained, resolved.model.encoder_mode, why)
    else:  # on small data without the extra, the recipe's small-data warning names the extra too
        log.info("model.encoder: auto -> rnn: %s", why)
    return resolved
