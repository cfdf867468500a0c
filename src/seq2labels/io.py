"""Model folders: safetensors weights + JSON, loaded without running any code.

A model folder holds exactly these files::

    config.json        format version, model config, tokenizer, resolved run config,
                       training data counts and checksums
    model.safetensors  the weights (safetensors cannot carry code)
    vocab.json         the word vocabulary
    labels.json        the label vocabulary and its training order
    README.md          a model card (not read back)

Loading opens only the four data files above, never ``pickle`` or ``torch.load``,
so a ``.pt`` or ``.pkl`` someone drops into the folder is never executed. Saving
writes a complete sibling folder first and then swaps it in, so a crash half-way
leaves the previous model loadable.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .atomic import _process_umask, atomic_write_json, atomic_write_text, fsync_dir
from .config import config_from_dict
from .data.labels import LabelVocab
from .data.tokenizer import RegexTokenizer
from .data.vocab import Vocab
from .errors import ConfigError, ModelFormatError
from .models.sgm import SGM, SGMConfig
from .provenance import sha256

FORMAT_NAME = "seq2labels"
FORMAT_VERSION = 1
MODEL_FILES = ("config.json", "model.safetensors", "vocab.json", "labels.json")


def save_model(generator, path: str | Path, metrics: dict | None = None, estimator: dict | None = None) -> Path:
    """Write the model folder at ``path`` (replacing an existing one only once the new one is complete).

    ``estimator``: JSON-able settings of a wrapping estimator (e.g. SGMClassifier's ``classes_``),
    stored in config.json and read back with :func:`read_model_config`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(staging, 0o777 & ~_process_umask())  # mkdtemp's 0700 would make the model private
        _write_model_files(generator, staging, metrics, estimator)
        _swap_in(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _write_model_files(generator, folder: Path, metrics: dict | None, estimator: dict | None = None) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in generator.model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": FORMAT_NAME})
    atomic_write_json(folder / "vocab.json", generator.vocab.to_dict())
    atomic_write_json(folder / "labels.json", generator.label_vocab.to_dict())
    atomic_write_text(folder / "README.md", model_card(generator, metrics))
    # config.json last: a folder without it is never mistaken for a model
    extra = {"estimator": estimator} if estimator is not None else {}
    if getattr(generator, "data_summary", None):
        extra["training_data"] = generator.data_summary  # counts and checksums, for the model card
    atomic_write_json(folder / "config.json", {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_type": "sgm",
        "seq2labels_version": __version__,
        "model": generator.model.config.to_dict(),
        "tokenizer": generator.tokenizer.to_dict(),
        "run_config": generator.config.to_dict(),
        "metrics": metrics or {},
        **extra,
    })
    fsync_dir(folder)


def _swap_in(staging: Path, path: Path) -> None:
    if path.exists():
        if not path.is_dir():
            raise ModelFormatError(f"{path}: exists and is not a folder; refusing to overwrite it")
        backup = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        backup.rmdir()
        os.replace(path, backup)
        try:
            os.replace(staging, path)
        except BaseException:
            os.replace(backup, path)  # put the previous model back
            raise
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(staging, path)
    fsync_dir(path.parent)


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ModelFormatError(f"{path.parent}: not a seq2labels model folder ({path.name} is missing)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: not valid JSON ({exc})") from None


def read_model_config(path: str | Path) -> dict:
    """Read and check config.json: format name and version."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFormatError(f"{path}: model folder not found")
    meta = _read_json(path / "config.json")
    if not isinstance(meta, dict):
        raise ModelFormatError(f"{path / 'config.json'}: not a seq2labels model (expected a JSON object)")
    if meta.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{path / 'config.json'}: not a seq2labels model (format={meta.get('format')!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(f"{path / 'config.json'}: model format version {version!r} is not supported by "
                               f"seq2labels {__version__} (it reads version {FORMAT_VERSION})")
    if meta.get("model_type") != "sgm":
        raise ModelFormatError(f"{path / 'config.json'}: unknown model_type {meta.get('model_type')!r}")
    return meta


def load_model(path: str | Path, device: str = "cpu"):
    """Load a model folder written by :func:`save_model`. Runs no code from the folder."""
    from .recipe import LabelGenerator

    path = Path(path)
    meta = read_model_config(path)
    vocab_data = _read_json(path / "vocab.json")    # outside the try: a missing file is not "inconsistent"
    labels_data = _read_json(path / "labels.json")
    try:
        model_cfg = SGMConfig.from_dict(meta["model"])
        run_cfg = config_from_dict(meta["run_config"])
        tokenizer = RegexTokenizer.from_dict(meta["tokenizer"])
        vocab = Vocab.from_dict(vocab_data)
        label_vocab = LabelVocab.from_dict(labels_data)
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise ModelFormatError(f"{path}: inconsistent model files ({exc})") from None
    if model_cfg.vocab_size != len(vocab) or model_cfg.num_outputs != label_vocab.size:
        raise ModelFormatError(f"{path}: vocab.json/labels.json do not match the sizes in config.json")
    weights_path = path / "model.safetensors"
    if not weights_path.is_file():
        raise ModelFormatError(f"{path}: model.safetensors is missing")
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFormatError(f"{weights_path}: cannot read weights ({exc})") from None
    model = SGM(model_cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFormatError(f"{weights_path}: weights do not fit the model config ({exc})") from None
    model.eval().to(device)
    generator = LabelGenerator(model, tokenizer, vocab, label_vocab, run_cfg)
    summary = meta.get("training_data")
    if summary is not None and not isinstance(summary, dict):
        raise ModelFormatError(f"{path / 'config.json'}: training_data must be a JSON object")
    generator.data_summary = summary  # so saving it again keeps the model card's data section
    return generator


def describe_training_data(cfg, train_examples, valid_examples, n_train: int | None = None) -> dict:
    """Counts and checksums of the data a model was trained on, kept in config.json for the model card.

    ``train_examples`` may be None (streamed training): then only ``n_train`` and the files are known.
    """
    summary: dict = {"files": [_describe_file(role, spec) for role, spec in
                               (("train", cfg.data.train), ("valid", cfg.data.valid), ("test", cfg.data.test)) if spec],
                     "train_docs": len(train_examples) if train_examples is not None else n_train,
                     "valid_docs": len(valid_examples) if valid_examples is not None else None}
    if train_examples is not None:
        counts = Counter(label for ex in train_examples for label in set(ex.labels))
        summary["label_counts"] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        summary["labels_per_doc"] = sum(len(set(ex.labels)) for ex in train_examples) / max(len(train_examples), 1)
    return summary


def _describe_file(role: str, spec: str) -> dict:
    """A data file with its size and sha256 (a glob of shards is named only)."""
    path = Path(spec)
    if not path.is_file():
        return {"role": role, "path": spec}
    return {"role": role, "path": spec, "bytes": path.stat().st_size, "sha256": sha256(path)}


RARE_LABEL_DOCS = 10  # the card counts labels with fewer training documents than this as rare


def model_card(generator, metrics: dict | None) -> str:
    """A README for the model folder: data, labels, model, metrics, intended use and limits."""
    cfg = generator.config
    data = getattr(generator, "data_summary", None) or {}
    lines = ["# seq2labels SGM model", "",
             "A sequence generation model (SGM) for multi-label classification: it reads a text and emits its "
             "labels one by one, each with its probability, until an end token.", ""]
    lines += _card_data(cfg, data, len(generator.vocab))
    lines += _card_labels(cfg, data, generator.label_vocab.labels)
    lines += [
        "## Model", "",
        f"- encoder: {'bidirectional ' if cfg.model.bidirectional else ''}{cfg.model.rnn_type.upper()}, "
        f"{cfg.model.encoder_layers} layer(s) of {cfg.model.encoder_hidden}; self-attention: {cfg.model.self_attention}",
        f"- decoder: LSTM {cfg.model.decoder_hidden}, contextual attention: {cfg.model.attention}, "
        f"global embedding: {cfg.model.global_embedding}",
        f"- loss: {cfg.train.loss}; decoding default: beam {cfg.decode.beam_size}, at most {cfg.decode.max_labels} labels", "",
    ]
    if metrics:
        lines += ["## Metrics", "",
                  "`valid_*`: the validation data at the best epoch (greedy decoding); `test_*`: the test file.", "",
                  "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
        lines.append("")
    lines += _card_use_and_limits(cfg, data, generator)
    return "\n".join(lines)


def _card_data(cfg, data: dict, n_words: int) -> list[str]:
    files = {f["role"]: f for f in data.get("files", [])}
    docs = {"train": data.get("train_docs"), "valid": data.get("valid_docs")}

    def describe(role: str) -> str:
        f = files[role]
        parts = [f"{docs[role]:,} documents trained on" if role == "train" and docs["train"] is not None else
                 f"{docs[role]:,} documents" if docs.get(role) is not None else None,
                 f"sha256 `{f['sha256']}`" if "sha256" in f else None]
        return f"`{f['path']}`" + (f" ({'; '.join(p for p in parts if p)})" if any(parts) else "")

    lines = ["## Training data", ""]
    if "train" in files:
        lines.append(f"- train: {describe('train')}")
    else:
        n = f" ({docs['train']:,} documents)" if docs["train"] is not None else ""
        lines.append(f"- train: in-memory data (Python API){n}")
    if "valid" in files:
        lines.append(f"- validation: {describe('valid')}")
    else:
        n = f"{docs['valid']:,} documents, " if docs["valid"] is not None else ""
        lines.append(f"- validation: {n}{cfg.data.valid_fraction:.0%} of the train file set aside "
                     f"(seeded split, seed {cfg.train.seed})")
    if "test" in files:
        lines.append(f"- test: {describe('test')}")
    if "labels_per_doc" in data:
        lines.append(f"- labels per training document: {data['labels_per_doc']:.2f} on average")
    lines += [f"- words in vocabulary: {n_words:,} (seen at least {cfg.text.min_count} time(s) in train); "
              f"tokens kept per text: {cfg.text.max_len}", ""]
    return lines


def _card_labels(cfg, data: dict, labels: list[str]) -> list[str]:
    lines = ["## Labels", "",
             f"- {len(labels)} labels (all in `labels.json`), taught in `{cfg.labels.order}` order"]
    counts = data.get("label_counts")
    n_train = data.get("train_docs")
    if counts and n_train:
        def show(items):
            return ", ".join(f"`{lab}` ({n:,}, {n / n_train:.1%})" for lab, n in items)
        ranked = list(counts.items())
        lines.append(f"- most frequent in training (documents): {show(ranked[:10])}")
        if len(ranked) > 10:
            lines.append(f"- rarest in training: {show(ranked[-5:])}")
    else:
        lines.append("- " + ", ".join(f"`{lab}`" for lab in labels[:50]) + (" ..." if len(labels) > 50 else ""))
    lines.append("")
    return lines


def _card_use_and_limits(cfg, data: dict, generator) -> list[str]:
    tokenizer = generator.tokenizer
    counts = data.get("label_counts") or {}
    rare = sum(1 for n in counts.values() if n < RARE_LABEL_DOCS)
    lines = [
        "## Intended use", "",
        "- Suggest an ordered list of labels (tags) for texts like the training data, e.g. to pre-fill tags "
        "that a person confirms; `seq2labels predict MODEL --top-k K` or `seq2labels serve MODEL`.",
        "- Not for decisions about people or where an error is costly without human review.", "",
        "## Limits", "",
        f"- Only the {generator.label_vocab.num_labels} labels in `labels.json` can be predicted: a label never "
        "seen in training never comes out, and evaluation counts it as a miss.",
    ]
    if rare:
        lines.append(f"- {rare} label(s) have fewer than {RARE_LABEL_DOCS} training documents; expect them "
                     "to be predicted rarely and unreliably.")
    lines += [
        f"- Texts are cut to their first {cfg.text.max_len} tokens: anything later is not read.",
        f"- Language and domain: those of the training data. The tokenizer splits on the pattern "
        f"`{tokenizer.pattern}`{' after lowercasing' if tokenizer.lowercase else ''}; words outside the "
        f"vocabulary are read as `<unk>`, so text in another language or domain is mostly unknown words.",
        "- Probabilities are the decoder's step probabilities, not calibrated confidences.", "",
    ]
    return lines
