"""Ensembles and per-label thresholds on the test split: each single model, their ensemble, each
with and without thresholds tuned on the validation split.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/ensemble_thresholds.py --dataset reuters21578 \
        --runs '/work/bench/benchmarks/runs/reuters21578-sgm_w2v_bow-seed{seed}/model' --seeds 0 1 2

Each model folder was trained by the recipe with a seeded validation split carved from train
(``data.valid_fraction``, ``train.seed``): the split is rebuilt here with
``seq2labels.pipeline.recipe.split_validation`` from the folder's own run config, and checked
against what the folder recorded (train/valid document counts and every label's training count,
the train file's sha256). Thresholds of a single model are tuned on its own validation split.
The ensemble's are tuned on member 0's split; the other members trained on most of those
documents (the overlap is recorded), so their scores there are optimistic: read that row as
"what tuning on a partly seen split gives", not as a clean held-out tuning. Models trained with a
validation file of their own (``data.valid``, e.g. GoEmotions' dev split) are tuned on that file, which
no member trained on.

Writes benchmarks/results/ensemble_<dataset>.{json,md} (or ``--stem``) with command, commit, machine,
data checksums.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, provenance  # noqa: E402

from seq2labels.data.readers import read_examples  # noqa: E402
from seq2labels.evaluation.thresholds import OBJECTIVES  # noqa: E402
from seq2labels.pipeline.ensemble import EnsembleGenerator  # noqa: E402
from seq2labels.pipeline.generator import load_model  # noqa: E402
from seq2labels.pipeline.recipe import split_validation, validation_seed  # noqa: E402
from seq2labels.pipeline.thresholds import tune_generator  # noqa: E402
from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from seq2labels.utils.provenance import sha256  # noqa: E402

METRICS = ("micro_f1", "macro_f1", "rare_macro_f1", "example_f1", "micro_precision", "micro_recall")


def validation_split(generator, folder: Path):
    """The validation examples the recipe held out for this model, checked against the folder."""
    cfg = generator.config
    if cfg.data.valid:
        return read_examples(cfg.data.valid, cfg.data.format), None
    summary = generator.data_summary or {}
    files = {f["role"]: f for f in summary.get("files", [])}
    train_file = Path(cfg.data.train)
    if "sha256" in files.get("train", {}) and files["train"]["sha256"] != sha256(train_file):
        raise SystemExit(f"{folder}: {train_file} is not the file the model was trained on (sha256 differs)")
    examples = read_examples(str(train_file), cfg.data.format)
    train, valid = split_validation(examples, cfg.data.valid_fraction, validation_seed(cfg))
    counts: dict[str, int] = {}
    for ex in train:
        for label in set(ex.labels):
            counts[label] = counts.get(label, 0) + 1
    if (len(train), len(valid)) != (summary.get("train_docs"), summary.get("valid_docs")) or \
            counts != summary.get("label_counts"):
        raise SystemExit(f"{folder}: the rebuilt validation split does not match the one the model recorded")
    return valid, {ex.text for ex in train}


def member_folders(patterns: list[str], seeds: list[int]) -> tuple[list[str], list[Path]]:
    """Every pattern with every seed. Names start with "seed" (the single-model rows); with several
    patterns they also say which pattern (1-based, in the order given)."""
    names, folders = [], []
    for k, pattern in enumerate(patterns, start=1):
        for seed in seeds:
            names.append(f"seed {seed}" if len(patterns) == 1 else f"seed {seed} (runs {k})")
            folders.append(Path(pattern.format(seed=seed)))
    return names, folders


def evaluate(generator, test, beam: int) -> dict:
    started = time.perf_counter()
    metrics = generator.evaluate(test, beam_size=beam)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    return metrics


def rows_for(name: str, generator, valid, test, beam: int, objectives: list[str], note: str = "") -> list[dict]:
    """The model without thresholds, then with thresholds tuned on ``valid`` for each objective."""
    generator.thresholds, generator.use_thresholds = None, False
    rows = [_row(name, "off", evaluate(generator, test, beam), 0, len(valid), note)]
    for objective in objectives:
        generator.thresholds = tune_generator(generator, valid, beam_size=beam, objective=objective)
        generator.use_thresholds = True
        tuned = evaluate(generator, test, beam)
        rows.append(_row(name, _tuned_name(objective, objectives), tuned, generator.thresholds.tuned_count,
                         len(valid), note))
        generator.thresholds, generator.use_thresholds = None, False
    return rows


def _tuned_name(objective: str, objectives: list[str]) -> str:
    """"tuned" when only the per-label objective ran (the name older result files use)."""
    return "tuned" if objectives == ["macro_f1"] else f"tuned for {objective}"


def _row(name: str, thresholds: str, metrics: dict, tuned: int, valid_docs: int, note: str) -> dict:
    return {"model": name, "thresholds": thresholds, **{m: metrics.get(m) for m in METRICS},
            "rare_label_count": metrics.get("rare_label_count"), "tuned_labels": tuned, "valid_docs": valid_docs,
            "test_docs": metrics["n_docs"], "seconds": metrics["seconds"], "note": note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="reuters21578")
    parser.add_argument("--runs", required=True, nargs="+",
                        help="model folder pattern with {seed}; several patterns make a mixed ensemble "
                             "(every pattern with every seed; validation split and thresholds from the first)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stem", help="result file name without extension (default ensemble_<dataset>)")
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=["macro_f1"],
                        help="threshold objectives to tune and report, one row each (default macro_f1)")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)

    test_file = SHARED_DATA / args.dataset / "test.jsonl.gz"
    test = read_examples(str(test_file))
    names, folders = member_folders(args.runs, args.seeds)
    members, splits, seen = [], [], []
    rows: list[dict] = []
    for name, folder in zip(names, folders):
        generator = load_model(folder)
        valid, train_texts = validation_split(generator, folder)
        members.append(generator)
        splits.append(valid)
        seen.append(train_texts)
        rows += rows_for(name, generator, valid, test, args.beam_size, args.objectives)
        print(*rows[-1 - len(args.objectives):], sep="\n", flush=True)
    overlap = [sum(ex.text in texts for ex in splits[0]) / len(splits[0]) for texts in seen[1:] if texts is not None]
    if overlap:
        note = (f"thresholds tuned on {names[0]}'s validation split; "
                + ", ".join(f"{n} trained on {o:.0%} of it" for n, o in zip(names[1:], overlap)))
    else:  # a validation file of its own: every member early-stopped on it, none trained on it
        note = "thresholds tuned on the validation file, which every member held out (none trained on it)"
    ensemble = EnsembleGenerator(members)
    rows += rows_for(f"ensemble of {len(members)}", ensemble, splits[0], test, args.beam_size, args.objectives, note)
    print(*rows[-1 - len(args.objectives):], sep="\n", flush=True)

    kinds = ["off", *(_tuned_name(o, args.objectives) for o in args.objectives)]
    singles = {t: [r for r in rows if r["model"].startswith("seed") and r["thresholds"] == t] for t in kinds}
    mean_single = {t: {m: statistics.fmean(r[m] for r in rs) for m in METRICS if all(r[m] is not None for r in rs)}
                   for t, rs in singles.items()}
    std_single = {t: {m: statistics.stdev(r[m] for r in rs) for m in ("micro_f1", "macro_f1")}
                  for t, rs in singles.items() if len(rs) > 1}
    record = {"benchmark": "ensemble_thresholds", "dataset": args.dataset, "beam_size": args.beam_size,
              "models": [str(f) for f in folders], "seeds": args.seeds,
              "ensemble_labels": len(ensemble.label_vocab.labels),
              "member_labels": [len(m.label_vocab.labels) for m in members],
              "score": "per-label score = max step probability along the decoded beam path (label_scores)",
              "rare": "rare_macro_f1: macro-F1 over labels with < 50 training documents of that model "
                      "(the ensemble: member 0's counts); labels unseen in training count as rare",
              "objectives": args.objectives, "rows": rows, "mean_single": mean_single, "std_single": std_single,
              "provenance": provenance(sorted((SHARED_DATA / args.dataset).glob("*.jsonl.gz")))}
    out = RESULTS / (args.stem or f"ensemble_{args.dataset}")
    atomic_write_json(out.with_suffix(".json"), record)
    atomic_write_text(out.with_suffix(".md"), to_markdown(record))
    print(to_markdown(record))


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _pm(std) -> str:
    return "" if std is None else f" ± {std:.4f}"


def to_markdown(r: dict) -> str:
    p = r["provenance"]
    lines = [f"# Ensembles and per-label thresholds: {r['dataset']}, beam {r['beam_size']}", "",
             f"Test split ({r['rows'][0]['test_docs']} documents). Models: " + ", ".join(f"`{m}`" for m in r["models"])
             + f" ({', '.join(map(str, r['member_labels']))} labels; the ensemble decodes their union of "
             f"{r['ensemble_labels']}). {r['score']}; thresholds tuned per label on the validation split "
             "(labels with < 3 validation positives, or whose best threshold does not beat the decoded set, "
             f"keep the decoded decision). Objective{'s' if len(r.get('objectives', [])) > 1 else ''}: "
             f"{', '.join(r.get('objectives', ['macro_f1']))} (macro_f1: each label's own F1; micro_f1: the "
             f"pooled F1 of all labels, tuned label by label in sweeps). {r['rare']}.", "",
             "| model | thresholds | micro-F1 | macro-F1 | rare macro-F1 (labels) | example-F1 | micro-P | micro-R "
             "| tuned labels | valid docs | eval s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['model']} | {row['thresholds']} | {_f(row['micro_f1'])} | {_f(row['macro_f1'])} "
                     f"| {_f(row['rare_macro_f1'])} ({row['rare_label_count']}) | {_f(row['example_f1'])} "
                     f"| {_f(row['micro_precision'])} | {_f(row['micro_recall'])} | {row['tuned_labels']} "
                     f"| {row['valid_docs']} | {row['seconds']:.1f} |")
    for t, stats in r["mean_single"].items():
        spread = r.get("std_single", {}).get(t, {})
        lines.append(f"| mean of single models | {t} | {_f(stats.get('micro_f1'))}{_pm(spread.get('micro_f1'))} "
                     f"| {_f(stats.get('macro_f1'))}{_pm(spread.get('macro_f1'))} "
                     f"| {_f(stats.get('rare_macro_f1'))} | {_f(stats.get('example_f1'))} "
                     f"| {_f(stats.get('micro_precision'))} | {_f(stats.get('micro_recall'))} | | | |")
    notes = sorted({row["note"] for row in r["rows"] if row["note"]})
    lines += ["", *[f"Note: {n}." for n in notes], "",
              f"Command: `{p['command']}`; commit `{p['git_commit']}`; {p['date_utc']}; machine: {p['machine']}. "
              "Eval seconds share a 2-core machine with other jobs: not a speed measurement.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
