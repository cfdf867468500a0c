"""Training-loop settings, checked when built so a typo fails before hours of training."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from seq2labels.errors import ConfigError
from seq2labels.training.precision import PRECISIONS

logger = logging.getLogger(__name__)

__all__ = ["LR_SCHEDULES", "MODES", "PRECISIONS", "TrainerConfig"]

LR_SCHEDULES = ("none", "plateau", "linear", "cosine")
MODES = ("max", "min")
_MAX_SEED = 2**32 - 1  # NumPy's limit, the narrowest of the three generators we seed


@dataclass(frozen=True)
class TrainerConfig:
    """Everything the generic loop needs; nothing about any model.

    ``lr_schedule``: ``"none"``; ``"plateau"`` halves the learning rate when ``monitor``
    has not improved for one epoch; ``"linear"`` / ``"cosine"`` warm up linearly over
    ``warmup_steps`` optimizer steps and then decay to 0 at the end of ``max_epochs``.

    ``precision``: ``"fp32"``; ``"bf16"`` / ``"fp16"`` run the forward pass under autocast
    (weights and optimizer state stay float32); fp16 also scales the loss against gradient
    underflow and needs a GPU, bf16 works on CPU too.

    ``ema_decay``: 0 trains as usual; a value in (0, 1) keeps an exponential moving average of
    the weights (updated after every optimizer step, see :mod:`seq2labels.training.averaging`),
    and the average is what gets evaluated, early-stopped on and kept. Its horizon is about
    ``1 / (1 - ema_decay)`` steps.
    """

    max_epochs: int = 20
    patience: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "plateau"
    warmup_steps: int = 0
    grad_clip: float | None = 5.0
    monitor: str = "micro_f1"
    mode: str = "max"
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    precision: str = "fp32"
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (stored in checkpoints so a resume can report what changed)."""
        return asdict(self)


def _fail(field: str, requirement: str, value: Any) -> None:
    raise ConfigError(f"TrainerConfig.{field} {requirement}, got {value!r}")


def _is_int(value: Any) -> bool:
    """bool is an int subclass, but ``max_epochs=True`` is always a mistake."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(field: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        _fail(field, f"must be an int {bound}", value)


def _check_choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(field, f"must be one of {', '.join(repr(c) for c in choices)}", value)


def _check_device(value: Any) -> None:
    if not isinstance(value, str) or not value:
        _fail("device", "must be a device string such as 'cpu' or 'cuda:0'", value)
    try:
        torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        _fail("device", "is not a valid torch device string", value)


def _check_precision(precision: Any, device: str) -> None:
    """Refuse a precision the device cannot use when the config is built, not hours later."""
    _check_choice("precision", precision, PRECISIONS)
    kind = torch.device(device).type
    if precision == "fp16" and kind == "cpu":
        _fail("precision", f"must be 'bf16' or 'fp32' on device {device!r} (fp16 autocast on the CPU is slow "
              "and gains nothing; use precision='bf16' on CPU)", precision)
    # Without CUDA at all, moving the model to the device fails later with the clearer message.
    if precision == "bf16" and kind == "cuda" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        _fail("precision", f"must be 'fp16' or 'fp32' on device {device!r}: this GPU "
              f"({torch.cuda.get_device_name(torch.device(device))}) does not support bfloat16", precision)


def _validate(config: TrainerConfig) -> None:
    """Check every field; the error names the field so config files are easy to fix."""
    _check_int("max_epochs", config.max_epochs, 1)
    _check_int("patience", config.patience, 1)
    if not _is_finite_number(config.lr) or config.lr <= 0:
        _fail("lr", "must be a finite number > 0", config.lr)
    if not _is_finite_number(config.weight_decay) or config.weight_decay < 0:
        _fail("weight_decay", "must be a finite number >= 0", config.weight_decay)
    _check_choice("lr_schedule", config.lr_schedule, LR_SCHEDULES)
    _check_int("warmup_steps", config.warmup_steps, 0)
    if config.grad_clip is not None and (not _is_finite_number(config.grad_clip) or config.grad_clip <= 0):
        _fail("grad_clip", "must be None or a finite number > 0", config.grad_clip)
    if not isinstance(config.monitor, str) or not config.monitor:
        _fail("monitor", "must be a non-empty metric name", config.monitor)
    _check_choice("mode", config.mode, MODES)
    _check_int("seed", config.seed, 0, _MAX_SEED)
    _check_device(config.device)
    if not isinstance(config.progress, bool):
        _fail("progress", "must be True or False", config.progress)
    _check_precision(config.precision, config.device)
    if not _is_finite_number(config.ema_decay) or not 0.0 <= config.ema_decay < 1.0:
        _fail("ema_decay", "must be a number in [0, 1) (0 = no weight averaging)", config.ema_decay)
    if config.warmup_steps and config.lr_schedule not in ("linear", "cosine"):
        logger.warning("warmup_steps=%d is ignored with lr_schedule=%r", config.warmup_steps, config.lr_schedule)
