"""Training throughput: the package encoder against the textbook padded and packed peers, two batch
orders, fp32 and bf16, through the package Trainer."""

from __future__ import annotations

import contextlib
import dataclasses

from .harness import PRECISIONS, Runs, set_threads, sgm_config, timed

ENCODERS = ("ours", "padded", "packed")
ORDERS = ("bucketed", "random")
ENCODER_NAMES = {"ours": "package (RNN per direction, reverse within length; decoder drops rows past EOS)",
                 "padded": "nn.LSTM(bidirectional) over the padded batch; every decoder step on every row",
                 "packed": "nn.LSTM(bidirectional) over packed sequences; every decoder step on every row"}
TRAIN_VARIANTS = ([(enc, order, "fp32") for enc in ENCODERS for order in ORDERS]
                  + [("ours", "bucketed", "bf16"), ("padded", "random", "bf16")])
PLAIN_PADDED = ("padded", "random", "fp32")   # the "plain padded per-batch implementation"


def package_variants() -> list[list[str]]:
    """The package encoder over bucketed batches, one variant per precision (as phase specs give them)."""
    return [["ours", "bucketed", p] for p in PRECISIONS]


def _encoder_classes():
    """Benchmark-only encoders, built lazily so importing this file does not import torch."""
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from seq2labels.models.encoders.base import EncoderOutput, masked_mean

    class PaddedBiRNNEncoder(nn.Module):
        """The textbook encoder: one bidirectional torch RNN over the padded batch. Its backward
        direction reads the padding before the text (the usual shortcut of a plain implementation)."""

        def __init__(self, cfg):
            super().__init__()
            rnn = nn.LSTM if cfg.rnn_type == "lstm" else nn.GRU
            self.embedding = nn.Embedding(cfg.vocab_size, cfg.embedding_dim, padding_idx=0)
            self.rnn = rnn(cfg.embedding_dim, cfg.encoder_hidden, num_layers=cfg.encoder_layers,
                           bidirectional=True, batch_first=True,
                           dropout=cfg.dropout if cfg.encoder_layers > 1 else 0.0)
            self.dropout = nn.Dropout(cfg.dropout)
            self.output_dim = 2 * cfg.encoder_hidden

        def forward(self, src, lengths):
            time_ = src.size(1)
            mask = torch.arange(time_, device=src.device)[None, :] < lengths[:, None]  # (batch, time)
            x = self.dropout(self.embedding(src))                        # (batch, time, emb)
            out = self.run_rnn(x, lengths, time_)                        # (batch, time, 2 * hidden)
            memory = self.dropout(out * mask.unsqueeze(-1))              # (batch, time, 2 * hidden)
            return EncoderOutput(memory, mask, masked_mean(memory, mask))

        def run_rnn(self, x, lengths, time_):
            return self.rnn(x)[0]

    class PackedBiRNNEncoder(PaddedBiRNNEncoder):
        """The exact textbook encoder: the same RNN over ``pack_padded_sequence``."""

        def run_rnn(self, x, lengths, time_):
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=time_)
            return out                                                   # (batch, time, 2 * hidden)

    return {"padded": PaddedBiRNNEncoder, "packed": PackedBiRNNEncoder}


@contextlib.contextmanager
def textbook_decoder(on: bool):
    """The peers are textbook implementations: their teacher-forced decoder runs every step for every
    row of the batch. The package drops rows past their EOS (``TEACHER_FORCING_KEEP_FRACTION``);
    this sets it to 0 (never) while a peer trains."""
    from seq2labels.decoding import search

    before = search.TEACHER_FORCING_KEEP_FRACTION
    search.TEACHER_FORCING_KEEP_FRACTION = 0.0 if on else before
    try:
        yield
    finally:
        search.TEACHER_FORCING_KEEP_FRACTION = before


def build_variant(cfg, vocab, label_vocab, encoder: str):
    """The recipe's SGM, its encoder swapped for a peer one (same sizes, same decoder)."""
    from seq2labels.pipeline.recipe import build_model
    from seq2labels.training.seeding import seed_everything

    seed_everything(cfg.train.seed)
    model = build_model(cfg, vocab, label_vocab)
    if encoder != "ours":
        if not model.config.bidirectional:
            raise ValueError("the padded/packed peers are bidirectional; the config is not")
        model.encoder = _encoder_classes()[encoder](model.config)
    return model


def _variant(v) -> tuple[str, str, str]:
    """(encoder, order, precision); a variant that names no precision (older specs) is fp32."""
    return (v[0], v[1], v[2] if len(v) > 2 else "fp32")


