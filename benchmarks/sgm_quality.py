"""Train SGM / SGM+GE on a shared data set, evaluate on its test split (greedy and beam 5).

    python benchmarks/sgm_quality.py --dataset reuters21578 --model sgm

Reads configs/<dataset>/<model>.yaml, trains into benchmarks/runs/<dataset>-<model>/,
writes benchmarks/results/sgm_<dataset>_<model>.json (metrics, command, commit,
machine, data checksums, training seconds) and refreshes benchmarks/results/sgm.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, SHARED_DATA, provenance  # noqa: E402

from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from seq2labels.pipeline.config import load_config  # noqa: E402
from seq2labels.data.readers import read_examples  # noqa: E402
from seq2labels.pipeline.generator import load_model
from seq2labels.pipeline.recipe import train  # noqa: E402

REPORTED = ("micro_f1", "macro_f1", "example_f1", "subset_accuracy", "hamming_loss", "micro_precision",
            "micro_recall", "label_position_deviation")

TARGETS = {"reuters21578": {"micro_f1": 0.88}, "goemotions": {"micro_f1": 0.57, "macro_f1": 0.42}}
# issue 14's targets for SGM over a pretrained transformer encoder (model.encoder: transformer)
TRANSFORMER_TARGETS = {"reuters21578": {"micro_f1": 0.89, "macro_f1": 0.52},
                       "goemotions": {"micro_f1": 0.60, "macro_f1": 0.48}}


def run_name(dataset: str, model: str, tag: str = "") -> str:
    """benchmarks/runs/<run name>/ holds the trained model of a run."""
    return f"{dataset}-{model}{('-' + tag) if tag else ''}"


def result_file(dataset: str, model: str, tag: str = "") -> Path:
    """Where a run's result JSON goes (other scripts read it from here)."""
    return RESULTS / f"sgm_{run_name(dataset, model, tag)}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=["reuters21578", "goemotions"])
    parser.add_argument("--model", required=True, help="config name under configs/<dataset>/, e.g. sgm, sgm_ge")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config overrides")
    parser.add_argument("--tag", default="", help="suffix for the result file name (for variants)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its checkpoint (train seconds = sum of epoch seconds)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="re-evaluate the saved model of an earlier run and refresh its result file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    data_dir = SHARED_DATA / args.dataset
    test_file = data_dir / "test.jsonl.gz"
    files = [data_dir / "train.jsonl.gz", test_file] + ([data_dir / "valid.jsonl.gz"]
                                                        if (data_dir / "valid.jsonl.gz").exists() else [])
    overrides = [f"data.train={data_dir / 'train.jsonl.gz'}", "train.progress=false"]
    if (data_dir / "valid.jsonl.gz").exists():
        overrides.append(f"data.valid={data_dir / 'valid.jsonl.gz'}")
    cfg = load_config(ROOT / "configs" / args.dataset / f"{args.model}.yaml", overrides + args.overrides)
    name = run_name(args.dataset, args.model, args.tag)
    run_dir = ROOT / "benchmarks" / "runs" / name

    out = result_file(args.dataset, args.model, args.tag)
    test = read_examples(test_file)
    if args.evaluate_only:
        record = json.loads(out.read_text())
        generator = load_model(run_dir / "model")
        record["test"] = evaluate_decodings(generator, test)
        record["evaluated"] = provenance(files)
    else:
        started, cpu_started = time.perf_counter(), time.process_time()
        generator, result = train(cfg, run_dir, resume=args.resume)
        train_seconds = time.perf_counter() - started
        train_cpu_seconds = time.process_time() - cpu_started   # all threads of this process
        if args.resume:   # the wall clock of this process misses the interrupted part
            train_seconds = sum(row["epoch_seconds"] for row in result.history)
        evaluations = evaluate_decodings(generator, test)
        generator.save(run_dir / "model",
                       metrics={f"test_beam5_{k}": v for k, v in evaluations["beam5"].items()})
        record = {
            "dataset": args.dataset, "model": args.model, "tag": args.tag, "test_docs": len(test),
            "resumed": args.resume,
            "train_seconds": round(train_seconds, 1), "train_cpu_seconds": round(train_cpu_seconds, 1),
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "valid_micro_f1": result.best_score, "test": evaluations,
            "targets": (TRANSFORMER_TARGETS if cfg.model.encoder == "transformer" else TARGETS)[args.dataset],
            "config": cfg.to_dict(), "history": result.history,
            **provenance(files),
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, record)
    atomic_write_text(RESULTS / "sgm.md", summary_table())
    print(json.dumps({k: record[k] for k in ("dataset", "model", "train_seconds", "best_epoch") if k in record}), flush=True)
    print(json.dumps(record["test"], indent=1))


# (beam size, min_labels): greedy and beam 5, each also with the "never empty" rule that
# LibMultiLabel's top-1 fallback corresponds to (every test document has a label in both sets).
DECODINGS = ((1, 0), (5, 0), (1, 1), (5, 1))


def evaluate_decodings(generator, test) -> dict:
    evaluations = {}
    for beam, min_labels in DECODINGS:
        t0 = time.perf_counter()
        metrics = generator.evaluate(test, beam_size=beam, min_labels=min_labels)
        seconds = time.perf_counter() - t0
        key = f"beam{beam}" + (f"_min{min_labels}" if min_labels else "")
        evaluations[key] = {**{k: metrics[k] for k in REPORTED}, "predict_seconds": round(seconds, 2),
                            "docs_per_second": round(len(test) / seconds, 1)}
    return evaluations


def summary_table() -> str:
    rows = ["# SGM on the shared data sets (test split)", "",
            "Produced by `benchmarks/sgm_quality.py`; each row links to its JSON result file (command, commit, "
            "machine, data checksums, full history).", "",
            "| data set | model | decoding | micro-F1 | macro-F1 | example-F1 | subset acc. | Hamming loss "
            "| LPD | train s | best epoch | docs/s | result file |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("sgm_*.json")):
        r = json.loads(path.read_text())
        for beam, m in r["test"].items():
            rows.append(f"| {r['dataset']} | {r['model']}{(' ' + r['tag']) if r.get('tag') else ''} | {beam} "
                        f"| {m['micro_f1']:.4f} | {m['macro_f1']:.4f} | {m['example_f1']:.4f} "
                        f"| {m['subset_accuracy']:.4f} | {m['hamming_loss']:.5f} | {m['label_position_deviation']:.3f} "
                        f"| {r['train_seconds']:.0f} | {r['best_epoch']} | {m['docs_per_second']:.0f} | `{path.name}` |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
