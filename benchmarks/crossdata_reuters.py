"""Cross-data-set evaluation of the Reuters-21578 SGM model (``seq2labels evaluate --match-labels/--label-map``).

    OMP_NUM_THREADS=1 python benchmarks/crossdata_reuters.py [--model benchmarks/runs/reuters21578-sgm/model]

No two shared text data sets have labels in common (Reuters topic codes, GoEmotions emotions and
AAPD arXiv subjects: 0 exact and 0 case-insensitive matches; the script recounts them), so the
model is evaluated on data sets derived from the Reuters-21578 ModApte test split:

* ``r10``: the classic R(10) subset, the test documents that carry at least one of the 10 most
  frequent training topics, with only those 10 topics kept as gold labels. The model's other 80
  labels are model-only: their predictions are dropped.
* ``r10_grain``: the same documents with ``wheat`` and ``corn`` merged into ``grain`` in the gold
  labels, evaluated with and without ``benchmarks/crossdata/reuters_grain_merge.tsv``
  (``wheat, corn, barley, oat, rice, rye, sorghum -> grain``).
* ``identity``: the full test split, matched by name; every label is shared, so the numbers must
  equal plain ``seq2labels evaluate`` (checked here).

The derived files go to benchmarks/runs/crossdata/ (git-ignored; rebuilt from the shared test file
on every run, their checksums recorded). Results: benchmarks/results/crossdata_reuters21578.json
and .md, with the commands, git commit, machine and data checksums.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, SHARED_DATA, provenance  # noqa: E402

from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from seq2labels.apps.cli import main as cli_main  # noqa: E402

REUTERS = SHARED_DATA / "reuters21578"
OTHER_TEXT_SETS = {"goemotions": ["train", "valid", "test"], "aapd_partial": ["valid", "test"]}
MAP_FILE = ROOT / "benchmarks" / "crossdata" / "reuters_grain_merge.tsv"
WORK = ROOT / "benchmarks" / "runs" / "crossdata"
SHOWN = ("micro_f1", "macro_f1", "example_f1", "subset_accuracy", "hamming_loss", "micro_precision",
         "micro_recall", "label_position_deviation", "n_docs")


def read_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as raw:          # mtime=0: same bytes on every run
        raw.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
    return path


def label_overlap() -> dict:
    """Label overlap between Reuters and the other shared text sets (exact and case-insensitive)."""
    reuters = {lab for split in ("train", "test") for r in read_jsonl(REUTERS / f"{split}.jsonl.gz")
               for lab in r["labels"]}
    out = {}
    for name, splits in OTHER_TEXT_SETS.items():
        labels = {lab for s in splits for r in read_jsonl(SHARED_DATA / name / f"{s}.jsonl.gz") for lab in r["labels"]}
        folded = {lab.casefold() for lab in labels}
        out[name] = {"labels": len(labels), "exact": len(reuters & labels),
                     "casefold": sum(1 for lab in reuters if lab.casefold() in folded)}
    return out


def build_data() -> dict[str, Path]:
    train, test = read_jsonl(REUTERS / "train.jsonl.gz"), read_jsonl(REUTERS / "test.jsonl.gz")
    counts = Counter(lab for r in train for lab in set(r["labels"]))
    top10 = sorted(counts, key=lambda lab: (-counts[lab], lab))[:10]
    r10 = []
    for r in test:
        kept = list(dict.fromkeys(lab for lab in r["labels"] if lab in top10))
        if kept:
            r10.append({"id": r["id"], "text": r["text"], "labels": kept})
    merged = [{**r, "labels": list(dict.fromkeys("grain" if lab in ("wheat", "corn") else lab
                                                 for lab in r["labels"]))} for r in r10]
    return {"top10": top10,
            "r10": write_jsonl(WORK / "reuters_r10_test.jsonl.gz", r10),
            "r10_grain": write_jsonl(WORK / "reuters_r10_grain_test.jsonl.gz", merged)}


def run_cli(args: list[str], out: Path) -> tuple[dict, float]:
    started = time.perf_counter()
    rc = cli_main([*args, "--output", str(out), "-q"])
    if rc != 0:
        raise SystemExit(f"seq2labels {' '.join(args)} failed with exit status {rc}")
    return json.loads(out.read_text(encoding="utf-8")), time.perf_counter() - started


def markdown(record: dict) -> str:
    lines = ["# Cross-data-set evaluation: the Reuters-21578 SGM model", "",
             f"Model `{record['model']}`, beam {record['beam_size']}. Made by `{record['command']}`.", "",
             "| run | data | labels shared / model-only / data-only | docs in / dropped | gold / pred labels dropped "
             "| pred labels merged | micro-F1 | macro-F1 | example-F1 | subset acc. | label pos. dev. |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, run in record["runs"].items():
        m, c = run["metrics"], run["metrics"].get("crossdata")
        if c:
            lab = c["labels"]
            counts = (f"{lab['n_shared']} / {lab['n_model_only']} / {lab['n_data_only']} | "
                      f"{c['n_docs_in']} / {c['docs_dropped_no_shared_gold']} | "
                      f"{c['gold_labels_dropped']} / {c['pred_labels_dropped']} | {c['pred_labels_merged']}")
        else:
            counts = "(plain evaluate) | | | "
        lines.append(f"| {name} | {run['data_name']} | {counts} | {m['micro_f1']:.4f} | {m['macro_f1']:.4f} | "
                     f"{m['example_f1']:.4f} | {m['subset_accuracy']:.4f} | {m['label_position_deviation']:.4f} |")
    lines += ["", "Label overlap of Reuters-21578 with the other shared text sets (exact / case-insensitive): "
              + "; ".join(f"{k}: {v['exact']} / {v['casefold']}" for k, v in record["label_overlap"].items())
              + ", so no real pair of data sets shares labels; the runs use data derived from the Reuters test split.",
              ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "benchmarks" / "runs" / "reuters21578-sgm" / "model"))
    parser.add_argument("--beam-size", type=int, default=5)
    args = parser.parse_args()
    overlap = label_overlap()
    data = build_data()
    test = REUTERS / "test.jsonl.gz"
    beam = ["--beam-size", str(args.beam_size)]
    plan = {
        "identity_plain": ("ModApte test (3,019 docs, 90 labels)", [str(test)]),
        "identity_by_name": ("ModApte test", [str(test), "--match-labels", "name"]),
        "r10_by_name": ("R(10) of ModApte test", [str(data["r10"]), "--match-labels", "name"]),
        "r10_grain_by_name": ("R(10), wheat+corn merged into grain", [str(data["r10_grain"]), "--match-labels", "name"]),
        "r10_grain_with_map": ("R(10), wheat+corn merged into grain",
                               [str(data["r10_grain"]), "--label-map", str(MAP_FILE)]),
    }
    runs = {}
    for name, (data_name, extra) in plan.items():
        cli = ["evaluate", args.model, *extra, *beam]
        metrics, seconds = run_cli(cli, WORK / f"{name}.json")
        runs[name] = {"data_name": data_name, "command": "seq2labels " + shlex.join(cli), "seconds": round(seconds, 1),
                      "metrics": metrics}
        print(f"{name}: micro-F1 {metrics['micro_f1']:.4f} ({seconds:.0f}s)", flush=True)
    plain, by_name = runs["identity_plain"]["metrics"], runs["identity_by_name"]["metrics"]
    identity_ok = all(abs(plain[k] - by_name[k]) < 1e-12 for k in SHOWN if k != "n_docs")
    record = {
        "model": args.model, "beam_size": args.beam_size, "r10_labels": data["top10"],
        "label_map": str(MAP_FILE.relative_to(ROOT)), "label_overlap": overlap,
        "identity_check_equal": identity_ok, "runs": runs,
        **provenance([test, REUTERS / "train.jsonl.gz", data["r10"], data["r10_grain"], MAP_FILE]
                     + [SHARED_DATA / n / f"{s}.jsonl.gz" for n, ss in OTHER_TEXT_SETS.items() for s in ss]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "crossdata_reuters21578.json", record)
    atomic_write_text(RESULTS / "crossdata_reuters21578.md", markdown(record))
    print(markdown(record))
    if not identity_ok:
        raise SystemExit("identity check failed: --match-labels name on the model's own test set differs from "
                         "plain evaluate")


if __name__ == "__main__":
    main()
