"""Model folders: safetensors weights + JSON, loaded without running any code.

A model folder holds exactly these files::

    config.json        format version, model config, tokenizer, resolved run config,
                       training data counts and checksums
    model.safetensors  the weights (safetensors cannot carry code)
    vocab.json         the word vocabulary
    labels.json        the label vocabulary and its training order
    README.md          a model card (not read back)
    tokenizer.json     only with a transformer encoder: its word-piece tokenizer (JSON)
    thresholds.json    only when tuned: per-label decision thresholds (seq2labels.pipeline.thresholds)

Loading opens only the data files above, never ``pickle`` or ``torch.load``,
so a ``.pt`` or ``.pkl`` someone drops into the folder is never executed. Saving
writes a complete sibling folder first and then swaps it in, so a crash half-way
leaves the previous model loadable.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seq2labels._version import __version__
from seq2labels.utils.atomic import _process_umask, atomic_write_json, atomic_write_text, fsync_dir, swap_in_folder
from seq2labels.pipeline.config import config_from_dict
from seq2labels.data.labels import LabelVocab
from seq2labels.data.tokenizer import RegexTokenizer
from seq2labels.data.vocab import Vocab
from seq2labels.data.wordpiece import WordPieceTokenizer
from seq2labels.errors import ConfigError, ModelFormatError
from seq2labels.models.sgm import SGM
from seq2labels.models.config import SGMConfig
from seq2labels.pipeline.model_card import model_card
from seq2labels.pipeline.thresholds import read_thresholds, write_thresholds

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
        swap_in_folder(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _write_model_files(generator, folder: Path, metrics: dict | None, estimator: dict | None = None) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in generator.model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": FORMAT_NAME})
    for name, text in getattr(generator.tokenizer, "model_files", dict)().items():  # e.g. tokenizer.json
        atomic_write_text(folder / name, text)
    atomic_write_json(folder / "vocab.json", generator.vocab.to_dict())
    atomic_write_json(folder / "labels.json", generator.label_vocab.to_dict())
    atomic_write_text(folder / "README.md", model_card(generator, metrics))
    if getattr(generator, "thresholds", None) is not None:
        write_thresholds(folder, generator.thresholds)
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


def read_model_parts(path: str | Path, device: str = "cpu") -> dict:
    """The pieces of a model folder written by :func:`save_model` (the network, tokenizer,
    vocabularies, run config, data summary), checked against each other. Runs no code from the
    folder; :meth:`LabelGenerator.load` assembles them."""
    path = Path(path)
    meta = read_model_config(path)
    vocab_data = _read_json(path / "vocab.json")    # outside the try: a missing file is not "inconsistent"
    labels_data = _read_json(path / "labels.json")
    try:
        model_cfg = SGMConfig.from_dict(meta["model"])
        run_cfg = config_from_dict(meta["run_config"])
        tokenizer = _tokenizer_from_dict(meta["tokenizer"], path)
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
    try:
        model = SGM(model_cfg)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{path / 'config.json'}: cannot build the network ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFormatError(f"{weights_path}: weights do not fit the model config ({exc})") from None
    model.eval().to(device)
    summary = meta.get("training_data")
    if summary is not None and not isinstance(summary, dict):
        raise ModelFormatError(f"{path / 'config.json'}: training_data must be a JSON object")
    return {"model": model, "tokenizer": tokenizer, "vocab": vocab, "label_vocab": label_vocab,
            "config": run_cfg, "data_summary": summary, "thresholds": read_thresholds(path, label_vocab.labels)}


def _tokenizer_from_dict(data: dict, folder: Path):
    """The regex tokenizer, or a pretrained model's word pieces read from the folder's tokenizer.json."""
    if isinstance(data, dict) and data.get("type") == WordPieceTokenizer.type_name:
        return WordPieceTokenizer.from_dict(data, folder)
    return RegexTokenizer.from_dict(data)
