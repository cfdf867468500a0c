"""``seq2labels serve``: the FastAPI service with its request limits."""

from __future__ import annotations

import argparse

from seq2labels.apps.cli.common import add_inference_args


def add_parser(sub, common) -> None:
    p = sub.add_parser("serve", parents=[common], help="serve a model over HTTP (FastAPI; needs the serve extra)",
                       description="POST /predict, GET /health, GET /labels, docs at /docs. Binds 127.0.0.1 "
                                   "unless --host says otherwise; every request is bounded by the limits below.")
    p.add_argument("model", help="model folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-texts", type=int, default=64, help="texts per request (more: 422)")
    p.add_argument("--max-chars", type=int, default=20000, help="characters per text (more: 422)")
    p.add_argument("--max-body-bytes", type=int, default=1000000, help="request body bytes (more: 413)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds of inference per request (more: 503)")
    p.add_argument("--beam-size", type=int, help="default beam for requests (default: the model's)")
    p.add_argument("--batch-size", type=int, default=64, help="texts decoded together")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, help="torch CPU threads per worker")
    p.add_argument("--workers", type=int, default=1, help="worker processes, each with its own copy of the model")
    add_inference_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from seq2labels.apps.serve import options_from_args, serve

    serve(options_from_args(args), log_level="warning" if args.quiet else "info")
    return 0

