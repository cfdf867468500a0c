"""``seq2labels export``: the encoder and one decoder step as ONNX graphs."""

from __future__ import annotations

import argparse


def add_parser(sub, common) -> None:
    p = sub.add_parser("export", parents=[common], help="export a model for another runtime (ONNX)",
                       description="Write the encoder and one decoder step as ONNX graphs plus manifest.json; "
                                   "predict/evaluate --backend onnxruntime run them with the same search code.")
    p.add_argument("model", help="model folder")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--out", "-o", help="output folder (default MODEL/onnx)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from seq2labels.pipeline.loading import export_model

    out = export_model(args.model, args.format, args.out)
    print(f"wrote ONNX encoder and decoder step to {out}")
    return 0

