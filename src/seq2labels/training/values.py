"""The loop's checks and conversions of what the caller's functions hand it: batches moved to the
device, metrics made plain scalars, losses refused when not a finite scalar."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor


def _move_to_device(batch: Any, device: torch.device) -> Any:
    """Move a batch to ``device``: anything with ``.to`` (tensors, batch objects), and
    tensors nested in dicts, lists and tuples; everything else is left as is."""
    if hasattr(batch, "to") and callable(batch.to):
        return batch.to(device)
    if isinstance(batch, Mapping):
        moved = {key: _move_to_device(value, device) for key, value in batch.items()}
        return moved if type(batch) is dict else _rebuild_mapping(batch, moved)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(_move_to_device(value, device) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_move_to_device(value, device) for value in batch)
    return batch


def _rebuild_mapping(original: Mapping, moved: dict) -> Mapping:
    """Keep the caller's mapping type when it can be built from a dict; else a dict."""
    try:
        return type(original)(moved)
    except TypeError:
        return moved


def _plain_metric(name: str, value: Any) -> float | int | str | bool:
    """Metrics go into CSV files and ``weights_only`` checkpoints: keep them plain
    Python scalars (numpy and one-element tensor values are unwrapped)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):
        try:
            return value.item()
        except (ValueError, RuntimeError) as exc:
            raise TypeError(f"evaluate_fn returned metric {name!r} that is not a scalar: {exc}") from exc
    raise TypeError(f"evaluate_fn returned metric {name!r} of type {type(value).__name__}; "
                    "metrics must be numbers or strings")


def _loss_value(loss: Any, epoch: int, step: int) -> float:
    """The loss as a float, refusing non-scalars and NaN/inf before they reach the weights.

    Read in float32 whatever dtype autocast left the loss in, so logs do not depend on it.
    """
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise TypeError(f"loss_fn must return a scalar tensor, got {shape} at epoch {epoch}, step {step}")
    value = loss.detach().to(torch.float32).item()
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value} at epoch {epoch}, step {step} (1-based); "
                                 "stopping instead of training on it")
    return value


def _stderr_is_tty() -> bool:
    stream = sys.stderr
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


def _format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
