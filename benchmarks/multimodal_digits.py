"""Fusion benchmark: each modality carries only its own part of the labels, so fusion must beat each alone.

    OMP_NUM_THREADS=1 python benchmarks/multimodal_digits.py [--train 3000 --test 1000 --epochs 15]

How an example is built (all three sources real, train and test drawn from disjoint pools):
  image    a multi-digit canvas from load_digits (benchmarks/image_canvases.py)   -> labels d0..d9
  text     a GoEmotions comment (shared/data/goemotions train / test)             -> labels e:<emotion>
  features a Mulan scene vector, 294 numbers (shared/data/mulan/scene train/test) -> labels s:<scene>
The example's labels are the union. An image says nothing about the text's emotions and so on, so
a model reading one modality can at best get that modality's labels right; only a model reading
all three can get the whole set. In 15% of the training examples one random modality is dropped
(with its labels): fusion must mask it. Every model is SGM with the same decoder and sizes:
text = the bi-LSTM encoder, image = the CNN encoder, features = the features encoder, fusion =
all three (modality embedding; and the gated mix), all scored on the same test examples.
"fusion_missing_one" scores the fused model on test examples with one random modality removed
(gold = the labels of what is left). Writes benchmarks/results/multimodal_digits.json and .md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, provenance  # noqa: E402
from image_canvases import digit_pools, make_canvases  # noqa: E402

from seq2labels.data.readers import Example  # noqa: E402
from seq2labels.data.tabular import read_arff  # noqa: E402
from seq2labels.evaluation.metrics import evaluate_label_lists  # noqa: E402
from seq2labels.pipeline.config import load_config  # noqa: E402
from seq2labels.pipeline.recipe import split_validation, train  # noqa: E402
from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402

GOEMOTIONS = SHARED_DATA / "goemotions"
SCENE = SHARED_DATA / "mulan" / "scene"
SHOWN = ("micro_f1", "macro_f1", "example_f1", "subset_accuracy", "hamming_loss")
COMMON = ["image.size=32", "image.color=gray", "image.channels=32,64,128", "model.encoder_hidden=64",
          "model.decoder_hidden=128", "model.label_embedding_dim=64", "model.embedding_dim=64", "model.dropout=0.2",
          "train.lr=0.002", "train.batch_size=32", "train.progress=false", "text.min_count=2", "text.max_len=60"]


def goemotions(split: str, n: int, seed: int) -> list[tuple[str, list[str]]]:
    with gzip.open(GOEMOTIONS / f"{split}.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    pick = np.random.default_rng(seed).choice(len(rows), size=n, replace=False)
    return [(rows[i]["text"], [f"e:{lab}" for lab in rows[i]["labels"]]) for i in pick]


def scene(split: str, n: int, seed: int) -> list[tuple[tuple[float, ...], list[str]]]:
    data = read_arff(SCENE / f"scene-{split}.arff.gz", xml=SCENE / "scene.xml")
    X = np.asarray(data.X, dtype=np.float64)
    pick = np.random.default_rng(seed).choice(len(X), size=n, replace=n > len(X))
    return [(tuple(X[i].tolist()), [f"s:{data.label_names[j]}" for j in np.flatnonzero(data.Y[i])]) for i in pick]


def build(split: str, n: int, seed: int, pool) -> list[dict]:
    canvases = make_canvases(pool, n, seed=seed)
    texts, vectors = goemotions(split, n, seed), scene(split, n, seed)
    return [{"image": (canvases.images[i], canvases.labels[i]), "text": texts[i], "features": vectors[i]}
            for i in range(n)]


def to_example(parts: dict, keep=("image", "text", "features")) -> Example:
    labels = [lab for m in keep for lab in parts[m][1]]
    return Example(text=parts["text"][0] if "text" in keep else "", labels=tuple(dict.fromkeys(labels)),
                   image=parts["image"][0] if "image" in keep else None,
                   features=parts["features"][0] if "features" in keep else None)


def drop_one(rows: list[dict], fraction: float, seed: int) -> list[Example]:
    rng = np.random.default_rng(seed)
    out = []
    for parts in rows:
        keep = ["image", "text", "features"]
        if rng.random() < fraction:
            keep.remove(keep[int(rng.integers(3))])
        out.append(to_example(parts, tuple(keep)))
    return out


def only(examples: list[Example], modality: str) -> list[Example]:
    """What a one-modality model is trained on: the examples carrying it, that modality only (all gold labels)."""
    out = []
    for ex in examples:
        if modality == "text" and ex.text:
            out.append(Example(text=ex.text, labels=ex.labels))
        elif modality == "image" and ex.image is not None:
            out.append(Example(text="", labels=ex.labels, image=ex.image))
        elif modality == "features" and ex.features is not None:
            out.append(Example(text="", labels=ex.labels, features=ex.features))
    return out


def fit_and_score(name: str, encoder: str, train_ex, test_sets: dict, args, extra=()) -> dict:
    cfg = load_config(None, [f"model.encoder={encoder}", f"train.epochs={args.epochs}",
                             f"train.patience={args.epochs}", f"train.seed={args.seed}", *COMMON, *extra])
    tr, va = split_validation(train_ex, 0.1, args.seed)
    started = time.perf_counter()
    generator, result = train(cfg, train_examples=tr, valid_examples=va)
    seconds = time.perf_counter() - started
    out = {}
    for key, test in test_sets.items():
        preds = generator.predict_examples(test)
        metrics = evaluate_label_lists([list(ex.labels) for ex in test], [p.labels for p in preds],
                                       sorted({lab for ex in [*train_ex, *test] for lab in ex.labels}))
        out[key] = {**{k: float(v) for k, v in metrics.items()}, "train_seconds": round(seconds, 1),
                    "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "encoder": encoder}
        print(name, key, {k: round(metrics[k], 4) for k in SHOWN}, f"{seconds:.0f}s", flush=True)
    return out


def markdown(result: dict) -> str:
    rows = [k for k in ("text", "image", "features", "fusion", "fusion_gate", "fusion_missing_one") if k in result]
    lines = ["# Fusion: text (GoEmotions) + image (load_digits canvases) + features (Mulan scene)", "",
             f"{result['dataset']['train']} train / {result['dataset']['test']} test examples; each modality carries "
             "only its own labels (see benchmarks/multimodal_digits.py for how the data is built). Command: "
             f"`{result['command']}`, commit {result['commit']}.", "",
             "| model | " + " | ".join(SHOWN) + " | train s |", "|---|" + "---:|" * (len(SHOWN) + 1)]
    for key in rows:
        m = result[key]
        lines.append(f"| {key} | " + " | ".join(f"{m[k]:.4f}" for k in SHOWN) + f" | {m['train_seconds']} |")
    lines += ["", "fusion_missing_one: the fused model on the test examples with one random modality removed "
              "(gold = the labels of the modalities left).", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=3000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "multimodal_digits"))
    args = p.parse_args()
    torch.set_num_threads(1)
    train_pool, test_pool = digit_pools(args.seed)
    train_rows = build("train", args.train, args.seed, train_pool)
    test_rows = build("test", args.test, args.seed + 1, test_pool)
    train_ex = drop_one(train_rows, 0.15, args.seed)
    test_full = [to_example(parts) for parts in test_rows]
    test_missing = drop_one(test_rows, 1.0, args.seed + 2)
    result: dict = {}
    for modality, encoder in (("text", "rnn"), ("image", "cnn"), ("features", "features")):
        test = [replace(ex, text=ex.text if modality == "text" else "",
                        image=ex.image if modality == "image" else None,
                        features=ex.features if modality == "features" else None) for ex in test_full]
        result[modality] = fit_and_score(modality, encoder, only(train_ex, modality), {"full": test}, args)["full"]
    fused = fit_and_score("fusion", "fusion", train_ex, {"full": test_full, "missing": test_missing}, args)
    result["fusion"], result["fusion_missing_one"] = fused["full"], fused["missing"]
    result["fusion_gate"] = fit_and_score("fusion_gate", "fusion", train_ex, {"full": test_full}, args,
                                          extra=["model.fusion=gate"])["full"]
    prov = provenance([GOEMOTIONS / "train.jsonl.gz", GOEMOTIONS / "test.jsonl.gz", SCENE / "scene-train.arff.gz",
                       SCENE / "scene-test.arff.gz"])
    result.update(command=prov["command"], commit=prov["git_commit"], machine=prov["machine"],
                  dataset={"name": "multimodal_digits", "train": args.train, "test": args.test, "seed": args.seed,
                           "train_examples_missing_one_modality": 0.15},
                  provenance=prov)
    atomic_write_json(Path(args.out + ".json"), result)
    atomic_write_text(Path(args.out + ".md"), markdown(result))


if __name__ == "__main__":
    main()
