"""Argument checks and small helpers the command modules share (no command logic lives here)."""

from __future__ import annotations

import argparse
from pathlib import Path

from seq2labels.errors import ConfigError


def add_inference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                   help="onnxruntime: decode with the ONNX export in MODEL/onnx (or one made in memory); "
                        "needs the onnx extra")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization of the RNN and linear layers (CPU)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                   help="autocast while predicting (torch backend): bf16 on CPUs with AVX512-BF16/AMX or GPUs, "
                        "fp16 on GPUs; default: the model's decode.precision")
    p.add_argument("--no-thresholds", action="store_true",
                   help="ignore the model folder's per-label thresholds.json (decode the label set as is)")


def load_for_inference(args: argparse.Namespace, models=None):
    """The model (or, with several folders in ``models``, their ensemble) with the inference flags."""
    from seq2labels.pipeline.loading import load_models_for_inference

    return load_models_for_inference(models if models is not None else args.model, device=args.device,
                                     backend=args.backend, quantize=args.quantize, precision=args.precision,
                                     thresholds=not getattr(args, "no_thresholds", False))


def split_models(first: str, rest: list[str]) -> tuple[list[str], list[str]]:
    """``MODEL [MODEL ...] INPUT ...``: the leading arguments that are model folders (a folder with a
    config.json), and the rest. Inputs are files, so ``predict MODEL INPUT`` reads as before."""
    models, rest = [first], list(rest)
    while rest and (Path(rest[0]) / "config.json").is_file():
        models.append(rest.pop(0))
    return models, rest


def check_decode_args(beam_size: int | None, max_labels: int | None, min_labels: int | None) -> None:
    """Bad decoding flags are usage errors (exit 2), not a ValueError traceback from the search."""
    if beam_size is not None and beam_size < 1:
        raise ConfigError(f"--beam-size must be >= 1, got {beam_size}")
    if max_labels is not None and max_labels < 1:
        raise ConfigError(f"--max-labels must be >= 1, got {max_labels}")
    if min_labels is not None and min_labels < 0:
        raise ConfigError(f"--min-labels must be >= 0, got {min_labels}")
    if min_labels is not None and max_labels is not None and min_labels > max_labels:
        raise ConfigError(f"--min-labels ({min_labels}) must not exceed --top-k ({max_labels})")


def check_counts(batch_size: int, chunk_size: int | None = None) -> None:
    """--batch-size 0 would be a traceback from the batcher, --chunk-size 0 an empty output: exit 2 instead."""
    from seq2labels.data.validation import check_positive_int

    check_positive_int(batch_size, "--batch-size")
    if chunk_size is not None:
        check_positive_int(chunk_size, "--chunk-size")


def check_picture_args(dpi: int, tokens_per_row: int | None = None) -> None:
    if dpi < 10:
        raise ConfigError(f"--dpi must be >= 10, got {dpi}")
    if tokens_per_row is not None and tokens_per_row < 1:
        raise ConfigError(f"--tokens-per-row must be >= 1, got {tokens_per_row}")


def print_metrics(metrics: dict) -> None:
    from seq2labels.evaluation.metrics import format_metrics
    print(format_metrics(metrics))


def write_json(path: Path, obj: dict) -> None:
    from seq2labels.utils.atomic import atomic_write_json
    atomic_write_json(path, obj)
