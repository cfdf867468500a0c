"""The SGM recipe: files -> vocabularies -> model -> generic trainer -> a ready tagger.

This is the only place that knows how the pieces fit together: ``data`` reads and
encodes, ``models.sgm`` defines the network, ``training`` runs a model-agnostic
loop, ``decoding`` searches label sequences, ``metrics`` scores them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .config import RunConfig, save_config_yaml
from .data.dataset import EncodedDataset, SeqBatch, batch_indices, collate, encode_dataset
from .data.embeddings import load_word_vectors
from .data.labels import LabelVocab
from .data.readers import Example, read_examples
from .data.tokenizer import RegexTokenizer
from .data.vocab import Vocab
from .decoding import decode
from .errors import ConfigError, DataFormatError
from .io import describe_training_data
from .losses import sequence_loss
from .metrics import evaluate_label_lists
from .models.sgm import SGM, SGMConfig
from .training import distributed
from .training.loop import Trainer, TrainerConfig, TrainResult
from .training.seeding import seed_everything
from .validation import check_examples, check_label_counts, check_texts

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """One text's labels in generated order, each with its step probability."""

    labels: list[str]
    probabilities: list[float]
    score: float                          # log-probability of the whole sequence
    attention: np.ndarray | None = None   # (labels, tokens) decoder attention when each label was emitted
    tokens: list[str] | None = None       # the tokens the attention refers to

    def to_json(self) -> dict:
        return {"labels": self.labels, "probabilities": [round(p, 6) for p in self.probabilities],
                "score": round(self.score, 6)}


