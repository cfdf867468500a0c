"""SGM on Mulan scene (294 image features) with the features encoder, beside the CV table's peers.

    OMP_NUM_THREADS=1 python benchmarks/scene_sgm.py [--folds 10 --epochs 20]

Protocol: the first repeat of the iteratively stratified 10-fold split that
configs/mulan/compare_cv.yaml uses (seq2labels.evaluation.protocols.repeated_kfold_indices,
random_state 0; scene's train and test files stacked, as there). The table's rows are 3 repeats
(30 folds); this run is 1 repeat (10 folds), so its spread is over 10 folds. SGM carves its own
seeded 10% validation split from each training fold for early stopping. Writes
benchmarks/results/scene_sgm.json and .md (the scene rows of compare_mulan_cv.json copied beside it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, provenance  # noqa: E402

from seq2labels.data.readers import Example  # noqa: E402
from seq2labels.data.tabular import read_arff  # noqa: E402
from seq2labels.evaluation.metrics import evaluate_label_lists  # noqa: E402
from seq2labels.evaluation.protocols import repeated_kfold_indices  # noqa: E402
from seq2labels.pipeline.config import load_config  # noqa: E402
from seq2labels.pipeline.recipe import split_validation, train  # noqa: E402
from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402

SCENE = SHARED_DATA / "mulan" / "scene"
SHOWN = ("hamming_loss", "micro_precision", "micro_recall", "micro_f1", "macro_f1", "subset_accuracy", "example_f1")


def load_scene():
    parts = [read_arff(SCENE / f"scene-{s}.arff.gz", xml=SCENE / "scene.xml") for s in ("train", "test")]
    X = np.vstack([np.asarray(p.X, dtype=np.float64) for p in parts])
    Y = np.vstack([p.Y for p in parts])
    return X, Y, parts[0].label_names


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folds", type=int, default=10, help="how many of the first repeat's 10 folds to run")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", default=str(RESULTS / "scene_sgm"))
    args = p.parse_args()
    torch.set_num_threads(1)
    X, Y, names = load_scene()
    examples = [Example(text="", labels=tuple(names[j] for j in np.flatnonzero(y)), features=tuple(x.tolist()))
                for x, y in zip(X, Y)]
    cfg = load_config(None, ["model.encoder=features", "model.encoder_hidden=128", "model.decoder_hidden=128",
                             "model.label_embedding_dim=64", "model.feature_slots=8", "model.dropout=0.3",
                             f"train.epochs={args.epochs}", "train.patience=5", "train.lr=0.002",
                             "train.batch_size=32", "train.progress=false"])
    folds = []
    for k, (tr_idx, te_idx) in enumerate(repeated_kfold_indices(Y, 10, 3, 0)):
        if k >= args.folds:
            break
        tr, va = split_validation([examples[i] for i in tr_idx], 0.1, k)
        started = time.perf_counter()
        generator, result = train(cfg, train_examples=tr, valid_examples=va)
        seconds = time.perf_counter() - started
        test = [examples[i] for i in te_idx]
        preds = generator.predict_examples(test)
        m = evaluate_label_lists([list(ex.labels) for ex in test], [p.labels for p in preds], names)
        folds.append({**{key: float(m[key]) for key in SHOWN}, "train_seconds": round(seconds, 1),
                      "best_epoch": result.best_epoch})
        print(k, {key: round(folds[-1][key], 4) for key in SHOWN}, flush=True)
    summary = {key: float(np.mean([f[key] for f in folds])) for key in SHOWN}
    summary.update({f"{key}_std": float(np.std([f[key] for f in folds], ddof=1)) for key in SHOWN})
    table = json.loads((RESULTS / "compare_mulan_cv.json").read_text())
    peers = [r for r in table["rows"] if r["dataset"] == "scene" and not r.get("source")]
    result = {"dataset": "mulan scene (train + test stacked)", "protocol": f"first {len(folds)} folds of repeat 1 "
              "of the 3x10 iteratively stratified CV (random_state 0)", "sgm": summary, "folds": folds,
              "peers_from_compare_mulan_cv": [{k: r[k] for k in ("method", "protocol", *SHOWN,
                                                                  *(f"{s}_std" for s in SHOWN))} for r in peers],
              "provenance": provenance([SCENE / "scene-train.arff.gz", SCENE / "scene-test.arff.gz"])}
    atomic_write_json(Path(args.out + ".json"), result)
    lines = ["# Mulan scene: SGM (features encoder) beside the CV table", "", result["protocol"] + "; peers copied from "
             "benchmarks/results/compare_mulan_cv.json (3x10-fold). Command: `" + result["provenance"]["command"] + "`.",
             "", "| method | protocol | " + " | ".join(SHOWN) + " |", "|---|---|" + "---:|" * len(SHOWN)]
    lines.append(f"| SGM (features encoder, greedy) | {len(folds)} folds | "
                 + " | ".join(f"{summary[k]:.4f} ± {summary[k + '_std']:.4f}" for k in SHOWN) + " |")
    for r in peers:
        lines.append(f"| {r['method']} | {r['protocol']} | " + " | ".join(f"{r[k]:.4f} ± {r[k + '_std']:.4f}" for k in SHOWN) + " |")
    atomic_write_text(Path(args.out + ".md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
