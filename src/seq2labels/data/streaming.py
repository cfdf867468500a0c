"""Training data larger than memory: stream shard files instead of loading them.

With ``data.streaming: true`` and ``data.train: "shards/*.jsonl.gz"`` the recipe never
holds the training set. A first pass over the shards (:func:`scan_shards`) counts words,
labels and examples to build the vocabularies; then every epoch :class:`StreamingDataset`
reads the shards again, lazily, through the ordinary readers (so a bad line is still
reported as ``FILE:LINE``), and keeps at most ``buffer_size`` examples per worker: a window
is filled, shuffled, sorted by length in chunks and cut into batches (the in-memory
bucketing of :func:`~seq2labels.data.dataset.batch_indices`, applied per window).

Shuffling is therefore local: shard order is drawn anew each epoch and examples move
only within a window. Everything is derived from (seed, epoch, rank, worker, window),
so a seed gives the same batches on every run and a resumed run sees the same epoch.

Sharding: example ``i`` of the epoch's stream goes to DDP rank ``i % world_size``; within
a rank, its ``j``-th example goes to DataLoader worker ``j % num_workers``. Every rank
reads (and parses) every line but tokenizes only its own. Ranks whose share is one
example short repeat their first example, so all ranks run the same number of steps.
"""

from __future__ import annotations

import glob
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from seq2labels.data.dataset import SeqBatch, batch_indices, collate, encode_dataset
from seq2labels.data.labels import LABEL_ORDERS, LabelVocab, random_rank
from seq2labels.data.readers import Example, iter_examples
from seq2labels.data.tokenizer import RegexTokenizer
from seq2labels.data.vocab import SPECIAL_TOKENS, Vocab
from seq2labels.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

__all__ = ["BoundedCounter", "ShardScan", "StreamingDataset", "expand_shards", "scan_shards",
           "streaming_loader"]

# The word counter of the vocabulary pass keeps at most this many times max_vocab distinct words.
COUNTER_FACTOR = 10

ExampleReader = Callable[..., Iterable[Example]]


# ---------------------------------------------------------------------------- shard files

def expand_shards(spec: str | Sequence[str]) -> list[Path]:
    """The shard files of ``spec``: a path, a glob (``shards/*.jsonl.gz``) or a list of them.

    Globs are expanded in sorted order so every process sees the same list.
    """
    patterns = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not patterns:
        raise DataFormatError("no training shards given")
    paths: list[Path] = []
    for pattern in patterns:
        pattern = str(pattern)
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise DataFormatError("no file matches this pattern", path=pattern)
            paths.extend(Path(m) for m in matches)
        else:
            paths.append(Path(pattern))
    return paths


# ---------------------------------------------------------------------- vocabulary pass

class BoundedCounter:
    """Word counts with a memory cap: past ``capacity`` distinct words the rarest are dropped.

    Like gensim's ``max_vocab_size``: each prune removes words seen at most ``floor`` times
    and raises the floor. Words frequent enough to make a ``max_vocab`` list survive; the
    counts of rare words are then approximate. ``capacity=None`` counts exactly.
    """

    def __init__(self, capacity: int | None):
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be None or >= 1, got {capacity}")
        self.capacity = capacity
        self.counts: Counter[str] = Counter()
        self.floor = 0
        self.prunes = 0

    def update(self, tokens: Iterable[str]) -> None:
        self.counts.update(tokens)
        if self.capacity is not None and len(self.counts) > self.capacity:
            self._prune()

    def _prune(self) -> None:
        while len(self.counts) > self.capacity:  # type: ignore[operator]
            self.floor += 1
            self.prunes += 1
            self.counts = Counter({tok: c for tok, c in self.counts.items() if c > self.floor})

    def __len__(self) -> int:
        return len(self.counts)


def vocab_from_counts(counts: Counter[str], min_count: int, max_size: int | None) -> Vocab:
    """The vocabulary :meth:`Vocab.build` would make from these counts (same order, same cut)."""
    counts = Counter({tok: c for tok, c in counts.items() if tok not in SPECIAL_TOKENS})
    kept = sorted((tok for tok, c in counts.items() if c >= min_count), key=lambda tok: (-counts[tok], tok))
    if max_size is not None:
        kept = kept[:max_size - len(SPECIAL_TOKENS)]
    return Vocab([*SPECIAL_TOKENS, *kept])


