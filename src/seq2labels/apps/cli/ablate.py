"""``seq2labels ablate``: train named SGM variants of one base config and tabulate them."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub, common) -> None:
    p = sub.add_parser("ablate", parents=[common], help="train named SGM variants and tabulate them",
                       description="Train the variants of an ablation YAML (base config + overrides each) and "
                                   "write one table; variants with a result are skipped, so runs resume.")
    p.add_argument("config", help="ablation YAML (name, base, data, decode, variants)")
    p.add_argument("--out", "-o", default="benchmarks/results", help="results folder (default benchmarks/results)")
    p.add_argument("--runs", default="runs/ablation", help="folder for the variants' run folders")
    p.add_argument("--only", action="append", default=[], metavar="VARIANT", help="run only this variant (repeatable)")
    p.add_argument("--seed", dest="seeds", action="append", type=int, default=[], metavar="N",
                   help="run only this seed of the config's seeds list (repeatable)")
    p.add_argument("--no-peers", action="store_true", help="do not run the config's peers now")
    p.add_argument("--force", action="store_true", help="retrain variants that already have a result")
    p.add_argument("--table-only", action="store_true", help="only rebuild the table from existing results")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a key in every variant (e.g. train.epochs=2 for a smoke run)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from seq2labels.experiments.ablation import ablate

    markdown, paths = ablate(args.config, args.out, Path(args.runs), only=args.only, force=args.force,
                             extra=args.overrides, table_only=args.table_only, seeds=args.seeds,
                             peers=not args.no_peers)
    print(markdown)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0

