"""``seq2labels explain``: attention heatmaps and one HTML page for a few texts."""

from __future__ import annotations

import argparse
import logging
from itertools import islice

from seq2labels.apps.cli.common import check_decode_args, check_picture_args
from seq2labels.errors import ConfigError

log = logging.getLogger("seq2labels")


def add_parser(sub, common) -> None:
    p = sub.add_parser("explain", parents=[common], help="attention heatmaps (PNG) and one HTML page per batch",
                       description="For each text: its labels and the decoder's attention over the tokens "
                                   "when each label was emitted.")
    p.add_argument("model", help="model folder")
    p.add_argument("input", nargs="?", help="texts: a data file (labels ignored) or, with --format text, one per line")
    p.add_argument("--text", action="append", default=[], help="a text to explain (repeatable; instead of a file)")
    p.add_argument("--out", "-o", required=True, help="output folder: text_*.png, explanations.jsonl, index.html")
    p.add_argument("--format", choices=["jsonl", "tsv", "fasttext", "text"])
    p.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict")
    p.add_argument("--beam-size", type=int)
    p.add_argument("--max-labels", type=int)
    p.add_argument("--max-texts", type=int, default=100, help="explain at most this many texts (default 100)")
    p.add_argument("--tokens-per-row", type=int, default=40, help="heatmap columns before wrapping (default 40)")
    p.add_argument("--dpi", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def texts_to_explain(args: argparse.Namespace) -> list[str]:
    """The texts named by the arguments: a file or the repeated --text, at most --max-texts of them."""
    from seq2labels.data.inputs import iter_input_texts

    if (args.input is None) == (not args.text):
        raise ConfigError("give either a texts file or --text (repeatable), not both" if args.text
                          else "nothing to explain: give a texts file or --text \"...\"")
    if args.max_texts < 1:
        raise ConfigError(f"--max-texts must be >= 1, got {args.max_texts}")
    source = args.text if args.text else iter_input_texts(args.input, args.format, args.encoding_errors)
    texts = list(islice(source, args.max_texts + 1))
    if not texts:
        raise ConfigError(f"{args.input}: no texts to explain")
    if len(texts) > args.max_texts:
        log.warning("explaining the first %d texts only; raise --max-texts for more", args.max_texts)
    return texts[: args.max_texts]


def _reads_images(model_dir: str) -> bool:
    from seq2labels.models.encoders import INPUT_ENCODERS
    from seq2labels.pipeline.files import read_model_config

    return read_model_config(model_dir).get("model", {}).get("encoder") in INPUT_ENCODERS


def _run_images(args: argparse.Namespace) -> int:
    """An image or fused model: one attention overlay PNG per example and label, and explanations.jsonl."""
    from seq2labels.apps.explain_image import explain_images_to_folder
    from seq2labels.data.images import iter_multimodal_examples
    from seq2labels.pipeline.generator import load_model
    from seq2labels.pipeline.multimodal import image_spec

    if args.input is None or args.text:
        raise ConfigError("an image model explains a JSON Lines file with 'image' paths: give it as INPUT (no --text)")
    if args.max_texts < 1:
        raise ConfigError(f"--max-texts must be >= 1, got {args.max_texts}")
    generator = load_model(args.model, device=args.device)
    cfg = generator.config
    stream = iter_multimodal_examples(args.input, image_spec(cfg), allow_outside=cfg.image.allow_outside,
                                      encoding_errors=args.encoding_errors)
    examples = list(islice(stream, args.max_texts))
    paths = explain_images_to_folder(generator, examples, args.out, beam_size=args.beam_size,
                                     max_labels=args.max_labels)
    print(f"wrote {len(paths['pngs'])} overlay(s) for {len(examples)} example(s) and {paths['jsonl']}")
    return 0


def run(args: argparse.Namespace) -> int:
    from seq2labels.apps.explain import explain_to_folder

    check_decode_args(args.beam_size, args.max_labels, None)
    check_picture_args(args.dpi, args.tokens_per_row)
    if _reads_images(args.model):
        return _run_images(args)
    texts = texts_to_explain(args)
    paths = explain_to_folder(args.model, texts, args.out, device=args.device, beam_size=args.beam_size,
                              max_labels=args.max_labels, dpi=args.dpi, tokens_per_row=args.tokens_per_row)
    print(f"wrote {len(texts)} heatmap(s), {paths['jsonl']} and {paths['html']}")
    return 0

