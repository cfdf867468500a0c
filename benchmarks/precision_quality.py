"""Does bf16 training cost accuracy? The same SGM recipe trained under fp32 and bf16 with several seeds.

    python benchmarks/precision_quality.py --dataset reuters21578 --model sgm --seeds 0 1 2 \
        --precisions fp32 bf16 --jobs 2

Each (precision, seed) is one ``benchmarks/sgm_quality.py`` run (``--set train.seed=S --set
train.precision=P --tag P-seedS``), which writes its own result file with command, commit, machine and
data checksums; runs whose result file exists are reused unless ``--rerun``. This script then tables
test micro-/macro-F1 (beam 5) and the best validation micro-F1 per run, mean and sample standard
deviation per precision, and the per-seed paired difference (bf16 - fp32: same seed, same data split,
same initial weights), into benchmarks/results/precision_quality_<dataset>.{json,md}.

Train seconds are recorded but not compared: the runs share a 2-core machine (``--jobs``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sgm_quality  # noqa: E402
from common import RESULTS, ROOT, SHARED_DATA, provenance  # noqa: E402

from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402

METRICS = ("micro_f1", "macro_f1")


def run_tag(precision: str, seed: int) -> str:
    return f"{precision}-seed{seed}"


def result_path(dataset: str, model: str, precision: str, seed: int) -> Path:
    return sgm_quality.result_file(dataset, model, run_tag(precision, seed))


def train_command(dataset: str, model: str, precision: str, seed: int) -> list[str]:
    return [sys.executable, str(ROOT / "benchmarks" / "sgm_quality.py"), "--dataset", dataset, "--model", model,
            "--set", f"train.seed={seed}", "--set", f"train.precision={precision}",
            "--tag", run_tag(precision, seed)]


def run_missing(args) -> None:
    """Train every (precision, seed) without a result file (all with --rerun), ``--jobs`` at a time."""
    todo = [(p, s) for s in args.seeds for p in args.precisions
            if args.rerun or not result_path(args.dataset, args.model, p, s).exists()]

    def one(job: tuple[str, int]) -> None:
        precision, seed = job
        log = RESULTS.parent / "runs" / "logs" / f"{args.dataset}-{args.model}-{precision}-seed{seed}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            done = subprocess.run(train_command(args.dataset, args.model, precision, seed), stdout=out,
                                  stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise RuntimeError(f"{precision} seed {seed} failed with exit code {done.returncode}; see {log}")

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        list(pool.map(one, todo))


def run_row(record: dict, precision: str, seed: int, path: Path) -> dict:
    beam5 = record["test"]["beam5"]
    return {"precision": precision, "seed": seed, **{f"test_{m}": beam5[m] for m in METRICS},
            "valid_micro_f1": record["valid_micro_f1"], "best_epoch": record["best_epoch"],
            "epochs_run": record["epochs_run"], "train_seconds": record["train_seconds"],
            "git_commit": record["git_commit"], "result_file": path.name}


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}


def summarize(rows: list[dict], precisions: list[str]) -> dict:
    keys = [f"test_{m}" for m in METRICS] + ["valid_micro_f1"]
    per_precision = {p: {k: mean_std([r[k] for r in rows if r["precision"] == p]) for k in keys} for p in precisions}
    paired = {}
    base = precisions[0]
    by = {(r["precision"], r["seed"]): r for r in rows}
    for p in precisions[1:]:
        seeds = sorted(s for (q, s) in by if q == p and (base, s) in by)
        paired[f"{p} - {base}"] = {k: {**mean_std([by[p, s][k] - by[base, s][k] for s in seeds]),
                                       "per_seed": {s: by[p, s][k] - by[base, s][k] for s in seeds}}
                                   for k in keys}
    return {"per_precision": per_precision, "paired_differences": paired}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="reuters21578", choices=["reuters21578", "goemotions"])
    parser.add_argument("--model", default="sgm", help="config name under configs/<dataset>/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                        help="the first is the reference of the paired differences")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at a time")
    parser.add_argument("--rerun", action="store_true", help="train again even where a result file exists")
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("--seeds needs at least 2 seeds (a standard deviation)")
    run_missing(args)
    rows = []
    for precision in args.precisions:
        for seed in args.seeds:
            path = result_path(args.dataset, args.model, precision, seed)
            rows.append(run_row(json.loads(path.read_text()), precision, seed, path))
    data_dir = SHARED_DATA / args.dataset
    record = {"benchmark": "precision_quality", "dataset": args.dataset, "model": args.model,
              "config": f"configs/{args.dataset}/{args.model}.yaml", "decoding": "beam 5, min_labels 0 (sgm_quality.py's beam5 row)",
              "runs": rows, **summarize(rows, args.precisions),
              "provenance": provenance(sorted(data_dir.glob("*.jsonl.gz")))}
    out = RESULTS / f"precision_quality_{args.dataset}"
    atomic_write_json(out.with_suffix(".json"), record)
    atomic_write_text(out.with_suffix(".md"), to_markdown(record))
    print(to_markdown(record))


def _pm(stat: dict, digits: int = 4, signed: bool = False) -> str:
    sign = "+" if signed else ""
    text = f"{stat['mean']:{sign}.{digits}f}"
    return text + (f" ± {stat['std']:.{digits}f}" if stat["std"] is not None else "")


def to_markdown(r: dict) -> str:
    p = r["provenance"]
    lines = [f"# fp32 against bf16 training: {r['dataset']}, `{r['config']}`", "",
             f"Each row is one full training run (`benchmarks/sgm_quality.py`, {r['decoding']} on the test set); "
             "the same seed gives both precisions the same validation split, initial weights and batch order. "
             "Mean ± sample standard deviation over seeds; the paired difference subtracts the fp32 run of the "
             "same seed. Train seconds are wall seconds of runs that shared the machine: not a speed comparison "
             "(see speed.md for that).", "",
             "| precision | seed | test micro-F1 | test macro-F1 | valid micro-F1 | best epoch / run | train s "
             "| commit | result file |", "|---|---|---|---|---|---|---|---|---|"]
    for row in r["runs"]:
        lines.append(f"| {row['precision']} | {row['seed']} | {row['test_micro_f1']:.4f} | {row['test_macro_f1']:.4f} "
                     f"| {row['valid_micro_f1']:.4f} | {row['best_epoch']} / {row['epochs_run']} "
                     f"| {row['train_seconds']:.0f} | `{row['git_commit'][:7]}` | `{row['result_file']}` |")
    lines += ["", "| precision | runs | test micro-F1 | test macro-F1 | valid micro-F1 |", "|---|---|---|---|---|"]
    for precision, stats in r["per_precision"].items():
        lines.append(f"| {precision} | {stats['test_micro_f1']['n']} | {_pm(stats['test_micro_f1'])} "
                     f"| {_pm(stats['test_macro_f1'])} | {_pm(stats['valid_micro_f1'])} |")
    for name, diff in r["paired_differences"].items():
        per_seed = ", ".join(f"seed {s}: {v:+.4f}" for s, v in diff["test_micro_f1"]["per_seed"].items())
        lines.append(f"| {name} (paired) | {diff['test_micro_f1']['n']} | {_pm(diff['test_micro_f1'], signed=True)} "
                     f"| {_pm(diff['test_macro_f1'], signed=True)} | {_pm(diff['valid_micro_f1'], signed=True)} |")
        lines += ["", f"Test micro-F1 {name}, per seed: {per_seed}."]
    lines += ["", f"Command `{p['command']}`, commit `{p['git_commit']}`, {p['date_utc']}, {p['machine']['cpu']} "
              f"({p['machine']['cpu_count']} cores); each run's own file records its command, machine and torch "
              "version.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