class LabelGenerator:
    """A trained SGM with everything needed to go from raw text to ordered labels."""

    def __init__(self, model: SGM, tokenizer: RegexTokenizer, vocab: Vocab, label_vocab: LabelVocab,
                 config: RunConfig):
        self.model = model
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.label_vocab = label_vocab
        self.config = config
        self.step_model = None               # what decoding runs instead of ``model`` (see with_backend)
        self.backend = "torch"
        self.quantized: str | None = None    # "int8" for a copy made by quantize()
        self.precision = config.decode.precision  # autocast while decoding (see with_precision)
        self.data_summary: dict | None = None  # training data counts and checksums, for the model card

    @property
    def device(self) -> torch.device:
        if self.step_model is not None or self.quantized:
            return torch.device("cpu")       # ONNX Runtime sessions and int8 kernels run on the CPU
        return next(self.model.parameters()).device

    def with_backend(self, backend: str = "torch", *, onnx_dir: str | Path | None = None,
                     threads: int | None = None) -> "LabelGenerator":
        """Decode with ``"torch"`` or ``"onnxruntime"`` (the exported encoder and decoder step,
        read from ``onnx_dir`` or exported in memory); search code is the same. See seq2labels.export."""
        from .export import backend_step_model
        self.step_model = backend_step_model(self, backend, onnx_dir=onnx_dir, threads=threads)
        self.backend = backend
        if self.step_model is not None:
            self.precision = "fp32"          # ONNX Runtime runs the exported float32 graphs
        return self

    def quantize(self, dtype: str = "int8") -> "LabelGenerator":
        """A copy with dynamically quantized LSTM/GRU/Linear layers, for CPU inference (see seq2labels.quantize)."""
        from .quantize import quantize_generator
        quantized = quantize_generator(self, dtype)
        quantized.precision = "fp32"         # int8 kernels take float32 activations
        return quantized

    def with_precision(self, precision: str) -> "LabelGenerator":
        """Decode under ``"bf16"``/``"fp16"`` autocast, or ``"fp32"``; torch backend, float model only."""
        self.precision = self._checked_precision(precision)
        return self

    def _checked_precision(self, precision: str) -> str:
        from .precision import check_precision
        check_precision(precision, self.device)
        if precision != "fp32" and (self.step_model is not None or self.quantized):
            what = f"the {self.backend} backend" if self.step_model is not None else f"an {self.quantized} model"
            raise ConfigError(f"precision {precision!r} needs the torch backend and a float model, not {what}")
        return precision

    def to(self, device: str | torch.device) -> "LabelGenerator":
        if self.quantized and torch.device(device).type != "cpu":
            raise ConfigError(f"an {self.quantized}-quantized model runs on the CPU only, not on {device}")
        self.model.to(device)
        return self

    def encode_texts(self, texts: Sequence[str]) -> EncodedDataset:
        examples = [Example(text=t, labels=()) for t in _check_texts(texts)]
        return encode_dataset(examples, self.tokenizer, self.vocab, self.label_vocab, self.config.text.max_len)

    def predict(self, texts: Sequence[str], *, beam_size: int | None = None, max_labels: int | None = None,
                min_labels: int | None = None, batch_size: int = 256,
                return_attention: bool = False, precision: str | None = None) -> list[Prediction]:
        texts = _check_texts(texts)
        encoded = self.encode_texts(texts)
        rows = self.decode_encoded(encoded, beam_size=beam_size, max_labels=max_labels, min_labels=min_labels,
                                   batch_size=batch_size, return_attention=return_attention, precision=precision)
        predictions = []
        for i, row in enumerate(rows):
            pred = Prediction(labels=self.label_vocab.decode(row["ids"]), probabilities=row["probs"],
                              score=row["score"])
            if return_attention:
                pred.attention = row["attention"]
                pred.tokens = self.tokenizer(texts[i], max_tokens=self.config.text.max_len) or ["<empty>"]
            predictions.append(pred)
        return predictions

    def label_scores(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(n_texts, n_labels) scores: the highest probability each label got along the greedy path."""
        rows = self.decode_encoded(self.encode_texts(texts), beam_size=1, batch_size=batch_size)
        return np.stack([row["label_scores"] for row in rows]) if rows else np.zeros((0, self.label_vocab.num_labels))

    @torch.inference_mode()
    def decode_encoded(self, encoded: EncodedDataset, *, beam_size: int | None = None,
                       max_labels: int | None = None, min_labels: int | None = None, batch_size: int = 256,
                       return_attention: bool = False, precision: str | None = None) -> list[dict]:
        """Decode a whole encoded data set in length-sorted batches; rows come back in input order.

        ``precision`` (default: ``self.precision``) autocasts encoding and decoding to bf16/fp16."""
        from .allocator import keep_freed_memory
        from .precision import autocast

        keep_freed_memory()
        dec = self.config.decode
        beam_size = dec.beam_size if beam_size is None else beam_size
        max_labels = dec.max_labels if max_labels is None else max_labels
        min_labels = dec.min_labels if min_labels is None else min_labels
        if beam_size < 1 or max_labels < 1 or not 0 <= min_labels <= max_labels:
            raise ConfigError(f"decoding needs beam_size >= 1, max_labels >= 1 and 0 <= min_labels <= max_labels; "
                              f"got beam_size={beam_size}, max_labels={max_labels}, min_labels={min_labels}")
        precision = self._checked_precision(self.precision if precision is None else precision)
        was_training = self.model.training
        self.model.eval()
        rows: list[dict | None] = [None] * len(encoded)
        lengths = [len(t) for t in encoded.token_ids]
        try:
            for idx in batch_indices(lengths, batch_size, shuffle=False, bucket=True):
                batch = collate(encoded, idx).to(self.device)
                step_model = self.model if self.step_model is None else self.step_model
                with autocast(self.device, precision):
                    out = decode(step_model, batch.src, batch.src_lengths, beam_size=beam_size,
                                 max_labels=max_labels, min_labels=min_labels, return_attention=return_attention)
                for r, row in enumerate(_split_rows(out, batch, return_attention)):
                    rows[int(batch.index[r])] = row
        finally:
            self.model.train(was_training)
        return rows  # type: ignore[return-value]

    def evaluate(self, examples: Sequence[Example], *, beam_size: int | None = None,
                 max_labels: int | None = None, min_labels: int | None = None,
                 batch_size: int = 256, precision: str | None = None) -> dict[str, float]:
        """All metrics on labelled examples; labels unseen in training count as misses."""
        examples = check_examples(examples)
        encoded = encode_dataset(examples, self.tokenizer, self.vocab, self.label_vocab, self.config.text.max_len)
        gold = [_gold_in_training_order(ex.labels, self.label_vocab) for ex in examples]
        return self.evaluate_encoded(encoded, gold, beam_size=beam_size, max_labels=max_labels,
                                     min_labels=min_labels, batch_size=batch_size, precision=precision)

    def evaluate_encoded(self, encoded: EncodedDataset, gold: Sequence[Sequence[str]], *,
                         beam_size: int | None = None, max_labels: int | None = None,
                         min_labels: int | None = None, batch_size: int = 256,
                         precision: str | None = None) -> dict[str, float]:
        rows = self.decode_encoded(encoded, beam_size=beam_size, max_labels=max_labels, min_labels=min_labels,
                                   batch_size=batch_size, precision=precision)
        predicted = [self.label_vocab.decode(row["ids"]) for row in rows]
        # Unseen gold labels get their columns here, as evaluate_label_lists would add them, but
        # without its warning: encode_dataset already warned once, naming them (the validation
        # set is scored every epoch).
        known = set(self.label_vocab.labels)
        unseen = sorted({label for labels in gold for label in labels if label not in known})
        return evaluate_label_lists(gold, predicted, [*self.label_vocab.labels, *unseen])

    def save(self, path: str | Path, metrics: dict | None = None) -> Path:
        from .io import save_model
        if self.quantized:
            raise ConfigError(f"an {self.quantized}-quantized model cannot be saved; save the float model "
                              "and quantize it after loading")
        return save_model(self, path, metrics=metrics)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "LabelGenerator":
        from .io import load_model
        return load_model(path, device=device)


def _gold_in_training_order(labels: Sequence[str], label_vocab: LabelVocab) -> list[str]:
    """Gold labels ordered as the model was taught (known ones first, unseen ones after)."""
    known = label_vocab.decode(label_vocab.encode_targets(labels))
    seen = set(known)
    return known + [lab for lab in labels if lab not in seen]


def _split_rows(out, batch: SeqBatch, with_attention: bool) -> list[dict]:
    """Turn one batched DecodeOutput into per-example Python rows (ids, probs, score, ...)."""
    lengths = out.lengths.tolist()
    seqs = out.sequences.cpu()
    probs = out.step_probs.float().cpu()
    scores = out.scores.float().cpu().tolist()
    label_scores = out.label_scores.float().cpu().numpy()[:, 3:] if out.label_scores is not None else None
    src_lengths = batch.src_lengths.tolist()
    rows = []
    for r, n in enumerate(lengths):
        row = {"ids": seqs[r, :n].tolist(), "probs": probs[r, :n].tolist(), "score": scores[r]}
        if label_scores is not None:
            row["label_scores"] = label_scores[r]
        if with_attention and out.attention is not None:
            row["attention"] = out.attention[r, :n, : src_lengths[r]].float().cpu().numpy()
        rows.append(_first_occurrences(row))
    return rows


def _first_occurrences(row: dict) -> dict:
    """Keep each label's first emission. Only a model trained without the repeat mask (the
    ablation) can emit a label twice; the others pass through unchanged."""
    ids = row["ids"]
    if len(set(ids)) == len(ids):
        return row
    keep = [i for i, label in enumerate(ids) if label not in ids[:i]]
    row = {**row, "ids": [ids[i] for i in keep], "probs": [row["probs"][i] for i in keep]}
    if "attention" in row:
        row["attention"] = row["attention"][keep]
    return row


def _check_texts(texts: Sequence[str]) -> list[str]:
    return check_texts(texts)


# ---- training ------------------------------------------------------------------------

def load_training_data(cfg: RunConfig) -> tuple[list[Example], list[Example]]:
    """Read train (and valid) files; carve a seeded validation split when none is given."""
    if not cfg.data.train:
        raise DataFormatError("no training data: set data.train in the config or pass --train")
    train = read_examples(cfg.data.train, cfg.data.format, encoding_errors=cfg.data.encoding_errors)
    if cfg.data.valid:
        valid = read_examples(cfg.data.valid, cfg.data.format, encoding_errors=cfg.data.encoding_errors)
        return train, valid
    return split_validation(train, cfg.data.valid_fraction, cfg.train.seed)


def split_validation(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {fraction}")
    if len(examples) < 2:
        raise DataFormatError(f"need at least 2 training examples to carve a validation split, got {len(examples)}")
    order = np.random.default_rng(seed).permutation(len(examples))
    n_valid = max(1, int(round(len(examples) * fraction)))
    valid_idx = set(order[:n_valid].tolist())
    train = [ex for i, ex in enumerate(examples) if i not in valid_idx]
    valid = [ex for i, ex in enumerate(examples) if i in valid_idx]
    return train, valid


def build_vocabularies(train: Sequence[Example], cfg: RunConfig) -> tuple[RegexTokenizer, Vocab, LabelVocab]:
    tokenizer = RegexTokenizer(lowercase=cfg.text.lowercase)
    token_lists = (tokenizer(ex.text, max_tokens=cfg.text.max_len) for ex in train)
    vocab = Vocab.build(token_lists, min_count=cfg.text.min_count, max_size=cfg.text.max_vocab)
    if not any(ex.labels for ex in train):  # checked first: LabelVocab.build raises a bare ValueError
        raise DataFormatError(f"{cfg.data.train or 'training data'}: no labels found in any example")
    check_label_counts(train, cfg.labels.max_per_text, cfg.data.train or "training data")
    label_vocab = LabelVocab.build((ex.labels for ex in train), order=cfg.labels.order, seed=cfg.train.seed)
    return tokenizer, vocab, label_vocab


def build_model(cfg: RunConfig, vocab: Vocab, label_vocab: LabelVocab,
                train_texts: Sequence[str] | None = None, tokenizer: RegexTokenizer | None = None) -> SGM:
    model_cfg = SGMConfig(vocab_size=len(vocab), num_outputs=label_vocab.size, **cfg.model.__dict__)
    model = SGM(model_cfg)
    if cfg.text.word_vectors:
        vectors, found = load_word_vectors(cfg.text.word_vectors, vocab, model_cfg.embedding_dim)
        copy_embeddings(model, vectors)
        log.info("initialised %d of %d word embeddings from %s", found, len(vocab), cfg.text.word_vectors)
    elif cfg.text.pretrain_embeddings:
        if train_texts is None or tokenizer is None:
            raise ValueError("text.pretrain_embeddings needs the training texts and the tokenizer")
        from .data.word2vec import iter_token_lists, pretrain_word_vectors
        vectors, _ = pretrain_word_vectors(iter_token_lists(train_texts, tokenizer, cfg.text.max_len), vocab,
                                           model_cfg.embedding_dim, seed=cfg.train.seed,
                                           epochs=cfg.text.pretrain_epochs, min_count=cfg.text.min_count)
        copy_embeddings(model, vectors)
    return model


def copy_embeddings(model: SGM, vectors: np.ndarray) -> None:
    """Copy pre-trained vectors in; NaN rows (words without a vector) keep their random init."""
    weight = model.encoder.embedding.weight
    rows = ~np.isnan(vectors).any(axis=1)
    rows[0] = False  # PAD stays zero
    with torch.no_grad():
        weight[torch.from_numpy(rows)] = torch.from_numpy(vectors[rows]).to(weight.dtype)


def _tensorboard_dir(cfg: RunConfig, run_dir: str | Path | None) -> Path:
    if cfg.train.tensorboard_dir:
        return Path(cfg.train.tensorboard_dir)
    if run_dir is None:
        raise ConfigError("train.tensorboard needs a run folder or train.tensorboard_dir to write to")
    return Path(run_dir) / "tensorboard"


def _tensorboard_curves(cfg: RunConfig, run_dir: str | Path | None):
    """The Trainer's epoch observer drawing TensorBoard curves; None when off or not rank 0."""
    if not cfg.train.tensorboard or not distributed.is_main_process():
        return None
    from .training.tensorboard_log import TensorBoardCurves
    return TensorBoardCurves(_tensorboard_dir(cfg, run_dir))


