"""Dynamic int8 quantization of a trained SGM for CPU inference.

Weights of the RNNs (encoder ``nn.LSTM``/``nn.GRU`` per direction, decoder ``nn.LSTMCell``)
and of every ``nn.Linear`` are stored as int8; activations are quantized on the fly at each
call. Embeddings, attention arithmetic, softmax and search stay float32.

API choice (torch 2.13): ``torch.ao.quantization.quantize_dynamic`` still works but warns
that eager quantization moves to torchao. torchao's ``quantize_`` replaces only
``nn.Linear`` (no LSTM, LSTMCell or GRU, where most of SGM's time goes) and is not part of
the project's dependencies, so the ao API is used, with its deprecation notice silenced
around the call and a clear error when a future torch no longer has it.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from seq2labels.errors import ConfigError

DTYPES = ("int8",)
# Module types quantize_dynamic turns into int8 kernels; all SGM uses are covered.
QUANTIZED_TYPES = (nn.Linear, nn.LSTM, nn.GRU, nn.LSTMCell)


def _quantize_dynamic():
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:
        raise ConfigError(f"int8 quantization needs torch.ao.quantization.quantize_dynamic, which torch "
                          f"{torch.__version__} no longer has; decode in float32 instead") from None
    return quantize_dynamic


def quantize_model(model: nn.Module, dtype: str = "int8") -> nn.Module:
    """A quantized copy of ``model`` (eval mode, CPU); ``model`` itself is left as it was."""
    if dtype not in DTYPES:
        raise ConfigError(f"unknown quantization {dtype!r}; supported: {', '.join(DTYPES)}")
    engines = torch.backends.quantized.supported_engines
    if not any(engine in engines for engine in ("x86", "fbgemm", "qnnpack", "onednn")):
        raise ConfigError(f"this torch build has no CPU int8 engine (supported: {engines})")
    quantize_dynamic = _quantize_dynamic()
    source = copy.deepcopy(model).to("cpu").eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)   # "torch.ao.quantization is deprecated"
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        return quantize_dynamic(source, set(QUANTIZED_TYPES), dtype=torch.qint8)
