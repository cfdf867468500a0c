"""``seq2labels report``: one self-contained HTML evaluation report."""

from __future__ import annotations

import argparse

from seq2labels.apps.cli.common import check_decode_args, check_picture_args


def add_parser(sub, common) -> None:
    p = sub.add_parser("report", parents=[common], help="evaluation report as one self-contained HTML file")
    p.add_argument("model", help="model folder")
    p.add_argument("data", help="labelled data file")
    p.add_argument("--out", "-o", default="report.html", help="HTML file to write (default report.html)")
    p.add_argument("--format", choices=["jsonl", "tsv", "fasttext"])
    p.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict")
    p.add_argument("--beam-size", type=int)
    p.add_argument("--max-labels", type=int)
    p.add_argument("--min-labels", type=int, help="1 = never an empty prediction")
    p.add_argument("--top-labels", type=int, default=10, help="labels in the PR curves and co-occurrence maps")
    p.add_argument("--worst", type=int, default=20, help="worst-predicted documents listed")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dpi", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from seq2labels.apps.report import check_options, report_file

    check_decode_args(args.beam_size, args.max_labels, args.min_labels)
    check_picture_args(args.dpi)
    check_options(args.top_labels, args.worst)
    data = report_file(args.model, args.data, args.out, fmt=args.format, encoding_errors=args.encoding_errors,
                       device=args.device, beam_size=args.beam_size, max_labels=args.max_labels,
                       min_labels=args.min_labels, top_labels=args.top_labels, worst=args.worst,
                       batch_size=args.batch_size, dpi=args.dpi)
    print(f"wrote {args.out} ({data.n_docs} documents, micro-F1 {data.metrics['micro_f1']:.4f}, "
          f"macro-F1 {data.metrics['macro_f1']:.4f})")
    return 0