def label_vocab_from_counts(counts: Counter[str], order: str, seed: int) -> LabelVocab:
    """The label vocabulary :meth:`LabelVocab.build` would make (counts are per example)."""
    if order not in LABEL_ORDERS:
        raise ValueError(f"unknown label order {order!r}; expected one of {LABEL_ORDERS}")
    names = sorted(counts, key=lambda name: (-counts[name], name))
    rank = random_rank(names, seed) if order == "random" else None
    return LabelVocab(names, order=order, rank=rank)


@dataclass
class ShardScan:
    """What the vocabulary pass learned about the shards."""

    paths: list[Path]
    tokenizer: RegexTokenizer
    vocab: Vocab
    label_vocab: LabelVocab
    n_examples: int
    per_file: dict[str, int] = field(default_factory=dict)
    pruned: bool = False


def scan_shards(paths: Sequence[Path], *, tokenizer: RegexTokenizer, max_len: int, min_count: int,
                max_vocab: int | None, label_order: str, seed: int, fmt: str | None = None,
                encoding_errors: str = "strict", reader: ExampleReader = iter_examples,
                max_labels_per_text: int | None = None) -> ShardScan:
    """One streaming pass: word and label counts, examples per file; memory bounded by max_vocab.
    A text with more than ``max_labels_per_text`` labels stops it, as in-memory training does."""
    from seq2labels.data.validation import check_label_counts

    capacity = COUNTER_FACTOR * max_vocab if max_vocab is not None else None
    words = BoundedCounter(capacity)
    labels: Counter[str] = Counter()
    per_file: dict[str, int] = {}
    for path in paths:
        n = 0
        for example in reader(path, fmt, encoding_errors=encoding_errors):
            if max_labels_per_text is not None:
                check_label_counts([example], max_labels_per_text, f"{path} (example {n + 1})")
            words.update(tokenizer(example.text)[:max_len])
            labels.update(set(example.labels))
            n += 1
        per_file[str(path)] = n
    n_examples = sum(per_file.values())
    if not labels:
        raise DataFormatError(f"{', '.join(map(str, paths))}: no labels found in any example")
    if words.prunes:
        log.warning("more than %d distinct words: the counter dropped words seen <= %d times (%d prunes); "
                    "counts of rare words are approximate", capacity, words.floor, words.prunes)
    return ShardScan(paths=list(paths), tokenizer=tokenizer,
                     vocab=vocab_from_counts(words.counts, min_count, max_vocab),
                     label_vocab=label_vocab_from_counts(labels, label_order, seed),
                     n_examples=n_examples, per_file=per_file, pruned=bool(words.prunes))


# ------------------------------------------------------------------ the streaming data set

def _share(n: int, part: int, parts: int) -> int:
    """How many of ``range(n)`` fall on ``part`` when dealt out modulo ``parts``."""
    return len(range(part, n, parts))


