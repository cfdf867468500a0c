"""The no-config recipe (`seq2labels train --train X --test Y`): choose its defaults, then check them (issue 15).

    # choose: candidate defaults on small samples of Reuters-21578 and GoEmotions (the setting where SGM
    # trailed linear models), each beside linear peers fitted on the same sample
    OMP_NUM_THREADS=1 python benchmarks/default_recipe.py choose --seeds 0 1
    # check: the package's built-in defaults on a data set used for none of the choices (AAPD, partial:
    # its 1,000 validation abstracts train, its 1,000 test abstracts test), beside the same peers
    OMP_NUM_THREADS=1 python benchmarks/default_recipe.py check --seeds 0 1 2

Every SGM run is the package's own config defaults plus the candidate's overrides (none for "check"); the
validation split is the recipe's own (a seeded 10% of the training sample). Peers: binary relevance and a
classifier chain of LinearSVC on TF-IDF (1-2 grams), the first with LibMultiLabel's top-1 fallback.
Writes benchmarks/results/default_recipe_<mode>.json and .md with command, commit, machine, data checksums.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, provenance  # noqa: E402

from seq2labels.data.readers import read_examples  # noqa: E402
from seq2labels.experiments.compare import run_comparison  # noqa: E402
from seq2labels.pipeline.config import load_config  # noqa: E402
from seq2labels.pipeline.recipe import train  # noqa: E402
from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402

# (name, overrides on the package defaults). "old default" pins what the defaults were before issue 15.
# Every trained candidate is decoded in each of DECODINGS, so decoding choices cost no training.
CANDIDATES = (
    ("pre-issue-15 defaults", ["model.bag_of_words=false", "text.pretrain_embeddings=false", "train.lr=0.001",
                               "train.batch_size=32"]),
    ("+ bag-of-words", ["model.bag_of_words=true", "text.pretrain_embeddings=false", "train.lr=0.001",
                        "train.batch_size=32"]),
    ("+ bag-of-words + word2vec", ["model.bag_of_words=true", "text.pretrain_embeddings=true", "train.lr=0.001",
                                   "train.batch_size=32"]),
    ("+ bag-of-words + word2vec + lr 0.002, batch 64", [
        "model.bag_of_words=true", "text.pretrain_embeddings=true", "train.lr=0.002", "train.batch_size=64"]),
)
DECODINGS = ((1, 0), (5, 0), (5, 1))   # (beam size, min_labels)
# (data set, training sample size): small samples, where the choice matters most
CHOOSE_ON = (("reuters21578", 1000), ("goemotions", 2000))
REPORTED = ("micro_f1", "macro_f1", "example_f1", "subset_accuracy", "hamming_loss")
PEERS = [
    {"name": "br", "label": "BR (LinearSVC, top-1 fallback)", "params": {"classifier": {"name": "linear_svc"}}},
    {"name": "cc", "label": "CC (LinearSVC, frequency order)",
     "params": {"classifier": {"name": "linear_svc"}, "order": "frequency"}},
]


def write_jsonl(examples, path: Path) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps({"text": ex.text, "labels": list(ex.labels)}) + "\n")
    return path


def sgm_run(overrides: list[str], train_docs, test_docs, seed: int) -> dict:
    cfg = load_config(None, [*overrides, f"train.seed={seed}", "train.progress=false", "train.threads=1"])
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        generator, result = train(cfg, run_dir, train_examples=train_docs)
        seconds = time.perf_counter() - started
    decodings = {"default": _metrics(generator.evaluate(test_docs))}   # the config's own decoding
    for beam, min_labels in DECODINGS:
        decodings[f"beam{beam}_min{min_labels}"] = _metrics(
            generator.evaluate(test_docs, beam_size=beam, min_labels=min_labels))
    return {"seed": seed, "decodings": decodings, "train_seconds": round(seconds, 1),
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "default_decoding": {"beam_size": cfg.decode.beam_size, "min_labels": cfg.decode.min_labels},
            "resolved_train": cfg.to_dict()["train"]}


def _metrics(metrics: dict) -> dict:
    return {k: metrics[k] for k in REPORTED}


def peer_rows(train_file: Path, test_file: Path) -> list[dict]:
    rows = []
    for fallback in (True, False):
        methods = [m for m in PEERS if ("fallback" in m["label"]) == fallback]
        config = {"name": "peers", "data": {"name": "sample", "train": str(train_file), "test": str(test_file)},
                  "tfidf": {"sublinear_tf": True, "min_df": 2, "ngram_range": [1, 2]}, "fallback_top1": fallback,
                  "methods": methods}
        for row in run_comparison(config).rows:
            rows.append({"name": row["method"], **{k: row[k] for k in REPORTED}})
    return rows


def mean_std(runs: list[dict], decoding: str) -> dict:
    out = {}
    for k in REPORTED:
        values = [r["decodings"][decoding][k] for r in runs]
        out[k] = statistics.fmean(values)
        out[k + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def measure(name: str, train_docs, test_docs, candidates, seeds, files) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        train_file = write_jsonl(train_docs, Path(tmp) / "train.jsonl.gz")
        test_file = write_jsonl(test_docs, Path(tmp) / "test.jsonl.gz")
        peers = peer_rows(train_file, test_file)
    rows = []
    for cand, overrides in candidates:
        runs = []
        for seed in seeds:
            logging.info("%s: %s, seed %d", name, cand, seed)
            runs.append(sgm_run(overrides, train_docs, test_docs, seed))
        for decoding in runs[0]["decodings"]:
            rows.append({"name": f"{cand} [{decoding}]", "overrides": overrides, "decoding": decoding, "runs": runs,
                         **mean_std(runs, decoding)})
    return {"data": name, "train_docs": len(train_docs), "test_docs": len(test_docs), "sgm": rows, "peers": peers,
            "data_files": provenance(files)["data"]}


def markdown(record: dict) -> str:
    lines = [f"# Default recipe: {record['mode']}", "", record["about"], "",
             f"Command `{record['command']}`, commit `{record['git_commit']}`, {record['date_utc']}, "
             f"{record['machine'].get('cpu')} ({record['machine'].get('cpu_count')} cores). "
             f"SGM rows: mean ± sample std over seeds {record['seeds']}.", ""]
    for part in record["parts"]:
        lines += [f"## {part['data']}: {part['train_docs']} training texts, {part['test_docs']} test texts", "",
                  "| method | micro-F1 | macro-F1 | example-F1 | subset acc. | mean train s |", "|---|---:|---:|---:|---:|---:|"]
        for r in part["sgm"]:
            secs = statistics.fmean(x["train_seconds"] for x in r["runs"])
            lines.append(f"| SGM: {r['name']} | {r['micro_f1']:.4f} ± {r['micro_f1_std']:.4f} | "
                         f"{r['macro_f1']:.4f} ± {r['macro_f1_std']:.4f} | {r['example_f1']:.4f} | "
                         f"{r['subset_accuracy']:.4f} | {secs:.0f} |")
        for r in part["peers"]:
            lines.append(f"| {r['name']} | {r['micro_f1']:.4f} | {r['macro_f1']:.4f} | {r['example_f1']:.4f} | "
                         f"{r['subset_accuracy']:.4f} | |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["choose", "check"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    parts, files = [], []
    if args.mode == "choose":
        about = ("Candidate defaults for the no-config recipe, on seeded random samples of the training splits "
                 "(tested on the full test splits).")
        for dataset, n in CHOOSE_ON:
            data = SHARED_DATA / dataset
            pool = read_examples(data / "train.jsonl.gz")
            pick = np.random.default_rng(0).choice(len(pool), size=n, replace=False)
            sample = [pool[i] for i in sorted(pick)]
            test = read_examples(data / "test.jsonl.gz")
            part_files = [data / "train.jsonl.gz", data / "test.jsonl.gz"]
            parts.append(measure(f"{dataset} (sample of {n})", sample, test, CANDIDATES, args.seeds, part_files))
            files += part_files
    else:
        about = ("The package's built-in defaults (no config, no flags) on AAPD (partial), which none of the "
                 "choices looked at: trained on its 1,000 validation abstracts, tested on its 1,000 test abstracts.")
        data = SHARED_DATA / "aapd_partial"
        files = [data / "valid.jsonl.gz", data / "test.jsonl.gz"]
        parts.append(measure("aapd_partial", read_examples(files[0]), read_examples(files[1]),
                             [("built-in defaults", [])], args.seeds, files))
    record = {"mode": args.mode, "about": about, "seeds": args.seeds, "parts": parts, **provenance(files)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"default_recipe_{args.mode}.json", record)
    atomic_write_text(RESULTS / f"default_recipe_{args.mode}.md", markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
