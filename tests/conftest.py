"""Shared fixtures for the recipe, io, cli and estimator tests.

One tiny SGM is trained once per session (400 GoEmotions comments, 2 epochs, 32-wide layers,
one torch thread) and shared read-only. Helpers are fixtures because tests run with
--import-mode=importlib, where test modules cannot import each other.
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from seq2labels.apps.cli import sample_path
from seq2labels.pipeline.config import RunConfig, load_config
from seq2labels.data.readers import Example, read_examples

TINY_OVERRIDES = [
    "text.min_count=1", "text.max_len=32",
    "model.embedding_dim=32", "model.encoder_hidden=32", "model.decoder_hidden=32",
    "model.label_embedding_dim=32",
    "train.epochs=2", "train.batch_size=32", "train.lr=0.003", "train.threads=1", "train.progress=false",
]


@dataclass
class Tiny:
    generator: object            # recipe.LabelGenerator, trained
    result: object               # training.loop.TrainResult
    cfg: RunConfig
    train_examples: list[Example]
    test_examples: list[Example]
    state: dict                  # a copy of the weights right after training


@contextlib.contextmanager
def _torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (as train.threads=1 sets it) and put the old count back.

    Small models on a busy machine run many times faster on one thread.
    """
    with _torch_threads(1):
        yield


@pytest.fixture(scope="session")
def single_thread():
    """For module/session fixtures (set up before function-scoped ones): ``with single_thread(): ...``."""
    return lambda: _torch_threads(1)


@pytest.fixture(scope="session")
def sample_examples() -> tuple[list[Example], list[Example]]:
    """(first 400 train, first 120 test) examples of the shipped sample."""
    train = read_examples(sample_path("goemotions_train.jsonl.gz"))[:400]
    test = read_examples(sample_path("goemotions_test.jsonl.gz"))[:120]
    return train, test


@pytest.fixture(scope="session")
def tiny_cfg() -> RunConfig:
    return load_config(None, TINY_OVERRIDES)


@pytest.fixture(scope="session")
def train_tiny(sample_examples):
    """train_tiny(cfg) -> (generator, result) on the 400 sample examples, threads restored after."""
    from seq2labels.pipeline.recipe import train

    def run(cfg: RunConfig, run_dir=None, **kwargs):
        with _torch_threads(torch.get_num_threads()):  # train() sets train.threads for the process
            return train(cfg, run_dir, train_examples=sample_examples[0], **kwargs)

    return run


@pytest.fixture(scope="session")
def tiny(tiny_cfg, train_tiny, sample_examples) -> Tiny:
    generator, result = train_tiny(tiny_cfg)
    state = {k: v.detach().clone() for k, v in generator.model.state_dict().items()}
    return Tiny(generator, result, tiny_cfg, sample_examples[0], sample_examples[1], copy.deepcopy(state))


@pytest.fixture(scope="session")
def test_texts(sample_examples) -> list[str]:
    """60 held-out texts plus an empty one and one of only unknown words."""
    return [ex.text for ex in sample_examples[1][:60]] + ["", "zzqx qqzx xxqz"]


@pytest.fixture(scope="session")
def predictions_json():
    """predictions_json(generator, texts, **kw) -> one JSON string with full-precision floats."""
    def run(generator, texts, **kwargs) -> str:
        preds = generator.predict(texts, **kwargs)
        return json.dumps([{"labels": p.labels, "probabilities": p.probabilities, "score": p.score}
                           for p in preds])
    return run


@pytest.fixture(scope="session")
def write_jsonl():
    """write_jsonl(path, examples) writes {"text", "labels"} lines and returns the path."""
    def run(path: Path, examples) -> Path:
        with open(path, "w", encoding="utf-8") as f:
            for ex in examples:
                f.write(json.dumps({"text": ex.text, "labels": list(ex.labels)}, ensure_ascii=False) + "\n")
        return path
    return run


# ---- a tiny random-weight BERT folder (transformer encoder tests) ---------------------------

@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, sample_examples) -> Path:
    """A Hugging Face folder built here (no files in the repo, no download): a 2-layer, 32-wide
    BertModel with random weights and a word-piece tokenizer over the sample's 300 most frequent
    words plus single characters. Skipped when the transformer extra is absent."""
    pytest.importorskip("transformers", reason="needs the transformer extra: pip install 'seq2labels[transformer]'")
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    words = Counter(w for ex in sample_examples[0] for w in ex.text.lower().split() if w.isalpha())
    chars = sorted({c for ex in sample_examples[0] for c in ex.text.lower() if not c.isspace()})
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars if c.isalnum())]
    pieces += [w for w, _ in words.most_common(300) if w not in pieces]
    tokenizer = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(str(folder))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        bert = BertModel(BertConfig(vocab_size=len(pieces), hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=48, max_position_embeddings=40))
    bert.save_pretrained(str(folder), safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_overrides(tiny_bert_dir) -> list[str]:
    """TINY_OVERRIDES for SGM over the tiny BERT (frozen; 32 word pieces fit its 38-piece window)."""
    return [*TINY_OVERRIDES, "model.encoder=transformer", f"model.pretrained={tiny_bert_dir}"]
