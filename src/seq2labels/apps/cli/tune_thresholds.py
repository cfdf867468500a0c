"""``seq2labels tune-thresholds``: per-label decision thresholds for a trained model, from validation data."""

from __future__ import annotations

import argparse

from seq2labels.apps.cli.common import check_counts, check_decode_args
from seq2labels.errors import ConfigError
from seq2labels.evaluation.thresholds import OBJECTIVES


def add_parser(sub, common) -> None:
    p = sub.add_parser("tune-thresholds", parents=[common],
                       help="tune per-label thresholds on validation data into MODEL/thresholds.json",
                       description="Decodes the labelled validation file, then picks for each label the threshold "
                                   "on its score (the highest probability it got along the decoded path) that "
                                   "maximises its F1 there (--objective macro_f1), or the F1 of all labels' "
                                   "decisions pooled (--objective micro_f1); labels with fewer than --min-positives positives, or "
                                   "whose best threshold does not beat the decoded set, keep the decoded decision. "
                                   "predict/evaluate/serve apply the file unless --no-thresholds.")
    p.add_argument("model", help="model folder (thresholds.json is written into it)")
    p.add_argument("data", help="labelled validation file (not the test file: that would tune on the answers)")
    p.add_argument("--format", choices=["jsonl", "tsv", "fasttext"])
    p.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict")
    p.add_argument("--beam-size", type=int, help="beam to decode with (default: the model's); use the one you predict with")
    p.add_argument("--min-positives", type=int, default=3,
                   help="validation positives a label needs to get its own threshold (default 3)")
    p.add_argument("--objective", choices=OBJECTIVES, default="macro_f1",
                   help="macro_f1: each label's own F1 (helps rare labels); micro_f1: the pooled F1 of all "
                        "decisions (default macro_f1)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_decode_args(args.beam_size, None, None)
    check_counts(args.batch_size)
    if args.min_positives < 1:
        raise ConfigError(f"--min-positives must be >= 1, got {args.min_positives}")
    from seq2labels.pipeline.runs import tune_model_folder

    summary = tune_model_folder(args.model, args.data, fmt=args.format, encoding_errors=args.encoding_errors,
                                beam_size=args.beam_size, min_positives=args.min_positives,
                                batch_size=args.batch_size, device=args.device, objective=args.objective)
    print(f"wrote {summary['path']}: thresholds for {summary['tuned_labels']} of {summary['labels']} labels "
          f"({summary['objective']}, {summary['validation_docs']} validation docs, beam {summary['beam_size']}); "
          f"on that data micro-F1 {summary['before']['micro_f1']:.4f} -> {summary['after']['micro_f1']:.4f}, "
          f"macro-F1 {summary['before']['macro_f1']:.4f} -> {summary['after']['macro_f1']:.4f}")
    return 0
