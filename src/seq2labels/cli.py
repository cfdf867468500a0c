"""Command line: ``seq2labels train | evaluate | predict | demo | compare``.

Every error seq2labels raises on purpose (bad data, bad config, bad model folder)
is printed as one line and exits with status 2; only real bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence

from . import __version__
from .errors import ConfigError, Seq2LabelsError

log = logging.getLogger("seq2labels")

# CLI flag -> config key; flags override the YAML file, --set overrides both.
TRAIN_FLAGS = {
    "train_file": "data.train", "valid_file": "data.valid", "test_file": "data.test", "format": "data.format",
    "encoding_errors": "data.encoding_errors", "epochs": "train.epochs", "batch_size": "train.batch_size",
    "lr": "train.lr", "seed": "train.seed", "device": "train.device", "threads": "train.threads",
    "precision": "train.precision",
    "loss": "train.loss", "patience": "train.patience", "label_order": "labels.order",
    "max_len": "text.max_len", "word_vectors": "text.word_vectors", "pretrain_embeddings": "text.pretrain_embeddings",
    "beam_size": "decode.beam_size",
    "max_labels": "decode.max_labels", "global_embedding": "model.global_embedding",
}


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

    p = sub.add_parser("train", parents=[common], help="train an SGM model",
                       description="Train SGM. A YAML config gives defaults; flags and --set override it.")
    p.add_argument("config", nargs="?", help="YAML config (sections data, text, labels, model, train, decode)")
    p.add_argument("--train", dest="train_file", help="training data (jsonl, tsv or fastText; .gz ok)")
    p.add_argument("--valid", dest="valid_file", help="validation data; default: a seeded split of train")
    p.add_argument("--test", dest="test_file", help="test data evaluated after training")
    p.add_argument("--format", choices=["jsonl", "tsv", "fasttext"], help="data format (default: by extension)")
    p.add_argument("--encoding-errors", choices=["strict", "replace"], help="invalid UTF-8: error or replace")
    p.add_argument("--out", "-o", help="run folder (default runs/<time>); the model goes to OUT/model")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                   help="training autocast: bf16 (CPUs with AVX512-BF16/AMX, GPUs) or fp16 (GPUs); default fp32")
    p.add_argument("--loss", choices=["ce", "bce", "ce+bce"])
    p.add_argument("--patience", type=int)
    p.add_argument("--label-order", choices=["frequency", "alphabetical", "given", "random"])
    p.add_argument("--max-len", type=int, help="tokens kept per text")
    p.add_argument("--word-vectors", help="word2vec/GloVe text file to initialise embeddings")
    p.add_argument("--pretrain-embeddings", action="store_true", default=None,
                   help="pre-train the word embeddings with word2vec on the training texts (needs gensim)")
    p.add_argument("--beam-size", type=int, help="beam size used for the test evaluation and saved as default")
    p.add_argument("--max-labels", type=int)
    p.add_argument("--global-embedding", action=argparse.BooleanOptionalAction, default=None, help="SGM+GE")
    p.add_argument("--tensorboard", action="store_true", default=None,
                   help="TensorBoard curves of loss, learning rate and validation metrics per epoch in "
                        "RUN_DIR/tensorboard (needs the tensorboard extra)")
    p.add_argument("--tensorboard-dir", metavar="DIR",
                   help="write the TensorBoard curves here instead (implies --tensorboard)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config key, e.g. --set model.encoder_hidden=128 (repeatable)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", parents=[common], help="evaluate a model on labelled data")
    p.add_argument("model", help="model folder")
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
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", parents=[common], help="predict ordered labels (JSON Lines out)")
    p.add_argument("model", help="model folder")
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
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", parents=[common], help="train and evaluate on the shipped GoEmotions sample")
    p.add_argument("--out", "-o", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--epochs", type=int, default=None, help="override the demo's epochs")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("compare", parents=[common], help="compare baseline methods (and SGM result files) in one table")
    p.add_argument("config", help="comparison YAML (data set(s), methods, optional include_results)")
    p.add_argument("--out", "-o", default="benchmarks/results", help="output folder (default benchmarks/results)")
    p.add_argument("--stem", default=None, help="file name stem (default compare_<config name>)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("ablate", parents=[common], help="train named SGM variants and tabulate them",
                       description="Train the variants of an ablation YAML (base config + overrides each) and "
                                   "write one table; variants with a result are skipped, so runs resume.")
    p.add_argument("config", help="ablation YAML (name, base, data, decode, variants)")
    p.add_argument("--out", "-o", default="benchmarks/results", help="results folder (default benchmarks/results)")
    p.add_argument("--runs", default="runs/ablation", help="folder for the variants' run folders")
    p.add_argument("--only", action="append", default=[], metavar="VARIANT", help="run only this variant (repeatable)")
    p.add_argument("--force", action="store_true", help="retrain variants that already have a result")
    p.add_argument("--table-only", action="store_true", help="only rebuild the table from existing results")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a key in every variant (e.g. train.epochs=2 for a smoke run)")
    p.set_defaults(func=cmd_ablate)

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
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", parents=[common], help="export a model for another runtime (ONNX)",
                       description="Write the encoder and one decoder step as ONNX graphs plus manifest.json; "
                                   "predict/evaluate --backend onnxruntime run them with the same search code.")
    p.add_argument("model", help="model folder")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--out", "-o", help="output folder (default MODEL/onnx)")
    p.set_defaults(func=cmd_export)

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
    p.set_defaults(func=cmd_explain)

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
    p.set_defaults(func=cmd_report)
    return parser


# ---- serve -----------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import options_from_args, serve

    serve(options_from_args(args), log_level="warning" if args.quiet else "info")
    return 0


# ---- compare ---------------------------------------------------------------------------

def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import run_comparison
    from .config import read_yaml

    config = read_yaml(args.config)
    stem = args.stem or f"compare_{config.get('name') or 'table'}"
    partial = f"{stem}.partial"   # rewritten after every finished method; removed when the table is complete

    def save_partial(table) -> None:
        table.write(args.out, partial)

    table = run_comparison(config, config_path=args.config, log=None if args.quiet else log.info, on_row=save_partial)
    stem = args.stem or f"compare_{table.name}"
    paths = table.write(args.out, stem)
    for suffix in (".md", ".csv", ".json"):
        (Path(args.out) / f"{partial}{suffix}").unlink(missing_ok=True)
    print(table.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from .ablation import load_spec, run_ablation, table_markdown, collect_rows, write_table

    spec = load_spec(args.config)
    if args.table_only:
        paths = write_table(spec, args.out)
    else:
        paths = run_ablation(spec, Path(args.runs) / spec.name, args.out, only=args.only, force=args.force,
                             extra=args.overrides)
    print(table_markdown(spec, collect_rows(spec, Path(args.out))))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


# ---- train -----------------------------------------------------------------------------

def resolve_train_config(args: argparse.Namespace):
    from .config import load_config

    config_path = args.config
    if args.resume and config_path is None:
        config_path = str(Path(args.resume) / "config.yaml")
    overrides = [f"{key}={json.dumps(getattr(args, flag))}" for flag, key in TRAIN_FLAGS.items()
                 if getattr(args, flag, None) is not None]
    if args.quiet:
        overrides.append("train.progress=false")
    if getattr(args, "tensorboard", None) or getattr(args, "tensorboard_dir", None):
        overrides.append("train.tensorboard=true")
    if getattr(args, "tensorboard_dir", None):
        overrides.append(f"train.tensorboard_dir={json.dumps(args.tensorboard_dir)}")
    return load_config(config_path, overrides + list(args.overrides))


def cmd_train(args: argparse.Namespace) -> int:
    from .training import distributed

    cfg = resolve_train_config(args)
    with distributed.session(cfg.train.device):  # under torchrun: one process group for the run
        return _train_and_save(args, cfg)


def _train_and_save(args: argparse.Namespace, cfg) -> int:
    """Train; rank 0 (the only process without torchrun) then tests, saves and reports."""
    from .recipe import train
    from .training import distributed

    run_dir = Path(distributed.broadcast_object(  # rank 0's clock names the run folder for all
        str(args.resume or args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))))
    started = time.perf_counter()
    generator, result = train(cfg, run_dir, resume=bool(args.resume))
    if not distributed.is_main_process():
        return 0
    seconds = time.perf_counter() - started
    summary = {"best_epoch": result.best_epoch, "valid_micro_f1": result.best_score,
               "epochs_run": result.epochs_run, "train_seconds": round(seconds, 1)}
    metrics = {f"valid_{k}": v for k, v in result.best_metrics.items()}
    if cfg.data.test:
        metrics.update(_evaluate_file(generator, cfg.data.test, cfg.data.format, cfg.data.encoding_errors,
                                      cfg.decode.beam_size, prefix="test_"))
    model_dir = generator.save(run_dir / "model", metrics=metrics)
    _write_json(run_dir / "summary.json", {**summary, **metrics})
    print(f"model saved to {model_dir}")
    _print_metrics({**summary, **metrics})
    return 0


def _evaluate_file(generator, path: str, fmt: str | None, encoding_errors: str, beam_size: int | None,
                   prefix: str = "", batch_size: int = 256, max_labels: int | None = None) -> dict:
    from .data.readers import read_examples

    examples = read_examples(path, fmt, encoding_errors=encoding_errors)
    beam = beam_size or generator.config.decode.beam_size
    started = time.perf_counter()
    metrics = generator.evaluate(examples, beam_size=beam, max_labels=max_labels, batch_size=batch_size)
    metrics["docs_per_second"] = len(examples) / max(time.perf_counter() - started, 1e-9)
    metrics["beam_size"] = beam
    return {prefix + k: v for k, v in metrics.items()}


def _print_metrics(metrics: dict) -> None:
    from .metrics import format_metrics
    print(format_metrics(metrics))


def _write_json(path: Path, obj: dict) -> None:
    from .atomic import atomic_write_json
    atomic_write_json(path, obj)


# ---- evaluate / predict ---------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    _check_decode_args(args.beam_size, args.max_labels, None)
    _check_counts(args.batch_size)
    if args.match_labels or args.label_map:
        return _cmd_evaluate_crossdata(args)
    if args.keep_unlabelled:
        raise ConfigError("--keep-unlabelled only applies with --match-labels or --label-map")
    generator = _load_for_inference(args)
    metrics = _evaluate_file(generator, args.data, args.format, args.encoding_errors, args.beam_size,
                             batch_size=args.batch_size, max_labels=args.max_labels)
    _print_metrics(metrics)
    if args.output:
        _write_json(Path(args.output), metrics)
    return 0


def _cmd_evaluate_crossdata(args: argparse.Namespace) -> int:
    """evaluate on another data set: metrics over the shared labels, with the drop counts."""
    from .crossdata import evaluate_file

    report = evaluate_file(args.model, args.data, fmt=args.format, encoding_errors=args.encoding_errors,
                           match=args.match_labels or "name", label_map=args.label_map,
                           keep_unlabelled=args.keep_unlabelled, beam_size=args.beam_size,
                           max_labels=args.max_labels, batch_size=args.batch_size, device=args.device,
                           backend=args.backend, quantize=args.quantize, precision=args.precision)
    _print_metrics({**report.metrics, **report.counts()})
    if args.output:
        _write_json(Path(args.output), report.to_dict())
    return 0


def _check_decode_args(beam_size: int | None, max_labels: int | None, min_labels: int | None) -> None:
    """Bad decoding flags are usage errors (exit 2), not a ValueError traceback from the search."""
    if beam_size is not None and beam_size < 1:
        raise ConfigError(f"--beam-size must be >= 1, got {beam_size}")
    if max_labels is not None and max_labels < 1:
        raise ConfigError(f"--max-labels must be >= 1, got {max_labels}")
    if min_labels is not None and min_labels < 0:
        raise ConfigError(f"--min-labels must be >= 0, got {min_labels}")
    if min_labels is not None and max_labels is not None and min_labels > max_labels:
        raise ConfigError(f"--min-labels ({min_labels}) must not exceed --top-k ({max_labels})")


def _check_counts(batch_size: int, chunk_size: int | None = None) -> None:
    """--batch-size 0 would be a traceback from the batcher, --chunk-size 0 an empty output: exit 2 instead."""
    from .validation import check_positive_int

    check_positive_int(batch_size, "--batch-size")
    if chunk_size is not None:
        check_positive_int(chunk_size, "--chunk-size")


CHUNK_CHARS = 1 << 24  # a predict chunk also stops at 16M characters, so long lines keep memory flat


def take_chunk(texts: Iterator[str], max_texts: int, max_chars: int | None = None) -> list[str]:
    """The next texts of the stream: ``max_texts`` of them, or fewer once they hold ``max_chars``
    (default :data:`CHUNK_CHARS`) characters together (at least one text), so memory is bounded
    in bytes, not only in lines."""
    max_chars = CHUNK_CHARS if max_chars is None else max_chars
    chunk: list[str] = []
    chars = 0
    for text in texts:
        chunk.append(text)
        chars += len(text)
        if len(chunk) >= max_texts or chars >= max_chars:
            break
    return chunk


def iter_input_texts(path: str, fmt: str | None, encoding_errors: str) -> Iterator[str]:
    """Texts to predict, streamed: a labelled data file, or plain text with one text per line."""
    from .data.readers import detect_format, iter_examples

    if fmt == "text" or (fmt is None and _looks_like_plain_text(path)):
        yield from _iter_text_lines(path, encoding_errors)
        return
    for example in iter_examples(path, fmt or detect_format(path), encoding_errors=encoding_errors):
        yield example.text


def _looks_like_plain_text(path: str) -> bool:
    from .data.readers import detect_format
    try:
        detect_format(path)
        return False
    except Seq2LabelsError:
        return Path(path).suffix.lower() in (".txt", ".text", "")


def _iter_text_lines(path: str, encoding_errors: str) -> Iterator[str]:
    """One text per line (plain or gzip; BOM and CRLF accepted); every line is a text, even an empty one."""
    from .data.readers import decode_line, iter_lines

    for number, raw in iter_lines(path):
        yield decode_line(raw, path, number, encoding_errors)


def cmd_predict(args: argparse.Namespace) -> int:
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError("--top-k must be >= 1")
    _check_decode_args(args.beam_size, args.top_k, args.min_labels)
    _check_counts(args.batch_size, args.chunk_size)
    if len(args.input) > 1 or args.processes != 1 or _launched_by_torchrun():
        return _cmd_predict_files(args)
    generator = _load_for_inference(args)
    texts = iter_input_texts(args.input[0], args.format, args.encoding_errors)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    count = 0
    try:
        while chunk := take_chunk(texts, args.chunk_size):
            predictions = generator.predict(chunk, beam_size=args.beam_size, max_labels=args.top_k,
                                            min_labels=args.min_labels, batch_size=args.batch_size)
            out.write("".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in predictions))
            count += len(predictions)
    finally:
        if out is not sys.stdout:
            out.close()
    log.info("predicted %d texts", count)
    return 0


def _launched_by_torchrun() -> bool:
    from .training.distributed import launched_by_torchrun
    return launched_by_torchrun()


def _cmd_predict_files(args: argparse.Namespace) -> int:
    """Several inputs and/or processes: sharded by chunks, merged back in input order."""
    from .predict_files import PredictJob, predict_files

    job = PredictJob(model=args.model, inputs=tuple(args.input), format=args.format,
                     encoding_errors=args.encoding_errors, top_k=args.top_k, beam_size=args.beam_size,
                     min_labels=args.min_labels, batch_size=args.batch_size, chunk_size=args.chunk_size,
                     device=args.device, backend=args.backend, quantize=args.quantize, precision=args.precision)
    count = predict_files(job, args.output, processes=args.processes)
    log.info("predicted %d texts from %d file(s)", count, len(args.input))
    return 0


def add_inference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                   help="onnxruntime: decode with the ONNX export in MODEL/onnx (or one made in memory); "
                        "needs the onnx extra")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization of the RNN and linear layers (CPU)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                   help="autocast while predicting (torch backend): bf16 on CPUs with AVX512-BF16/AMX or GPUs, "
                        "fp16 on GPUs; default: the model's decode.precision")


def _load_for_inference(args: argparse.Namespace):
    from .export import load_for_inference
    return load_for_inference(args.model, device=args.device, backend=args.backend, quantize=args.quantize,
                              precision=args.precision)


# ---- export ----------------------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_model

    out = export_model(args.model, args.format, args.out)
    print(f"wrote ONNX encoder and decoder step to {out}")
    return 0


# ---- demo ------------------------------------------------------------------------------

def sample_path(name: str) -> str:
    return str(resources.files("seq2labels") / "samples" / name)


def cmd_demo(args: argparse.Namespace) -> int:
    """Train on the shipped GoEmotions sample, evaluate, show a few predictions."""
    from .config import load_config
    from .data.readers import read_examples
    from .recipe import train

    overrides = [f"data.train={sample_path('goemotions_train.jsonl.gz')}"]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    if args.quiet:
        overrides.append("train.progress=false")
    cfg = load_config(sample_path("demo.yaml"), overrides)
    print("seq2labels demo: SGM on a 6,000-comment GoEmotions sample (CC BY 4.0, Demszky et al. 2020)")
    generator, result = train(cfg, args.out)
    test = read_examples(sample_path("goemotions_test.jsonl.gz"))
    for beam in (1, 5):
        metrics = generator.evaluate(test, beam_size=beam)
        print(f"\ntest metrics on {len(test)} held-out comments, beam {beam}:")
        _print_metrics({k: metrics[k] for k in ("micro_f1", "macro_f1", "example_f1", "subset_accuracy",
                                                  "hamming_loss", "label_position_deviation")})
    generator.save(Path(args.out) / "model", metrics=metrics)
    print("\na few predictions (beam 5; labels in generated order with their step probabilities):")
    shown = test[:8]
    for ex, pred in zip(shown, generator.predict([ex.text for ex in shown], beam_size=5)):
        labels = ", ".join(f"{lab} ({p:.2f})" for lab, p in zip(pred.labels, pred.probabilities)) or "(none)"
        print(f"- {ex.text[:80]!r}\n    predicted: {labels}\n    gold:      {', '.join(ex.labels)}")
    print(f"\nmodel saved to {Path(args.out) / 'model'}; try: seq2labels predict {Path(args.out) / 'model'} FILE")
    return 0


# ---- explain / report ------------------------------------------------------------------

def _check_picture_args(dpi: int, tokens_per_row: int | None = None) -> None:
    if dpi < 10:
        raise ConfigError(f"--dpi must be >= 10, got {dpi}")
    if tokens_per_row is not None and tokens_per_row < 1:
        raise ConfigError(f"--tokens-per-row must be >= 1, got {tokens_per_row}")


def _texts_to_explain(args: argparse.Namespace) -> list[str]:
    from itertools import islice

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


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain, require_matplotlib, write_explanations
    from .io import load_model

    _check_decode_args(args.beam_size, args.max_labels, None)
    _check_picture_args(args.dpi, args.tokens_per_row)
    texts = _texts_to_explain(args)
    require_matplotlib()
    generator = load_model(args.model, device=args.device)
    explanations = explain(generator, texts, beam_size=args.beam_size, max_labels=args.max_labels)
    beam = args.beam_size or generator.config.decode.beam_size
    paths = write_explanations(explanations, args.out, dpi=args.dpi, tokens_per_row=args.tokens_per_row,
                               meta=f"model {args.model}, beam size {beam}, {len(texts)} text(s)")
    print(f"wrote {len(texts)} heatmap(s), {paths['jsonl']} and {paths['html']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .data.readers import read_examples
    from .explain import require_matplotlib
    from .io import load_model
    from .report import check_options, write_report

    _check_decode_args(args.beam_size, args.max_labels, args.min_labels)
    _check_picture_args(args.dpi)
    check_options(args.top_labels, args.worst)
    require_matplotlib()
    generator = load_model(args.model, device=args.device)
    examples = read_examples(args.data, args.format, encoding_errors=args.encoding_errors)
    data = write_report(generator, examples, args.out, beam_size=args.beam_size, max_labels=args.max_labels,
                        min_labels=args.min_labels, top_labels=args.top_labels,
                        worst=args.worst, batch_size=args.batch_size, dpi=args.dpi,
                        source=f"model {args.model}, data {args.data}")
    print(f"wrote {args.out} ({data.n_docs} documents, micro-F1 {data.metrics['micro_f1']:.4f}, "
          f"macro-F1 {data.metrics['macro_f1']:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
