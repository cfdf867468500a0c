"""SGM with the CNN image encoder on multi-digit canvases, against pixel peers, in one run.

    OMP_NUM_THREADS=1 python benchmarks/image_digits.py [--train 3000 --test 1000 --epochs 15]

Canvases: benchmarks/image_canvases.py (real load_digits digits, 1-4 distinct per 32x32 canvas,
train and test canvases from disjoint digit images). Peers on the same canvases: binary
relevance logistic regression on the 1,024 pixels, the MLP baseline (sigmoid head, BCE) on the
pixels, and a plain CNN (the same conv blocks as SGM's encoder) with a sigmoid head, thresh 0.5.
Also measured: for each correctly emitted label, whether SGM's attention peak lies on the cell
holding that digit. Writes benchmarks/results/image_digits.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, provenance  # noqa: E402
from image_canvases import digit_pools, indicator, make_canvases  # noqa: E402

from seq2labels.baselines.neural import MLPClassifier  # noqa: E402
from seq2labels.baselines.problem_transformation import BinaryRelevance  # noqa: E402
from seq2labels.data.readers import Example  # noqa: E402
from seq2labels.evaluation.metrics import multilabel_metrics  # noqa: E402
from seq2labels.pipeline.config import load_config  # noqa: E402
from seq2labels.pipeline.recipe import split_validation, train  # noqa: E402
from seq2labels.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402

NAMES = [f"d{k}" for k in range(10)]
SHOWN = ("micro_f1", "macro_f1", "example_f1", "subset_accuracy", "hamming_loss")


def sgm_run(train_c, test_c, args) -> tuple[dict, dict]:
    cfg = load_config(None, ["model.encoder=cnn", "image.size=32", "image.color=gray", "image.channels=32,64,128",
                             "model.encoder_hidden=64", "model.decoder_hidden=128", "model.label_embedding_dim=64",
                             f"train.epochs={args.epochs}", f"train.patience={args.epochs}", "train.lr=0.002",
                             "train.batch_size=32", f"train.seed={args.seed}", "train.progress=false",
                             "model.dropout=0.1"])
    examples = [Example(text="", labels=tuple(l), image=img) for img, l in zip(train_c.images, train_c.labels)]
    tr, va = split_validation(examples, 0.1, args.seed)
    started = time.perf_counter()
    generator, result = train(cfg, train_examples=tr, valid_examples=va)
    seconds = time.perf_counter() - started
    test = [Example(text="", labels=tuple(l), image=img) for img, l in zip(test_c.images, test_c.labels)]
    preds = generator.predict_examples(test, beam_size=5, return_attention=True)
    y_pred = indicator([p.labels for p in preds], NAMES)
    metrics = multilabel_metrics(indicator(test_c.labels, NAMES), y_pred)
    hits = total = 0
    for pred, placed in zip(preds, test_c.cells):
        for step, label in enumerate(pred.labels):
            if label in placed:
                total += 1
                hits += int(np.argmax(pred.attention[step]) == placed[label])
    extra = {"train_seconds": round(seconds, 1), "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
             "attention_peak_on_digit_cell": hits / max(total, 1), "attention_checked_labels": total}
    return metrics, extra


class PlainCNN(nn.Module):
    """The SGM encoder's conv blocks, flattened, one sigmoid output per label."""

    def __init__(self, channels=(32, 64, 128), n_labels: int = 10, side: int = 32):
        super().__init__()
        blocks, width = [], 1
        for out in channels:
            blocks += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        cells = (side >> len(channels)) ** 2
        self.net = nn.Sequential(*blocks, nn.Flatten(), nn.Dropout(0.1), nn.Linear(width * cells, n_labels))

    def forward(self, x):
        return self.net(x.float() / 127.5 - 1.0)                          # (batch, labels) logits


