"""The speed suite's shared harness: data and config loading, timers and medians, one process per phase.

Every measurement module (training, time_to_best, prediction, switches, memory, allocator, peers) runs
inside a phase process started by ``run_phase``: ``python benchmarks/speed.py --worker SPEC OUT``, whose
``worker`` runs ``speed_suite.suite.PHASES[spec["phase"]]`` and writes its JSON to OUT.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from common import ROOT, SHARED_DATA

log = logging.getLogger("speed")

SCRIPT = Path(__file__).resolve().parents[1] / "speed.py"   # the entry point every phase process runs
DATASETS = ("reuters21578", "goemotions")
PRECISIONS = ("fp32", "bf16")                 # measured; bf16 = autocast (seq2labels.training.precision)


def data_files(dataset: str) -> dict[str, Path]:
    folder = SHARED_DATA / dataset
    files = {split: folder / f"{split}.jsonl.gz" for split in ("train", "valid", "test")}
    return {split: path for split, path in files.items() if path.exists()}


def sgm_config(dataset: str, threads: int, extra: list[str] | None = None):
    """configs/<dataset>/sgm.yaml with the data paths filled in, as benchmarks/sgm_quality.py does."""
    from seq2labels.pipeline.config import load_config

    files = data_files(dataset)
    overrides = [f"data.train={files['train']}", "train.progress=false", f"train.threads={threads}"]
    if "valid" in files:
        overrides.append(f"data.valid={files['valid']}")
    return load_config(ROOT / "configs" / dataset / "sgm.yaml", overrides + (extra or []))


def model_dir(dataset: str) -> Path:
    return ROOT / "benchmarks" / "runs" / f"{dataset}-sgm" / "model"


def median_of(runs: list[float]) -> float:
    return float(statistics.median(runs))


@dataclasses.dataclass
class Runs:
    """Wall and CPU seconds of each run of one measurement, and the last run's result.

    CPU seconds are the process's (all threads): on a shared machine they hardly depend on how
    much of the CPU other jobs leave, where wall seconds do; with one thread they equal the wall
    time of an idle machine.
    """

    wall: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)
    result: object = None

    def record(self, per_item: int, prefix: str = "") -> dict:
        """Runs and medians; ``per_item`` items (docs) per run give the rates."""
        wall, cpu = median_of(self.wall), median_of(self.cpu)
        return {"seconds_runs": [round(v, 3) for v in self.wall], "seconds": round(wall, 3),
                "cpu_seconds_runs": [round(v, 3) for v in self.cpu], "cpu_seconds": round(cpu, 3),
                f"{prefix}per_s": round(per_item / wall, 1), f"{prefix}per_cpu_s": round(per_item / cpu, 1)}


def timed(fn, repeats: int, runs: Runs | None = None) -> Runs:
    """Run ``fn`` ``repeats`` times, adding each run's wall and CPU seconds to ``runs``."""
    runs = runs or Runs()
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        runs.result = fn()
        runs.cpu.append(time.process_time() - cpu)
        runs.wall.append(time.perf_counter() - wall)
    return runs


def timed_interleaved(tasks: dict, repeats: int) -> dict[object, Runs]:
    """Every task once per round, ``repeats`` rounds, so a change in the machine's load hits
    every task alike."""
    runs = {key: Runs() for key in tasks}
    for _ in range(repeats):
        for key, fn in tasks.items():
            timed(fn, 1, runs[key])
    return runs


def micro_f1(gold: list[list[str]], predicted: list[list[str]], names: list[str]) -> float:
    """micro-F1 by the package's metrics; labels outside ``names`` count as misses (no warning here)."""
    from seq2labels.evaluation.metrics import evaluate_label_lists

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(evaluate_label_lists(gold, predicted, names)["micro_f1"])


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def load_test(dataset: str, limit: int | None):
    from seq2labels.data.readers import read_examples

    test = read_examples(data_files(dataset)["test"])
    return test[:limit] if limit else test


def same_labels(labels: list, reference: list) -> str:
    return f"{sum(a == b for a, b in zip(labels, reference))}/{len(labels)}"


# ==================================================================== phases in child processes

def worker(spec_json: str, out_path: str, phases: dict) -> None:
    """Child side: run one phase (``phases[spec["phase"]]``), write its JSON."""
    spec = json.loads(spec_json)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    result = phases[spec["phase"]](spec)
    Path(out_path).write_text(json.dumps(result), encoding="utf-8")


def run_phase(spec: dict) -> dict:
    """Run one phase in its own process (clean thread settings, its own peak RSS)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "MKL_NUM_THREADS": str(spec["threads"]),
           **spec.get("env", {})}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out_path = tmp.name
    load_before = os.getloadavg()
    started = time.perf_counter()
    log.info("phase %s", {k: v for k, v in spec.items() if k not in ("model",)})
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--worker", json.dumps(spec), out_path],
                            env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    meta = {"phase": spec["phase"], "threads": spec["threads"], "wall_seconds": round(wall, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    try:
        if proc.returncode != 0:
            return {**meta, "error": f"phase process exited with {proc.returncode} (see the log above)"}
        return {**meta, **json.loads(Path(out_path).read_text(encoding="utf-8"))}
    finally:
        Path(out_path).unlink(missing_ok=True)
