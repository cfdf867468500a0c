"""``seq2labels demo``: train and evaluate on the GoEmotions sample the package ships."""

from __future__ import annotations

import argparse


def add_parser(sub, common) -> None:
    p = sub.add_parser("demo", parents=[common], help="train and evaluate on the shipped GoEmotions sample")
    p.add_argument("--out", "-o", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--epochs", type=int, default=None, help="override the demo's epochs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from seq2labels.apps.demo import run_demo

    for paragraph in run_demo(args.out, epochs=args.epochs, quiet=args.quiet):
        print(paragraph)
    return 0