def measure_training(spec: dict, around_fit=contextlib.nullcontext) -> dict:
    """Training steps of each (encoder, batch order, precision) of ``spec["variants"]`` through the
    package Trainer; docs/s and real tokens/s.

    Every run re-initialises the model and trains on the same ``train_batches`` batches of its
    order (the first ones of epoch 1), so repeats do the same work. Repeats are interleaved
    (variant A, B, ..., then A, B, ... again) so a change in the machine's load hits every
    variant alike. Each variant first trains 2 untimed batches: the first optimizer of a process
    imports torch._dynamo (seconds), and each RNN path sets up its kernels once.
    ``around_fit`` wraps every timed fit (the profiler uses it). The malloc thresholds are raised
    first, as ``recipe.train`` does (unless SEQ2LABELS_MALLOC=default).
    """
    from seq2labels.training.allocator import keep_freed_memory
    from seq2labels.data.dataset import batch_indices, collate, encode_dataset
    from seq2labels.training.losses import sequence_loss
    from seq2labels.pipeline.recipe import build_vocabularies, load_training_data, trainer_config
    from seq2labels.training.loop import Trainer

    raised = keep_freed_memory()
    cfg = sgm_config(spec["dataset"], spec["threads"])
    set_threads(spec["threads"])
    train_examples, _ = load_training_data(cfg)
    if spec.get("train_docs"):
        train_examples = train_examples[: spec["train_docs"]]
    tokenizer, vocab, label_vocab = build_vocabularies(train_examples, cfg)
    data = encode_dataset(train_examples, tokenizer, vocab, label_vocab, cfg.text.max_len)
    lengths = [max(n, 1) for n in data.lengths()]                       # collate pads empty texts to 1

    def loss_fn(net, batch):  # the recipe's loss (recipe.train's closure)
        log_probs = net(batch.src, batch.src_lengths, batch.targets)   # (batch, steps, V)
        return sequence_loss(log_probs, batch.targets, cfg.train.loss, cfg.train.bce_weight)

    def batches_in(order: str) -> list[list[int]]:
        epoch1 = batch_indices(lengths, cfg.train.batch_size, shuffle=True, seed=cfg.train.seed * 1000 + 1,
                               bucket=order == "bucketed")
        return epoch1[: spec["train_batches"]] if spec["train_batches"] else epoch1

    def run(variant: tuple, batches: list[list[int]], runs: Runs, wrap=contextlib.nullcontext) -> None:
        encoder, _, precision = variant
        model = build_variant(cfg, vocab, label_vocab, encoder)
        trainer = Trainer(model, tcfgs[precision], loss_fn=loss_fn, evaluate_fn=lambda net: {"micro_f1": 0.0},
                          make_batches=lambda epoch: (collate(data, idx) for idx in batches),
                          steps_per_epoch=len(batches))
        with wrap(), textbook_decoder(encoder != "ours"):
            timed(lambda: trainer.fit().history[0]["train_loss"], 1, runs)

    variants = [_variant(v) for v in spec["variants"]]
    base = dataclasses.replace(trainer_config(cfg), max_epochs=1, progress=False)
    tcfgs = {precision: dataclasses.replace(base, precision=precision) for _, _, precision in variants}
    plan = {v: batches_in(v[1]) for v in variants}
    runs = {v: Runs() for v in variants}
    for v in variants:                                                   # warm-up, not timed
        run(v, plan[v][:2], Runs())
    losses: dict[tuple, list[float]] = {v: [] for v in variants}
    for _ in range(spec["repeats"]):
        for v in variants:
            run(v, plan[v], runs[v], around_fit)
            losses[v].append(runs[v].result)
    rows = []
    for (encoder, order, precision), measured in runs.items():
        batches = plan[encoder, order, precision]
        docs = sum(len(b) for b in batches)
        tokens = sum(lengths[i] for b in batches for i in b)
        padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
        rec = measured.record(docs, "docs_")
        rows.append({"encoder": encoder, "order": order, "precision": precision, "threads": spec["threads"],
                     "batches": len(batches),
                     "batch_size": cfg.train.batch_size, "docs": docs, "tokens": tokens, "padded_tokens": padded,
                     "padding_fraction": round(1 - tokens / padded, 4), **rec,
                     "tokens_per_s": round(tokens / rec["seconds"], 1),
                     "tokens_per_cpu_s": round(tokens / rec["cpu_seconds"], 1),
                     "train_loss_runs": [round(loss, 5) for loss in losses[encoder, order, precision]]})
    return {"rows": rows, "malloc_thresholds_raised": raised}
