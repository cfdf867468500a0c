"""Loading a model folder for inference with the options of ``predict``/``evaluate``/``serve``
(backend, int8 quantization, precision), and ``seq2labels export``."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from seq2labels.decoding import onnx_backend as ob
from seq2labels.errors import ConfigError
from seq2labels.pipeline.export import BACKENDS, FORMATS, export_onnx
from seq2labels.pipeline.generator import load_model

log = logging.getLogger(__name__)


def export_model(model_dir: str | Path, fmt: str = "onnx", out: str | Path | None = None) -> Path:
    """``seq2labels export``: load a model folder and export it (default: MODEL/onnx)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; supported: {', '.join(FORMATS)}")
    generator = load_model(model_dir)
    return export_onnx(generator, Path(out) if out is not None else Path(model_dir) / "onnx")



def load_for_inference(model_dir: str | Path, *, device: str = "cpu", backend: str = "torch",
                       quantize: str | None = None, precision: str | None = None, thresholds: bool = True):
    """``load_model`` plus the inference options of ``predict``/``evaluate``: ``backend="onnxruntime"``
    uses MODEL/onnx when it exists (refusing a stale one) and otherwise exports in memory;
    ``quantize="int8"`` quantizes the torch model. Both run on the CPU. ``precision`` (torch
    backend only) overrides the model's ``decode.precision``. ``thresholds=False`` ignores the
    folder's thresholds.json (``--no-thresholds``)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if (backend != "torch" or quantize) and torch.device(device).type != "cpu":
        what = f"--backend {backend}" if backend != "torch" else f"--quantize {quantize}"
        raise ConfigError(f"{what} runs on the CPU; drop --device {device}")
    if backend != "torch" and quantize:
        raise ConfigError("choose one of --backend onnxruntime and --quantize")
    if precision not in (None, "fp32") and (backend != "torch" or quantize):
        raise ConfigError(f"--precision {precision} needs the torch backend without --quantize")
    generator = load_model(model_dir, device=device)
    if not thresholds:
        generator.use_thresholds = False
    if precision is not None:
        generator.with_precision(precision)
    if quantize:
        return generator.quantize(quantize)
    if backend == "onnxruntime":
        onnx_dir = Path(model_dir) / "onnx"
        if (onnx_dir / ob.MANIFEST).is_file():
            return generator.with_backend(backend, onnx_dir=onnx_dir)
        log.info("%s has no ONNX export; exporting in memory (`seq2labels export %s` saves one)", model_dir, model_dir)
    return generator.with_backend(backend)


def load_models_for_inference(model_dirs, **options):
    """One folder: :func:`load_for_inference`; several: their EnsembleGenerator (one beam over the
    mean of their step distributions). The members' own thresholds are not used by an ensemble."""
    from seq2labels.pipeline.ensemble import load_ensemble

    dirs = [model_dirs] if isinstance(model_dirs, (str, Path)) else list(model_dirs)
    generator = load_ensemble(dirs, load=lambda path: load_for_inference(path, **options))
    if len(dirs) > 1 and options.get("thresholds", True) and any(m.thresholds is not None for m in generator.members):
        log.info("an ensemble ignores its members' thresholds.json (tuned for each member alone)")
    return generator
