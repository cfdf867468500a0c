"""The command line: one module per command, each with ``add_parser`` and ``run``.

A command module only parses and checks its arguments and calls one library function;
it may import anything below it. Nothing outside ``apps.cli`` imports it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from seq2labels._version import __version__
from seq2labels.apps.cli import (ablate, compare, demo, evaluate, explain, export, predict, report, serve,
                                 train, tune_thresholds)
from seq2labels.apps.cli.train import TRAIN_FLAGS, resolve_train_config
from seq2labels.data.samples import sample_path
from seq2labels.errors import Seq2LabelsError

# the order of the subcommands in --help
COMMANDS = (train, evaluate, predict, demo, compare, ablate, serve, export, explain, report, tune_thresholds)

__all__ = ["COMMANDS", "TRAIN_FLAGS", "build_parser", "main", "resolve_train_config", "sample_path"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.quiet)
    try:
        return int(args.func(args) or 0)
    except (Seq2LabelsError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"seq2labels {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seq2labels", description="Multi-label classification as sequence generation (SGM).")
    parser.add_argument("--version", action="version", version=f"seq2labels {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors; no progress bars")
    for command in COMMANDS:
        command.add_parser(sub, common)
    return parser
