"""Data: readers (jsonl, tsv, fastText, ARFF/CSV), the tokenizer, vocabularies, label order,
batching, word vectors, streaming shards, input validation and the shipped sample.

May import utils and errors only; never models, training or anything above.
"""

from seq2labels.data.dataset import (
    EncodedDataset,
    SeqBatch,
    batch_indices,
    collate,
    encode_dataset,
    iter_batches,
)
from seq2labels.data.embeddings import load_word_vectors
from seq2labels.data.labels import (
    BOS_ID,
    EOS_ID,
    LABEL_ORDERS,
    PAD_ID,
    SPECIAL_LABELS,
    LabelVocab,
)
from seq2labels.data.readers import FORMATS, Example, detect_format, iter_examples, read_examples
from seq2labels.data.tokenizer import DEFAULT_PATTERN, RegexTokenizer
from seq2labels.data.vocab import PAD_TOKEN, UNK_TOKEN, Vocab

__all__ = [
    "BOS_ID",
    "DEFAULT_PATTERN",
    "EOS_ID",
    "FORMATS",
    "LABEL_ORDERS",
    "PAD_ID",
    "PAD_TOKEN",
    "SPECIAL_LABELS",
    "UNK_TOKEN",
    "EncodedDataset",
    "Example",
    "LabelVocab",
    "RegexTokenizer",
    "SeqBatch",
    "Vocab",
    "batch_indices",
    "collate",
    "detect_format",
    "encode_dataset",
    "iter_batches",
    "iter_examples",
    "load_word_vectors",
    "read_examples",
]
