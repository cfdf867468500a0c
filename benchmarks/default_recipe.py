"""The no-config recipe (`seq2labels train --train X --test Y`) checked on data nobody tuned for (issue 15).

    OMP_NUM_THREADS=1 python benchmarks/default_recipe.py --seeds 0 1 2 [--data goemotions_3k]

The defaults were chosen from the Reuters-21578 and GoEmotions runs (benchmarks/results/sgm.md and the
issue-15 ablations). This checks them on AAPD (partial), which none of those choices looked at: trained on
its 1,000 validation abstracts (the recipe carves its own seeded 10% for early stopping), tested on its
1,000 test abstracts. Rows: the no-config default (`model.encoder: auto`, which on this set's 900 training
texts picks the pretrained all-MiniLM-L6-v2, frozen, when the transformer extra is installed; each run's
resolved encoder is recorded), the bi-LSTM with the same defaults (`--encoder rnn`, the default before
`auto`), and linear peers fitted on the same files: binary relevance and a classifier chain of LinearSVC on
TF-IDF (1-2 grams), the first also with LibMultiLabel's top-1 fallback. Thresholds are tuned during training
but applied only where a row says so. Each SGM model is decoded greedily (the default before issue 15) and
with beam 5, each without thresholds, with the per-label thresholds tuned on its validation split for each
label's own F1 (`_thresholds`, the training's `decode.threshold_objective` default) and with them re-tuned on
the same split for the pooled micro-F1 (`_thresholds_micro`), so decoding choices cost no extra training.
Writes benchmarks/results/default_recipe_aapd.json and .md with command, commit, machine, data checksums.

`--data goemotions_3k` runs the same rows on a seeded 3,000-comment sample of GoEmotions' training split
(tested on its whole test split; default_recipe_goemotions_3k.*). GoEmotions was tuned on, so that is no
check of the defaults but of the size rule behind `auto`: at its full 43k texts the bi-LSTM won.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, provenance  # noqa: E402

from seq2labels.data.readers import read_examples  # noqa: E402
from seq2labels.experiments.compare import run_comparison  # noqa: E402
from seq2labels.pipeline.config import load_config  # noqa: E402
from seq2labels.pipeline.recipe import split_validation, train, validation_seed  # noqa: E402
from seq2labels.pipeline.thresholds import tune_generator  # noqa: E402
from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402

# (name, overrides on the package defaults). Thresholds are tuned on the validation split during
# training, then every decoding is measured with them off and on: one training per seed covers the
# pre-issue-15 default (greedy, no thresholds), beam 5, and beam 5 with thresholds.
CANDIDATES = (
    ("no-config default (encoder auto)", ["model.encoder=auto", "decode.tune_thresholds=true"]),
    ("defaults with --encoder rnn (bi-LSTM)", ["model.encoder=rnn", "decode.tune_thresholds=true"]),
)
DECODINGS = ((1, 0), (5, 0), (5, 1))   # (beam size, min_labels)
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
    decodings = {}
    for suffix, thresholds in (("", None), ("_thresholds", generator.thresholds),
                               ("_thresholds_micro", micro_thresholds(generator, cfg, train_docs))):
        generator.use_thresholds = thresholds is not None
        if thresholds is not None:
            generator.thresholds = thresholds
        for beam, min_labels in DECODINGS:
            key = f"beam{beam}_min{min_labels}{suffix}"
            decodings[key] = _metrics(generator.evaluate(test_docs, beam_size=beam, min_labels=min_labels))
    return {"seed": seed, "encoder": generator.config.model.encoder, "pretrained": generator.config.model.pretrained,
            "decodings": decodings, "train_seconds": round(seconds, 1),
            "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "default_decoding": {"beam_size": cfg.decode.beam_size, "min_labels": cfg.decode.min_labels},
            "resolved_train": cfg.to_dict()["train"]}


def micro_thresholds(generator, cfg, train_docs):
    """Thresholds re-tuned for the pooled micro-F1 on the same validation split the recipe carved (the
    training tuned them for each label's own F1): a second objective without a second training."""
    _, valid_docs = split_validation(train_docs, cfg.data.valid_fraction, validation_seed(cfg))
    return tune_generator(generator, valid_docs, objective="micro_f1")


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
            encoders = "/".join(sorted({x.get("encoder", "?") for x in r["runs"]}))
            lines.append(f"| SGM: {r['name']} -> {encoders} | {r['micro_f1']:.4f} ± {r['micro_f1_std']:.4f} | "
                         f"{r['macro_f1']:.4f} ± {r['macro_f1_std']:.4f} | {r['example_f1']:.4f} | "
                         f"{r['subset_accuracy']:.4f} | {secs:.0f} |")
        for r in part["peers"]:
            lines.append(f"| {r['name']} | {r['micro_f1']:.4f} | {r['macro_f1']:.4f} | {r['example_f1']:.4f} | "
                         f"{r['subset_accuracy']:.4f} | |")
        lines.append("")
    return "\n".join(lines)


def aapd_part():
    """AAPD (partial): its 1,000 validation abstracts train, its 1,000 test abstracts test."""
    data = SHARED_DATA / "aapd_partial"
    files = [data / "valid.jsonl.gz", data / "test.jsonl.gz"]
    return "check on AAPD (partial)", "aapd_partial", read_examples(files[0]), read_examples(files[1]), files


def goemotions_small_part(n: int = 3000):
    """A seeded 3,000-comment sample of GoEmotions' training split, tested on its whole test split: the
    size rule's check on the one set where the bi-LSTM won at full size (43k texts)."""
    import random
    data = SHARED_DATA / "goemotions"
    files = [data / "train.jsonl.gz", data / "test.jsonl.gz"]
    train_docs = read_examples(files[0])
    train_docs = [train_docs[i] for i in sorted(random.Random(0).sample(range(len(train_docs)), n))]
    return (f"GoEmotions, {n} training comments", f"goemotions_{n // 1000}k", train_docs,
            read_examples(files[1]), files)


PARTS = {"aapd": aapd_part, "goemotions_3k": goemotions_small_part}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", choices=sorted(PARTS), default="aapd",
                        help="aapd: the unseen set; goemotions_3k: a small sample of a tuned-on set (the size rule)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    mode, name, train_docs, test_docs, files = PARTS[args.data]()
    part = measure(name, train_docs, test_docs, CANDIDATES, args.seeds, files)
    paragraphs = [p.replace("\n", " ") for p in __doc__.split("\n\n")]
    about = paragraphs[2] if args.data == "aapd" else f"{paragraphs[3]} The rows, as on AAPD: {paragraphs[2]}"
    record = {"mode": mode, "about": about,
              "seeds": args.seeds, "parts": [part], **provenance(files)}
    stem = f"default_recipe_{args.data}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{stem}.json", record)
    atomic_write_text(RESULTS / f"{stem}.md", markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
