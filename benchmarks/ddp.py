"""Data-parallel training: 2 processes (torchrun, gloo, 1 thread each) against 1 process (1 thread).

    OMP_NUM_THREADS=1 python benchmarks/ddp.py --repeats 3 --epochs 4

Trains the `seq2labels demo` settings (src/seq2labels/samples/demo.yaml) on the shipped
GoEmotions sample (6,000 comments; 10% carved for validation) and tests on its 1,000-comment
test file, as three variants run in turn within each repeat so they share the machine's load:

* ``single``      one process, ``train.batch_size`` 32;
* ``ddp2``        ``torchrun --nproc-per-node 2``, the same config: 32 per process, 64 per step;
* ``ddp2-bs16``   ``torchrun --nproc-per-node 2`` with 16 per process: 32 per step, as ``single``.

Writes benchmarks/results/ddp.json and ddp.md: quality (validation and test micro/macro-F1)
and time (median epoch seconds, the training seconds of summary.json, process wall time),
with the speed-up as the median of the per-repeat ratios against ``single``.

    OMP_NUM_THREADS=1 python benchmarks/ddp.py --tolerance-sweep 1 2 3 4 5

instead reruns the setting of tests/training/test_distributed.py (same data, same config)
for each seed, 1 process and 2, and writes ddp_tolerance.json/.md: how far the two runs'
micro-F1 lie apart, and how far single runs with different seeds lie apart. The test's
F1_TOLERANCE is chosen from these numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, provenance  # noqa: E402

from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402

SAMPLES = ROOT / "src" / "seq2labels" / "samples"
TRAIN, TEST, CONFIG = SAMPLES / "goemotions_train.jsonl.gz", SAMPLES / "goemotions_test.jsonl.gz", SAMPLES / "demo.yaml"
VARIANTS = {"single": (1, []), "ddp2": (2, []), "ddp2-bs16": (2, ["--batch-size", "16"])}


def run_variant(name: str, repeat: int, epochs: int, seed: int, runs: Path) -> dict:
    """One training run as a subprocess; returns its summary, epoch times and wall time."""
    nproc, extra = VARIANTS[name]
    out = runs / f"{name}-{repeat}"
    shutil.rmtree(out, ignore_errors=True)
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                     "--nproc-per-node", str(nproc)]
    command = [*launcher, "-m", "seq2labels", "train", str(CONFIG), "--train", str(TRAIN), "--test", str(TEST),
               "--out", str(out), "--epochs", str(epochs), "--seed", str(seed), "--threads", "1", "-q", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} repeat {repeat} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "metrics.csv", newline="") as f:
        epoch_seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(f)]
    return {"variant": name, "repeat": repeat, "processes": nproc, "command": " ".join(command[1:]),
            "wall_seconds": round(wall, 2), "train_seconds": summary["train_seconds"],
            "median_epoch_seconds": round(statistics.median(epoch_seconds), 2),
            "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"],
            "valid_micro_f1": summary["valid_micro_f1"], "valid_macro_f1": summary["valid_macro_f1"],
            "test_micro_f1": summary["test_micro_f1"], "test_macro_f1": summary["test_macro_f1"],
            "test_beam_size": summary["test_beam_size"],
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def summarise(runs: list[dict]) -> dict:
    """Per variant: median quality and time, and the median per-repeat speed-up against ``single``."""
    by_name: dict[str, list[dict]] = {}
    for run in runs:
        by_name.setdefault(run["variant"], []).append(run)
    single = {run["repeat"]: run for run in by_name["single"]}
    table = {}
    for name, rows in by_name.items():
        med = {key: statistics.median(r[key] for r in rows)
               for key in ("valid_micro_f1", "valid_macro_f1", "test_micro_f1", "test_macro_f1",
                           "median_epoch_seconds", "train_seconds", "wall_seconds")}
        med["epoch_speedup_vs_single"] = statistics.median(
            single[r["repeat"]]["median_epoch_seconds"] / r["median_epoch_seconds"] for r in rows)
        med["train_speedup_vs_single"] = statistics.median(
            single[r["repeat"]]["train_seconds"] / r["train_seconds"] for r in rows)
        med["test_micro_f1_range"] = [min(r["test_micro_f1"] for r in rows), max(r["test_micro_f1"] for r in rows)]
        table[name] = med
    return table


def markdown(record: dict) -> str:
    lines = [
        "# Data-parallel training: 2 processes vs 1 (CPU, gloo)",
        "",
        f"GoEmotions sample shipped with the package (6,000 train comments, 10% carved for validation; "
        f"1,000 test comments), `demo.yaml` settings, {record['epochs']} epochs, seed {record['seed']}, "
        f"1 torch thread per process, {record['repeats']} repeats; medians. Test at beam "
        f"{record['runs'][0]['test_beam_size']}.",
        "",
        "| variant | processes | batch/process | valid micro-F1 | test micro-F1 | test macro-F1 | "
        "epoch s | train s | epoch speed-up | train speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    batch = {"single": 32, "ddp2": 32, "ddp2-bs16": 16}
    for name, row in record["summary"].items():
        lines.append(f"| {name} | {VARIANTS[name][0]} | {batch[name]} | {row['valid_micro_f1']:.4f} | "
                     f"{row['test_micro_f1']:.4f} | {row['test_macro_f1']:.4f} | {row['median_epoch_seconds']:.1f} | "
                     f"{row['train_seconds']:.1f} | {row['epoch_speedup_vs_single']:.2f}x | "
                     f"{row['train_speedup_vs_single']:.2f}x |")
    loads = [load for run in record["runs"] for load in run["load_average_1min"]]
    same = all(row["test_micro_f1_range"][0] == row["test_micro_f1_range"][1] for row in record["summary"].values())
    lines += [
        "",
        "Quality was identical in every repeat (seeded CPU training is deterministic, with 2 processes too); "
        "only the times vary." if same else "Quality varied between repeats; see ddp.json for each run.",
        "`ddp2` takes half as many optimizer steps per epoch (64 examples per step), `ddp2-bs16` as many as "
        "`single`. Epoch seconds include the validation pass, which rank 0 runs alone while rank 1 waits. "
        "Speed-ups are medians of per-repeat ratios against `single` from the same repeat.",
        f"The machine ({record['machine']['cpu_count']} CPUs) was shared with other jobs: 1-minute load average "
        f"{min(loads):.1f} to {max(loads):.1f} during the runs, so times are indicative only.",
        "",
        f"Command: `{record['command']}`  ",
        f"Commit: `{record['git_commit']}`, {record['date_utc']}",
        "",
    ]
    return "\n".join(lines)


# The setting of tests/training/test_distributed.py::test_torchrun_two_processes_match_one_process
# (kept in step by hand: tests are not importable from here).
EASY_LABELS = {"gratitude", "amusement", "love", "admiration", "neutral"}
EASY_SIZES = {"train": 1200, "valid": 400, "test": 400}
EASY_CONFIG = """\
text: {min_count: 1, max_len: 40}
model: {embedding_dim: 32, encoder_hidden: 32, decoder_hidden: 32, label_embedding_dim: 16}
train: {epochs: 4, batch_size: 16, lr: 0.004, patience: 10, seed: 1, threads: 1, progress: false}
decode: {max_labels: 4}
"""


def write_easy_splits(folder: Path) -> dict[str, Path]:
    """The test's data: sample comments whose labels are all among five clear emotions."""
    import gzip

    with gzip.open(TRAIN, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    rows = [r for r in rows if r["labels"] and set(r["labels"]) <= EASY_LABELS]
    paths, start = {}, 0
    for name, size in EASY_SIZES.items():
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps({"text": r["text"], "labels": r["labels"]}) + "\n"
                                       for r in rows[start:start + size]), encoding="utf-8")
        start += size
    (folder / "config.yaml").write_text(EASY_CONFIG, encoding="utf-8")
    return paths