def trainer_config(cfg: RunConfig) -> TrainerConfig:
    t = cfg.train
    return TrainerConfig(max_epochs=t.epochs, patience=t.patience, lr=t.lr, weight_decay=t.weight_decay,
                         lr_schedule=t.lr_schedule, warmup_steps=t.warmup_steps, grad_clip=t.grad_clip,
                         monitor="micro_f1", mode="max", seed=t.seed, device=distributed.local_device(t.device),
                         progress=t.progress, precision=t.precision)


@dataclass
class _TrainSource:
    """The training data as the recipe needs it: vocabularies, and this process's batches."""

    tokenizer: RegexTokenizer
    vocab: Vocab
    label_vocab: LabelVocab
    n_examples: int
    texts: list[str] | None                      # for text.pretrain_embeddings (in memory only)
    make_batches: Callable[[int], Iterable[SeqBatch]]
    steps: int                                   # batches per epoch on this process


def _in_memory_source(cfg: RunConfig, train_examples: Sequence[Example]) -> _TrainSource:
    """Length-bucketed, seeded batches of the loaded training set; this rank's share of them."""
    tokenizer, vocab, label_vocab = build_vocabularies(train_examples, cfg)
    train_set = encode_dataset(train_examples, tokenizer, vocab, label_vocab, cfg.text.max_len)
    lengths = [len(t) for t in train_set.token_ids]
    batch_size = cfg.train.batch_size
    steps = math.ceil(math.ceil(len(train_set) / batch_size) / distributed.world_size())

    def make_batches(epoch: int) -> Iterable[SeqBatch]:
        batches = batch_indices(lengths, batch_size, shuffle=True, seed=cfg.train.seed * 1000 + epoch)
        for idx in distributed.shard_batches(batches):
            yield collate(train_set, idx)

    return _TrainSource(tokenizer, vocab, label_vocab, len(train_examples), [ex.text for ex in train_examples],
                        make_batches, steps)