class StreamingDataset(IterableDataset):
    """Batches (:class:`SeqBatch`) of one rank's share of the shards, one epoch at a time.

    Call :meth:`set_epoch` before iterating; use with ``DataLoader(batch_size=None)``
    (see :func:`streaming_loader`). ``n_examples`` is the count from the vocabulary pass:
    it fixes the number of batches of every rank in advance, and a stream that turns out
    longer or shorter (the files changed) is an error rather than a hang.
    """

    def __init__(self, paths: Sequence[Path], *, tokenizer: RegexTokenizer, vocab: Vocab, label_vocab: LabelVocab,
                 max_len: int, batch_size: int, buffer_size: int, seed: int, n_examples: int,
                 rank: int = 0, world_size: int = 1, fmt: str | None = None, encoding_errors: str = "strict",
                 reader: ExampleReader = iter_examples):
        super().__init__()
        if batch_size < 1 or buffer_size < 1 or n_examples < 1:
            raise ValueError(f"batch_size, buffer_size and n_examples must be >= 1, got "
                             f"{batch_size}, {buffer_size}, {n_examples}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size}")
        self.paths = list(paths)
        self.tokenizer, self.vocab, self.label_vocab = tokenizer, vocab, label_vocab
        self.max_len, self.batch_size, self.seed = max_len, batch_size, seed
        # A window holds whole batches, so only the last window of a worker has a short batch.
        self.buffer_size = math.ceil(buffer_size / batch_size) * batch_size
        self.n_examples, self.rank, self.world_size = n_examples, rank, world_size
        self.fmt, self.encoding_errors, self.reader = fmt, encoding_errors, reader
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def per_rank(self) -> int:
        """Examples every rank trains on per epoch (the largest share; short ranks pad)."""
        return math.ceil(self.n_examples / self.world_size)

    def batches_per_epoch(self, num_workers: int = 0) -> int:
        """Exactly how many batches one rank yields per epoch with ``num_workers`` loader workers."""
        parts = max(1, num_workers)
        return sum(math.ceil(_share(self.per_rank, w, parts) / self.batch_size) for w in range(parts))

    def shard_order(self, epoch: int) -> list[Path]:
        """This epoch's shard order: the same permutation on every rank and worker."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.paths))
        return [self.paths[i] for i in order]

    def __iter__(self) -> Iterator[SeqBatch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        window: list[Example] = []
        windows = 0
        for example in self._my_examples(worker, workers):
            window.append(example)
            if len(window) == self.buffer_size:
                yield from self._window_batches(window, worker, windows)
                window, windows = [], windows + 1
        if window:
            yield from self._window_batches(window, worker, windows)

    def _my_examples(self, worker: int, workers: int) -> Iterator[Example]:
        """This (rank, worker)'s examples in stream order, padded as described in the module doc."""
        natural = _share(self.n_examples, self.rank, self.world_size)
        pads = natural < self.per_rank and natural % workers == worker  # this worker owns the padding slot
        first: Example | None = None
        position = 0
        for example in self._stream():
            if position < self.n_examples and position % self.world_size == self.rank:
                j = position // self.world_size
                if j == 0:
                    first = example
                if j % workers == worker:
                    yield example
            position += 1
        if position != self.n_examples:
            raise DataFormatError(f"the shards hold {position} examples now but {self.n_examples} when the "
                                  "vocabulary was built; were they changed during training?",
                                  path=", ".join(map(str, self.paths)))
        if pads and first is not None:
            yield first

    def _stream(self) -> Iterator[Example]:
        for path in self.shard_order(self.epoch):
            yield from self.reader(path, self.fmt, encoding_errors=self.encoding_errors)

    def _window_batches(self, window: list[Example], worker: int, index: int) -> Iterator[SeqBatch]:
        """Encode one window, then shuffle and length-bucket it like an in-memory epoch."""
        encoded = encode_dataset(window, self.tokenizer, self.vocab, self.label_vocab, self.max_len)
        seed = int(np.random.default_rng([self.seed, self.epoch, self.rank, worker, index]).integers(2**63))
        for indices in batch_indices(encoded.lengths(), self.batch_size, shuffle=True, seed=seed):
            yield collate(encoded, indices)


def streaming_loader(dataset: StreamingDataset, epoch: int, *, num_workers: int = 0,
                     pin_memory: bool = False) -> DataLoader:
    """A DataLoader over ``dataset``'s epoch ``epoch``; batching is the data set's own."""
    dataset.set_epoch(epoch)
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory)


def check_streaming_config(cfg) -> None:
    """What streaming cannot do, said before the first pass over the data."""
    if not cfg.data.train:
        raise ConfigError("data.streaming needs data.train: a shard file, a glob such as 'shards/*.jsonl.gz'")
    if not cfg.data.valid:
        raise ConfigError("data.streaming needs data.valid (read into memory): a validation split cannot be "
                          "carved from a stream")
    if cfg.text.pretrain_embeddings:
        raise ConfigError("text.pretrain_embeddings needs the training texts in memory; it does not work with "
                          "data.streaming (use text.word_vectors)")


def scan_from_config(cfg) -> ShardScan:
    """The vocabulary pass over ``cfg.data.train`` with the config's text and label settings."""
    check_streaming_config(cfg)
    paths = expand_shards(cfg.data.train)
    scan = scan_shards(paths, tokenizer=RegexTokenizer(lowercase=cfg.text.lowercase), max_len=cfg.text.max_len,
                       min_count=cfg.text.min_count, max_vocab=cfg.text.max_vocab, label_order=cfg.labels.order,
                       seed=cfg.train.seed, fmt=cfg.data.format, encoding_errors=cfg.data.encoding_errors,
                       max_labels_per_text=cfg.labels.max_per_text)
    log.info("streaming %d examples from %d shard(s)", scan.n_examples, len(paths))
    return scan


def dataset_from_scan(scan: ShardScan, cfg, *, rank: int = 0, world_size: int = 1) -> StreamingDataset:
    return StreamingDataset(scan.paths, tokenizer=scan.tokenizer, vocab=scan.vocab, label_vocab=scan.label_vocab,
                            max_len=cfg.text.max_len, batch_size=cfg.train.batch_size,
                            buffer_size=cfg.data.stream_buffer, seed=cfg.train.seed, n_examples=scan.n_examples,
                            rank=rank, world_size=world_size, fmt=cfg.data.format,
                            encoding_errors=cfg.data.encoding_errors)
