"""``seq2labels evaluate``: metrics of a model on labelled data (or on another data set's labels)."""

from __future__ import annotations

import argparse
from pathlib import Path

from seq2labels.apps.cli.common import (add_inference_args, check_counts, check_decode_args, load_for_inference,
                                        print_metrics, write_json)
from seq2labels.errors import ConfigError

RARE_NOTE = "the model folder records no training label counts (trained before they were saved)"


def add_parser(sub, common) -> None:
    p = sub.add_parser("evaluate", parents=[common], help="evaluate a model on labelled data")
    p.add_argument("model", nargs="+", help="model folder; several are decoded as one ensemble (one beam over "
                                            "the mean of their step distributions)")
    p.add_argument("data", help="labelled data file")
    p.add_argument("--format", choices=["jsonl", "tsv", "fasttext"])
    p.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict")
    p.add_argument("--beam-size", type=int)
    p.add_argument("--max-labels", type=int)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--output", help="write the metrics as JSON here")
    add_inference_args(p)
    p.add_argument("--match-labels", choices=["name", "casefold", "none"],
                   help="data from another data set: score only the labels model and data share, matched by "
                        "name (or ignoring case; 'none': only through --label-map)")
    p.add_argument("--label-map", metavar="FILE",
                   help="TSV or JSON file 'model_label -> data_label' (many-to-one allowed) for labels named "
                        "differently in the data; implies --match-labels name unless given")
    p.add_argument("--keep-unlabelled", action="store_true",
                   help="with --match-labels/--label-map: keep documents left with no shared gold label")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_decode_args(args.beam_size, args.max_labels, None)
    check_counts(args.batch_size)
    models, args.model = args.model, args.model[0]
    if args.match_labels or args.label_map:
        if len(models) > 1:
            raise ConfigError("--match-labels/--label-map evaluate one model folder, not an ensemble")
        return _run_crossdata(args)
    if args.keep_unlabelled:
        raise ConfigError("--keep-unlabelled only applies with --match-labels or --label-map")
    from seq2labels.pipeline.runs import evaluate_file

    metrics = evaluate_file(load_for_inference(args, models), args.data, args.format, args.encoding_errors,
                            args.beam_size, batch_size=args.batch_size, max_labels=args.max_labels)
    print_metrics({k: v for k, v in metrics.items() if v is not None})
    if "rare_macro_f1" in metrics and metrics["rare_macro_f1"] is None:
        print(f"rare_macro_f1: n/a ({RARE_NOTE})")
    if args.output:
        write_json(Path(args.output), metrics)
    return 0


def _run_crossdata(args: argparse.Namespace) -> int:
    """evaluate on another data set: metrics over the shared labels, with the drop counts."""
    from seq2labels.experiments.crossdata import evaluate_file

    report = evaluate_file(args.model, args.data, fmt=args.format, encoding_errors=args.encoding_errors,
                           match=args.match_labels or "name", label_map=args.label_map,
                           keep_unlabelled=args.keep_unlabelled, beam_size=args.beam_size,
                           max_labels=args.max_labels, batch_size=args.batch_size, device=args.device,
                           backend=args.backend, quantize=args.quantize, precision=args.precision)
    print_metrics({**report.metrics, **report.counts()})
    if args.output:
        write_json(Path(args.output), report.to_dict())
    return 0