def _streaming_source(cfg: RunConfig) -> _TrainSource:
    """The shards of data.train, scanned once for the vocabularies, then streamed every epoch."""
    from .data.streaming import dataset_from_scan, scan_from_config, streaming_loader

    scan = scan_from_config(cfg)
    if scan.n_examples < distributed.world_size():
        raise DataFormatError(f"{cfg.data.train}: {scan.n_examples} examples cannot feed "
                              f"{distributed.world_size()} processes")
    dataset = dataset_from_scan(scan, cfg, rank=distributed.rank(), world_size=distributed.world_size())
    workers = cfg.data.stream_workers
    pin = torch.device(cfg.train.device).type == "cuda"

    def make_batches(epoch: int) -> Iterable[SeqBatch]:
        return streaming_loader(dataset, epoch, num_workers=workers, pin_memory=pin)

    return _TrainSource(scan.tokenizer, scan.vocab, scan.label_vocab, scan.n_examples, None, make_batches,
                        dataset.batches_per_epoch(workers))


def train(cfg: RunConfig, run_dir: str | Path | None = None, *, train_examples: Sequence[Example] | None = None,
          valid_examples: Sequence[Example] | None = None, resume: bool = False) -> tuple[LabelGenerator, TrainResult]:
    """Train SGM under ``cfg``; returns the best model (by validation micro-F1) and the run's history.

    ``train.threads`` sets torch's intra-op threads for the whole process. Under torchrun
    every process runs this with the same config and trains on its share of each epoch's
    batches (``train.batch_size`` is per process); only rank 0 writes ``run_dir``. With
    ``data.streaming`` the training set is read shard by shard, never held in memory.
    """
    from .allocator import keep_freed_memory

    keep_freed_memory()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.tensorboard:  # a missing extra stops the run before any data is read
        from .training.tensorboard_log import require_tensorboard
        require_tensorboard()
        _tensorboard_dir(cfg, run_dir)
    if train_examples is not None:
        train_examples = check_examples(train_examples, "train_examples")
    if valid_examples is not None:
        valid_examples = check_examples(valid_examples, "valid_examples")
    if cfg.data.streaming:
        if train_examples is not None:
            raise ConfigError("data.streaming reads data.train itself; do not pass train_examples")
        source = _streaming_source(cfg)
        valid_examples = valid_examples if valid_examples is not None else read_examples(
            cfg.data.valid, cfg.data.format, encoding_errors=cfg.data.encoding_errors)
    else:
        if train_examples is None:
            train_examples, loaded_valid = load_training_data(cfg)
            valid_examples = loaded_valid if valid_examples is None else valid_examples
        elif valid_examples is None:
            train_examples, valid_examples = split_validation(train_examples, cfg.data.valid_fraction,
                                                              cfg.train.seed)
        if len(train_examples) == 0:
            raise DataFormatError("the training set is empty")
        source = _in_memory_source(cfg, train_examples)
    tokenizer, vocab, label_vocab = source.tokenizer, source.vocab, source.label_vocab
    seed_everything(cfg.train.seed)
    model = build_model(cfg, vocab, label_vocab, source.texts, tokenizer)
    generator = LabelGenerator(model, tokenizer, vocab, label_vocab, cfg)
    generator.data_summary = describe_training_data(cfg, train_examples, valid_examples, source.n_examples)
    make_batches, steps = source.make_batches, source.steps

    def loss_fn(net: SGM, batch: SeqBatch) -> torch.Tensor:
        log_probs = net(batch.src, batch.src_lengths, batch.targets)  # (batch, steps, V)
        return sequence_loss(log_probs, batch.targets, cfg.train.loss, cfg.train.bce_weight)

    valid_set = encode_dataset(valid_examples, tokenizer, vocab, label_vocab, cfg.text.max_len)
    valid_gold = [_gold_in_training_order(ex.labels, label_vocab) for ex in valid_examples]

    def evaluate_fn(net: SGM) -> dict[str, float]:
        return generator.evaluate_encoded(valid_set, valid_gold, beam_size=1, precision=cfg.train.precision)

    if run_dir is not None:
        run_dir = Path(run_dir)
    if run_dir is not None and distributed.is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(save_config_yaml(cfg), encoding="utf-8")
    log.info("training SGM: %d train / %d valid docs, %d words, %d labels%s", source.n_examples,
             len(valid_examples), len(vocab), label_vocab.num_labels,
             f"; {distributed.world_size()} processes" if distributed.is_distributed() else "")
    curves = _tensorboard_curves(cfg, run_dir)
    trainer = Trainer(model, trainer_config(cfg), loss_fn=loss_fn, evaluate_fn=evaluate_fn,
                      make_batches=make_batches, run_dir=run_dir, steps_per_epoch=steps, on_epoch_end=curves)
    try:
        result = trainer.fit(resume=resume)
    finally:
        if curves is not None:
            curves.close()
    model.eval()
    return generator, result
