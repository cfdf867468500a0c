"""Mixed precision for inference: bf16/fp16 autocast around encoding and decoding.

Autocast runs the matrix products (the LSTM encoder above all) in 16-bit floats while
weights stay float32; on CPUs with AVX512-BF16/AMX that roughly halves prediction time.
The SGM model keeps its softmaxes and its attention energy in float32 under autocast
(seq2labels.models.sgm), so scores stay comparable with a float32 run. Training has its
own switch, ``train.precision`` (seq2labels.training.TrainerConfig).
"""

from __future__ import annotations

import contextlib

import torch

from seq2labels.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device | str, where: str = "precision") -> str:
    """The precision if the device can use it; a ConfigError naming ``where`` otherwise."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{where}: must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    kind = torch.device(device).type
    if precision == "fp16" and kind == "cpu":
        raise ConfigError(f"{where}: fp16 autocast is a GPU mode (on the CPU it is slow); use bf16 on the CPU")
    if precision == "bf16" and kind == "cuda" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{where}: this GPU does not support bfloat16; use fp16")
    return precision


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to the precision's dtype on the device's type; fp32 gets no context at all."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