def tolerance_sweep(seeds: list[int]) -> None:
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = write_easy_splits(folder)
        for seed in seeds:
            row = {"seed": seed}
            for name, nproc in (("single", 1), ("ddp2", 2)):
                launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                                 "--nproc-per-node", "2"]
                out = folder / f"{name}-{seed}"
                command = [*launcher, "-m", "seq2labels", "train", "config.yaml", "--train", str(data["train"]),
                           "--valid", str(data["valid"]), "--test", str(data["test"]), "--out", str(out),
                           "--seed", str(seed), "-q"]
                proc = subprocess.run(command, cwd=folder, env={**os.environ, "OMP_NUM_THREADS": "1"},
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"{name} seed {seed} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
                summary = json.loads((out / "summary.json").read_text())
                for key in ("valid_micro_f1", "test_micro_f1"):
                    row[f"{name}_{key}"] = summary[key]
            for key in ("valid_micro_f1", "test_micro_f1"):
                row[f"gap_{key}"] = row[f"ddp2_{key}"] - row[f"single_{key}"]
            print(json.dumps(row), flush=True)
            rows.append(row)
    stats = {}
    for key in ("valid_micro_f1", "test_micro_f1"):
        singles = [r[f"single_{key}"] for r in rows]
        stats[key] = {"max_abs_gap": max(abs(r[f"gap_{key}"]) for r in rows),
                      "mean_gap": statistics.mean(r[f"gap_{key}"] for r in rows),
                      "single_seed_range": max(singles) - min(singles)}
    record = {"setting": "tests/training/test_distributed.py", "config": EASY_CONFIG, "sizes": EASY_SIZES,
              "labels": sorted(EASY_LABELS), "seeds": seeds, "rows": rows, "stats": stats,
              **provenance([TRAIN])}
    atomic_write_json(RESULTS / "ddp_tolerance.json", record)
    lines = ["# DDP vs single process: how far apart is noise? (setting of tests/training/test_distributed.py)", "",
             "| seed | valid micro-F1 1 proc | 2 procs | gap | test micro-F1 1 proc | 2 procs | gap |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['single_valid_micro_f1']:.4f} | {r['ddp2_valid_micro_f1']:.4f} | "
                     f"{r['gap_valid_micro_f1']:+.4f} | {r['single_test_micro_f1']:.4f} | "
                     f"{r['ddp2_test_micro_f1']:.4f} | {r['gap_test_micro_f1']:+.4f} |")
    lines.append("")
    for key, st in stats.items():
        lines.append(f"- {key}: largest |gap| {st['max_abs_gap']:.4f}, mean gap {st['mean_gap']:+.4f}; "
                     f"single-process runs with different seeds span {st['single_seed_range']:.4f}")
    lines += ["", f"Command: `{record['command']}`  ", f"Commit: `{record['git_commit']}`, {record['date_utc']}", ""]
    atomic_write_text(RESULTS / "ddp_tolerance.md", "\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--tolerance-sweep", type=int, nargs="+", metavar="SEED",
                        help="instead: the test's setting, 1 vs 2 processes, for these seeds")
    args = parser.parse_args()
    if args.tolerance_sweep:
        tolerance_sweep(args.tolerance_sweep)
        return
    if "single" not in args.variants:
        raise SystemExit("the speed-ups need the 'single' variant")
    runs_dir = ROOT / "benchmarks" / "runs" / "ddp"
    runs = []
    for repeat in range(1, args.repeats + 1):
        for name in args.variants:
            run = run_variant(name, repeat, args.epochs, args.seed, runs_dir)
            print(json.dumps(run), flush=True)
            runs.append(run)
    record = {"dataset": "goemotions sample (src/seq2labels/samples)", "epochs": args.epochs, "seed": args.seed,
              "repeats": args.repeats, "summary": summarise(runs), "runs": runs, **provenance([TRAIN, TEST, CONFIG])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "ddp.json", record)
    atomic_write_text(RESULTS / "ddp.md", markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
