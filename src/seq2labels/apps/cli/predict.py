"""``seq2labels predict``: ordered labels as JSON Lines, streamed in chunks or sharded over processes."""

from __future__ import annotations

import argparse
import logging

from seq2labels.apps.cli.common import (add_inference_args, check_counts, check_decode_args, load_for_inference,
                                        split_models)
from seq2labels.errors import ConfigError

log = logging.getLogger("seq2labels")


def add_parser(sub, common) -> None:
    p = sub.add_parser("predict", parents=[common], help="predict ordered labels (JSON Lines out)")
    p.add_argument("model", help="model folder; more model folders may follow it (an ensemble: one beam over "
                                 "the mean of their step distributions)")
    p.add_argument("input", nargs="+",
                   help="texts: data files (labels ignored) or, with --format text, one text per line; several "
                        "files give one output in input order")
    p.add_argument("--processes", type=int, default=1,
                   help="share the inputs' chunks among N worker processes (or start N with torchrun instead)")
    p.add_argument("--format", choices=["jsonl", "tsv", "fasttext", "text"])
    p.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict")
    p.add_argument("--output", "-o", help="output JSON Lines file (default: stdout)")
    p.add_argument("--top-k", type=int, help="at most this many labels per text")
    p.add_argument("--beam-size", type=int)
    p.add_argument("--min-labels", type=int, help="1 = never an empty prediction")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--chunk-size", type=int, default=4096,
                   help="texts read, predicted and written at a time (fewer when they pass 16M characters)")
    p.add_argument("--device", default="cpu")
    add_inference_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError("--top-k must be >= 1")
    check_decode_args(args.beam_size, args.top_k, args.min_labels)
    check_counts(args.batch_size, args.chunk_size)
    from seq2labels.apps.predict_files import PredictJob, predict_files, predict_stream
    from seq2labels.training.distributed import launched_by_torchrun

    models, args.input = split_models(args.model, args.input)
    if not args.input:
        raise ConfigError(f"no input file after the model folder(s) {', '.join(models)}")
    job = PredictJob(model=args.model, extra_models=tuple(models[1:]), thresholds=not args.no_thresholds,
                     inputs=tuple(args.input), format=args.format,
                     encoding_errors=args.encoding_errors, top_k=args.top_k, beam_size=args.beam_size,
                     min_labels=args.min_labels, batch_size=args.batch_size, chunk_size=args.chunk_size,
                     device=args.device, backend=args.backend, quantize=args.quantize, precision=args.precision)
    if len(args.input) > 1 or args.processes != 1 or launched_by_torchrun():
        count = predict_files(job, args.output, processes=args.processes)  # sharded, merged in input order
        log.info("predicted %d texts from %d file(s)", count, len(args.input))
    else:
        count = predict_stream(load_for_inference(args, models), job, args.output)
        log.info("predicted %d texts", count)
    return 0

