"""``seq2labels compare``: baselines (and SGM result files) in one table."""

from __future__ import annotations

import argparse


def add_parser(sub, common) -> None:
    p = sub.add_parser("compare", parents=[common], help="compare baseline methods (and SGM result files) in one table")
    p.add_argument("config", help="comparison YAML (data set(s), methods, optional include_results)")
    p.add_argument("--out", "-o", default="benchmarks/results", help="output folder (default benchmarks/results)")
    p.add_argument("--stem", default=None, help="file name stem (default compare_<config name>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from seq2labels.experiments.compare import compare_to_files

    table, paths = compare_to_files(args.config, args.out, stem=args.stem, quiet=args.quiet)
    print(table.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0