def plain_cnn_run(train_c, test_c, args) -> tuple[dict, dict]:
    torch.manual_seed(args.seed)
    model = PlainCNN()
    x = torch.from_numpy(train_c.images[:, None])                          # (n, 1, 32, 32)
    y = torch.from_numpy(indicator(train_c.labels, NAMES)).float()         # (n, 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
    gen = torch.Generator().manual_seed(args.seed)
    started = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(32):
            optimizer.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(model(x[idx]), y[idx]).backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        probs = torch.sigmoid(model(torch.from_numpy(test_c.images[:, None]))).numpy()
    metrics = multilabel_metrics(indicator(test_c.labels, NAMES), (probs > 0.5).astype(np.int64))
    return metrics, {"train_seconds": round(seconds, 1), "epochs_run": args.epochs}


def sklearn_run(estimator, train_c, test_c) -> tuple[dict, dict]:
    x_train = train_c.images.reshape(len(train_c.images), -1) / 255.0
    x_test = test_c.images.reshape(len(test_c.images), -1) / 255.0
    started = time.perf_counter()
    estimator.fit(x_train, indicator(train_c.labels, NAMES))
    seconds = time.perf_counter() - started
    metrics = multilabel_metrics(indicator(test_c.labels, NAMES), estimator.predict(x_test))
    return metrics, {"train_seconds": round(seconds, 1)}


def markdown(result: dict) -> str:
    lines = ["# Multi-digit canvases (load_digits): SGM with a CNN encoder vs pixel peers", "",
             f"{result['dataset']['train_canvases']} train / {result['dataset']['test_canvases']} test canvases, "
             f"32x32, 1-4 distinct digits each, train and test from disjoint digit images (seed "
             f"{result['dataset']['seed']}). Command: `{result['provenance']['command']}`, commit "
             f"{result['provenance']['git_commit']}.", "",
             "| method | " + " | ".join(SHOWN) + " | train s |", "|---|" + "---:|" * (len(SHOWN) + 1)]
    for name, row in result["methods"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row['metrics'][k]:.4f}" for k in SHOWN)
                     + f" | {row['train_seconds']} |")
    sgm = result["methods"]["SGM (CNN encoder, beam 5)"]
    lines += ["", f"SGM attention: for {sgm['attention_checked_labels']} correctly emitted labels, the attention "
              f"peak is on the cell holding that digit {sgm['attention_peak_on_digit_cell']:.1%} of the time "
              "(chance: 1/16 = 6.25%).", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=3000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "image_digits"))
    args = p.parse_args()
    torch.set_num_threads(1)
    train_pool, test_pool = digit_pools(args.seed)
    train_c = make_canvases(train_pool, args.train, seed=args.seed)
    test_c = make_canvases(test_pool, args.test, seed=args.seed + 1)
    methods = {}
    for name, run in (("BR logistic regression (pixels)", lambda: sklearn_run(BinaryRelevance(), train_c, test_c)),
                      ("MLP (sigmoid head, BCE; pixels)", lambda: sklearn_run(
                          MLPClassifier(hidden=(256,), epochs=args.epochs * 2, random_state=args.seed), train_c, test_c)),
                      ("MLP (one head per label; pixels)", lambda: sklearn_run(
                          MLPClassifier(hidden=(256,), epochs=args.epochs * 2, per_label_heads=True,
                                        random_state=args.seed), train_c, test_c)),
                      ("plain CNN (sigmoid head)", lambda: plain_cnn_run(train_c, test_c, args)),
                      ("SGM (CNN encoder, beam 5)", lambda: sgm_run(train_c, test_c, args))):
        metrics, extra = run()
        methods[name] = {"metrics": metrics, **extra}
        print(name, {k: round(metrics[k], 4) for k in SHOWN}, extra, flush=True)
    result = {"dataset": {"name": "load_digits canvases", "train_canvases": args.train, "test_canvases": args.test,
                          "seed": args.seed, "grid": "4x4 cells of 8x8", "digits_per_canvas": "1-4 distinct"},
              "methods": methods, "provenance": provenance([])}
    atomic_write_json(Path(args.out + ".json"), result)
    atomic_write_text(Path(args.out + ".md"), markdown(result))


if __name__ == "__main__":
    main()
