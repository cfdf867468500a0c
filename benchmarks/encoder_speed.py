"""Cost of the pretrained transformer encoder beside the bi-LSTM, measured in one run (issue 14).

    OMP_NUM_THREADS=1 python benchmarks/encoder_speed.py --dataset reuters21578 goemotions --repeats 3

For each data set and each encoder recipe (the best bi-LSTM config, all-MiniLM-L6-v2 frozen, fine-tuned),
every repeat trains from scratch on the first ``--train-docs`` training texts for ``--epochs`` epochs
(validation: the next ``--valid-docs`` texts) and then predicts the first ``--test-docs`` test texts with
beam 5. It records the process CPU-seconds of training (vocabularies, word2vec or the frozen encoder's
cached token states included: what a user pays), the wall seconds of each epoch, and prediction docs/s
(wall, batch 256). Medians over the repeats and the ratio to the bi-LSTM of the same run go to
benchmarks/results/encoder_speed.json and encoder_speed.md. Only the ratios mean much on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, SHARED_DATA, provenance  # noqa: E402

from seq2labels.data.readers import read_examples  # noqa: E402
from seq2labels.pipeline.config import load_config  # noqa: E402
from seq2labels.pipeline.recipe import train  # noqa: E402
from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402

# (row name, config under configs/<dataset>/): the best bi-LSTM recipe first, the reference of the ratios.
RECIPES = {
    "reuters21578": (("bi-LSTM (sgm_w2v_bow)", "sgm_w2v_bow"), ("MiniLM frozen (sgm_minilm)", "sgm_minilm"),
                     ("MiniLM fine-tuned (sgm_minilm_ft)", "sgm_minilm_ft")),
    "goemotions": (("bi-LSTM (sgm_ge)", "sgm_ge"), ("MiniLM frozen (sgm_minilm)", "sgm_minilm"),
                   ("MiniLM fine-tuned (sgm_minilm_ft)", "sgm_minilm_ft")),
}


def measure_once(dataset: str, config: str, train_docs, valid_docs, test_texts, epochs: int) -> dict:
    """Train one recipe from scratch on the slice, then time beam-5 prediction of the test slice."""
    overrides = [f"train.epochs={epochs}", f"train.patience={epochs}", "train.progress=false", "train.threads=1",
                 "train.warmup_steps=0"]
    cfg = load_config(ROOT / "configs" / dataset / f"{config}.yaml", overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        generator, result = train(cfg, run_dir, train_examples=train_docs, valid_examples=valid_docs)
        train_cpu, train_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    generator.predict(test_texts[:32], beam_size=5)                     # warm-up: first-call allocations
    wall0 = time.perf_counter()
    generator.predict(test_texts, beam_size=5, batch_size=256)
    predict_wall = time.perf_counter() - wall0
    return {"train_cpu_seconds": round(train_cpu, 2), "train_wall_seconds": round(train_wall, 2),
            "epoch_seconds": [round(row["epoch_seconds"], 2) for row in result.history],
            "predict_docs_per_second": round(len(test_texts) / predict_wall, 1)}


def summarise(runs: list[dict]) -> dict:
    return {"train_cpu_seconds": statistics.median(r["train_cpu_seconds"] for r in runs),
            "last_epoch_seconds": statistics.median(r["epoch_seconds"][-1] for r in runs),
            "predict_docs_per_second": statistics.median(r["predict_docs_per_second"] for r in runs)}


def measure_dataset(dataset: str, args) -> dict:
    data_dir = SHARED_DATA / dataset
    examples = read_examples(data_dir / "train.jsonl.gz")
    train_docs = examples[:args.train_docs]
    valid_docs = examples[args.train_docs:args.train_docs + args.valid_docs]
    test_texts = [ex.text for ex in read_examples(data_dir / "test.jsonl.gz")[:args.test_docs]]
    rows = []
    for name, config in RECIPES[dataset]:
        runs = []
        for repeat in range(args.repeats):
            logging.info("%s %s repeat %d", dataset, config, repeat + 1)
            runs.append(measure_once(dataset, config, train_docs, valid_docs, test_texts, args.epochs))
        rows.append({"name": name, "config": f"configs/{dataset}/{config}.yaml", "runs": runs,
                     "median": summarise(runs)})
    reference = rows[0]["median"]
    for row in rows:
        m = row["median"]
        row["ratio_to_bilstm"] = {
            "train_cpu_seconds": round(m["train_cpu_seconds"] / reference["train_cpu_seconds"], 2),
            "predict_docs_per_second": round(m["predict_docs_per_second"] / reference["predict_docs_per_second"], 3)}
    return {"train_docs": len(train_docs), "valid_docs": len(valid_docs), "test_docs": len(test_texts),
            "epochs": args.epochs, "rows": rows,
            **provenance([data_dir / "train.jsonl.gz", data_dir / "test.jsonl.gz"])}


def markdown(record: dict) -> str:
    lines = ["# Encoder cost: the bi-LSTM beside all-MiniLM-L6-v2, one run", "",
             f"Produced by `{record['command']}` at commit `{record['git_commit']}` on "
             f"{_machine(record['machine'])}.",
             f"torch threads: 1. Medians of {record['repeats']} repeats; each repeat trains from scratch.", ""]
    for dataset, part in record["datasets"].items():
        lines += [f"## {dataset}: {part['train_docs']} training texts x {part['epochs']} epochs, "
                  f"beam-5 prediction of {part['test_docs']} test texts", "",
                  "| encoder | train CPU-s | x bi-LSTM | last epoch s (wall) | predict docs/s | x bi-LSTM |",
                  "|---|---|---|---|---|---|"]
        for row in part["rows"]:
            m, r = row["median"], row["ratio_to_bilstm"]
            lines.append(f"| {row['name']} | {m['train_cpu_seconds']:.1f} | {r['train_cpu_seconds']:.2f} | "
                         f"{m['last_epoch_seconds']:.1f} | {m['predict_docs_per_second']:.1f} | "
                         f"{r['predict_docs_per_second']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def _machine(m: dict) -> str:
    return f"{m.get('cpu', '?')} ({m.get('cpu_count', '?')} cores), torch {m.get('torch', '?')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", nargs="+", default=["reuters21578", "goemotions"], choices=sorted(RECIPES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-docs", type=int, default=600)
    parser.add_argument("--valid-docs", type=int, default=100)
    parser.add_argument("--test-docs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(1)
    record = {"repeats": args.repeats, "datasets": {}}
    for dataset in args.dataset:
        record["datasets"][dataset] = measure_dataset(dataset, args)
    record.update({k: v for k, v in record["datasets"][args.dataset[-1]].items()
                   if k in ("command", "git_commit", "date_utc", "machine")})
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "encoder_speed.json", record)
    atomic_write_text(RESULTS / "encoder_speed.md", markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
