"""The files a training run leaves in its run folder, all written atomically.

* ``metrics.csv``      - one row per finished epoch, rewritten whole each epoch so a
  resumed run can never hold an epoch twice (the rows come from the checkpoint's history).
* ``best.safetensors`` - weights of the best epoch so far (safe to load: no pickle).
* ``checkpoint.pt``    - everything needed to continue bit for bit, readable with
  ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from seq2labels.utils.atomic import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "BEST_WEIGHTS_NAME", "CHECKPOINT_FORMAT_VERSION", "CHECKPOINT_NAME", "FIXED_COLUMNS", "METRICS_NAME",
    "detached_state_dict", "load_best_weights", "load_checkpoint", "metrics_columns", "save_best_weights",
    "save_checkpoint", "write_metrics_csv",
]

METRICS_NAME = "metrics.csv"
BEST_WEIGHTS_NAME = "best.safetensors"
CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT_VERSION = 1
FIXED_COLUMNS = ("epoch", "train_loss", "lr", "epoch_seconds")


def detached_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """An independent CPU copy of the model's weights.

    Each tensor is cloned to its own contiguous storage: safetensors refuses tensors
    that share memory (tied embeddings, views), and a copy is what keeping "the best
    weights so far" needs anyway, since training goes on mutating the live ones.
    """
    copy: dict[str, Tensor] = {}
    for name, value in model.state_dict().items():
        if not isinstance(value, Tensor):
            raise TypeError(f"state_dict entry {name!r} is a {type(value).__name__}, not a tensor; "
                            "safetensors can store tensors only")
        copy[name] = value.detach().to("cpu", copy=True).contiguous()
    return copy


def save_best_weights(path: Path, weights: Mapping[str, Tensor], epoch: int, monitor: str, score: float) -> None:
    """Write the best weights, tagged with their epoch so a resume can check they match."""
    metadata = {"epoch": str(epoch), "monitor": monitor, "score": repr(float(score))}
    with atomic_path(path) as tmp:
        save_file(dict(weights), str(tmp), metadata=metadata)


def load_best_weights(path: Path, expected_epoch: int) -> dict[str, Tensor]:
    """Read ``best.safetensors`` back, warning when it belongs to another epoch.

    A crash between writing it and writing the checkpoint can leave it one improvement
    ahead; a deterministic resume re-trains that epoch and rewrites it identically.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing, but the checkpoint says epoch {expected_epoch} was the best; "
                                "cannot restore the best weights")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    stored_epoch = metadata.get("epoch")
    if stored_epoch is not None and stored_epoch != str(expected_epoch):
        logger.warning("%s holds epoch %s but the checkpoint's best epoch is %d", path, stored_epoch, expected_epoch)
    return load_file(str(path), device="cpu")


def metrics_columns(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """Fixed columns first, then metric names in the order they first appeared."""
    columns = list(FIXED_COLUMNS)
    for row in history:
        columns.extend(key for key in row if key not in columns)
    return columns


def write_metrics_csv(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Rewrite the whole file from the history (cheap: one row per epoch)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=metrics_columns(history), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buffer.getvalue())


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the resume checkpoint; a crash mid-write keeps the previous one intact."""
    payload = {"format_version": CHECKPOINT_FORMAT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects, always onto the CPU.

    CPU first because random-generator states must stay CPU tensors; model and
    optimizer states are moved to the parameters' device when loaded into them.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    version = state.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format version {version!r} is not supported "
                         f"(expected {CHECKPOINT_FORMAT_VERSION})")
    return state
