"""Time to the best validation score: from a recorded quality run's result file, or one real training
run per precision in its own process."""

from __future__ import annotations

import json
import math
import tempfile
import time

from common import RESULTS, ROOT

from .harness import run_phase, sgm_config


def time_to_best_from_file(dataset: str) -> dict | None:
    """Seconds to the best epoch of the recorded quality run: setup + epoch seconds up to it.

    Setup (reading, vocabularies, model) is ``train_seconds`` minus the sum of all epoch seconds;
    epoch seconds include that epoch's validation decoding.
    """
    path = RESULTS / f"sgm_{dataset}-sgm.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    epochs = [row["epoch_seconds"] for row in record["history"]]
    setup = record["train_seconds"] - sum(epochs)
    best = record["best_epoch"]
    return {"source": str(path.relative_to(ROOT)), "git_commit": record.get("git_commit"),
            "date_utc": record.get("date_utc"), "threads": record["config"]["train"]["threads"],
            "precision": record["config"]["train"].get("precision", "fp32"), "best_epoch": best, "epochs_run": record["epochs_run"],
            "valid_micro_f1": record["valid_micro_f1"],
            "seconds_to_best": round(setup + sum(epochs[:best]), 1), "train_seconds": record["train_seconds"]}


def measure_time_to_best(spec: dict) -> dict:
    """One real training run (the recipe, checkpoints and all) into a temporary folder.

    Wall and CPU clocks are read at the end of each epoch by wrapping the Trainer's epoch method
    here (benchmark-side): the time to best counts everything up to that point (reading, vocabularies,
    model, optimizer, checkpoints), and a starved process still shows its compute time.
    ``spec["overrides"]`` are config overrides (``train.precision=bf16``).
    """
    from seq2labels.pipeline.recipe import train
    from seq2labels.training.loop import Trainer

    cfg = sgm_config(spec["dataset"], spec["threads"], spec.get("overrides"))
    epoch_end: list[tuple[float, float]] = []                          # (wall, cpu)
    run_epoch = Trainer._run_epoch

    def run_epoch_and_note_cpu(self, *args, **kwargs):
        run_epoch(self, *args, **kwargs)
        epoch_end.append((time.perf_counter(), time.process_time()))

    Trainer._run_epoch = run_epoch_and_note_cpu
    try:
        with tempfile.TemporaryDirectory(prefix="speed-ttb-") as run_dir:
            started, cpu_started = time.perf_counter(), time.process_time()
            _, result = train(cfg, run_dir)
            wall = time.perf_counter() - started
    finally:
        Trainer._run_epoch = run_epoch
    best = result.best_epoch
    best_wall, best_cpu = epoch_end[best - 1] if best else (math.nan, math.nan)
    return {"source": "this run", "threads": spec["threads"], "precision": cfg.train.precision, "best_epoch": best,
            "epochs_run": result.epochs_run, "valid_micro_f1": result.best_score,
            "seconds_to_best": round(best_wall - started, 1), "cpu_seconds_to_best": round(best_cpu - cpu_started, 1),
            "train_seconds": round(wall, 1), "epoch_seconds": [round(row["epoch_seconds"], 1) for row in result.history],
            "epoch_end_seconds": [round(w - started, 1) for w, _ in epoch_end],
            "epoch_end_cpu_seconds": [round(c - cpu_started, 1) for _, c in epoch_end]}


def measure_time_to_best_phase(dataset: str, threads: int, precision: str) -> dict:
    """One time-to-best run in its own process; its precision is recorded even when it fails."""
    result = run_phase({"dataset": dataset, "phase": "time_to_best", "threads": threads,
                        "overrides": [f"train.precision={precision}"]})
    return {"precision": precision, **result}


def wants_time_to_best(dataset: str, args) -> bool:
    return args.time_to_best is not None and dataset in (args.time_to_best or args.dataset) and not args.quick
