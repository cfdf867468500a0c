"""One training run as the command line does it: train, evaluate the test file, save, summarise."""

from __future__ import annotations

import time
from pathlib import Path

from seq2labels.data.readers import read_examples
from seq2labels.pipeline.config import RunConfig
from seq2labels.pipeline.recipe import train
from seq2labels.training import distributed
from seq2labels.utils.atomic import atomic_write_json


def train_test_save(cfg: RunConfig, out: str | Path | None = None, resume: str | Path | None = None) -> dict | None:
    """Train under ``cfg`` into ``out`` (default runs/<time>) or continue ``resume``; rank 0 (the only
    process without torchrun) then scores ``data.test``, saves RUN_DIR/model and summary.json.

    Returns ``{"model_dir", "metrics"}`` on rank 0 and None on the other ranks."""
    with distributed.session(cfg.train.device):  # under torchrun: one process group for the run
        run_dir = Path(distributed.broadcast_object(  # rank 0's clock names the run folder for all
            str(resume or out or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))))
        started = time.perf_counter()
        generator, result = train(cfg, run_dir, resume=bool(resume))
        if not distributed.is_main_process():
            return None
        seconds = time.perf_counter() - started
        summary = {"best_epoch": result.best_epoch, "valid_micro_f1": result.best_score,
                   "epochs_run": result.epochs_run, "train_seconds": round(seconds, 1)}
        metrics = {f"valid_{k}": v for k, v in result.best_metrics.items()}
        if cfg.data.test:
            metrics.update(evaluate_file(generator, cfg.data.test, cfg.data.format, cfg.data.encoding_errors,
                                         cfg.decode.beam_size, prefix="test_"))
        model_dir = generator.save(run_dir / "model", metrics=metrics)
        atomic_write_json(run_dir / "summary.json", {**summary, **metrics})
        return {"model_dir": model_dir, "metrics": {**summary, **metrics}}


def evaluate_file(generator, path: str, fmt: str | None, encoding_errors: str, beam_size: int | None,
                  prefix: str = "", batch_size: int = 256, max_labels: int | None = None) -> dict:
    """Every metric of ``generator`` on a labelled file, with docs/s and the beam size used."""
    if getattr(generator, "uses_inputs", False):  # JSON Lines with images / features
        from seq2labels.pipeline.multimodal import read_inputs_file
        examples = read_inputs_file(generator.config, path, encoding_errors)
    else:
        examples = read_examples(path, fmt, encoding_errors=encoding_errors)
    beam = beam_size or generator.config.decode.beam_size
    started = time.perf_counter()
    metrics = generator.evaluate(examples, beam_size=beam, max_labels=max_labels, batch_size=batch_size)
    metrics["docs_per_second"] = len(examples) / max(time.perf_counter() - started, 1e-9)
    metrics["beam_size"] = beam
    if generator.label_counts is None:
        metrics["rare_macro_f1"] = None            # not 0: unknown without the training label counts
    thresholds = generator.active_thresholds()
    metrics["threshold_labels"] = thresholds.tuned_count if thresholds is not None else 0
    return {prefix + k: v for k, v in metrics.items()}


def tune_model_folder(model_dir: str | Path, data: str | Path, *, fmt: str | None = None,
                      encoding_errors: str = "strict", beam_size: int | None = None,
                      min_positives: int = 3, batch_size: int = 256, device: str = "cpu",
                      objective: str = "macro_f1") -> dict:
    """``seq2labels tune-thresholds``: tune on a labelled file, write MODEL/thresholds.json, and
    return what changed on that file (metrics before and after, counts)."""
    from seq2labels.pipeline.generator import load_model
    from seq2labels.pipeline.thresholds import tune_generator, write_thresholds

    generator = load_model(model_dir, device=device)
    examples = read_examples(str(data), fmt, encoding_errors=encoding_errors)
    thresholds = tune_generator(generator, examples, beam_size=beam_size, min_positives=min_positives,
                                batch_size=batch_size, objective=objective)
    generator.thresholds, generator.use_thresholds = None, False
    before = generator.evaluate(examples, beam_size=thresholds.beam_size, batch_size=batch_size)
    generator.thresholds, generator.use_thresholds = thresholds, True
    after = generator.evaluate(examples, beam_size=thresholds.beam_size, batch_size=batch_size)
    path = write_thresholds(model_dir, thresholds)
    return {"path": str(path), "tuned_labels": thresholds.tuned_count, "labels": len(thresholds.labels),
            "validation_docs": thresholds.validation_docs, "beam_size": thresholds.beam_size,
            "objective": thresholds.objective,
            "before": before, "after": after}
