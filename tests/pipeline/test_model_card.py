"""The model card (README.md in a model folder): training data with checksums and counts, labels
with their frequencies, metrics, intended use and limits; kept across save -> load -> save."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import replace

import pytest

from seq2labels.errors import ModelFormatError
from seq2labels.pipeline.model_card import RARE_LABEL_DOCS, describe_training_data, model_card
from seq2labels.pipeline.generator import load_model
from seq2labels.pipeline.files import save_model
from seq2labels.pipeline.generator import LabelGenerator
from seq2labels.pipeline.recipe import split_validation

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny_split(tiny):
    """The training / validation examples the tiny model was trained on (train() splits them so)."""
    return split_validation(tiny.train_examples, tiny.cfg.data.valid_fraction, tiny.cfg.train.seed)


@pytest.fixture
def files(tmp_path, tiny_split, tiny, write_jsonl):
    train, valid = tiny_split
    return {"train": write_jsonl(tmp_path / "train.jsonl", train),
            "valid": write_jsonl(tmp_path / "valid.jsonl", valid),
            "test": write_jsonl(tmp_path / "test.jsonl", tiny.test_examples)}


def section(card: str, title: str) -> str:
    """The text of one '## title' section."""
    start = card.index(f"## {title}\n")
    end = card.find("\n## ", start + 1)
    return card[start:end if end != -1 else None]


def test_card_names_each_data_file_with_its_sha256_and_document_count(tiny, tiny_split, files):
    cfg = replace(tiny.cfg, data=replace(tiny.cfg.data, **{role: str(path) for role, path in files.items()}))
    generator = LabelGenerator(tiny.generator.model, tiny.generator.tokenizer, tiny.generator.vocab,
                               tiny.generator.label_vocab, cfg)
    generator.data_summary = describe_training_data(cfg, *tiny_split)
    data = section(model_card(generator, {"test_micro_f1": 0.25}), "Training data")
    for role, path in files.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        line = next(line for line in data.splitlines() if line.startswith(f"- {role if role != 'valid' else 'validation'}:"))
        assert str(path) in line and digest in line, line
    assert f"{len(tiny_split[0]):,} documents trained on" in data
    assert f"({len(tiny_split[1]):,} documents;" in data


def test_card_of_a_trained_model_counts_documents_and_label_frequencies(tiny, tiny_split):
    train, valid = tiny_split
    card = model_card(tiny.generator, None)
    data = section(card, "Training data")
    assert "in-memory data (Python API) (360 documents)" in data and len(train) == 360
    assert f"- validation: {len(valid)} documents, 10% of the train file set aside (seeded split, seed 0)" in data
    per_doc = sum(len(set(ex.labels)) for ex in train) / len(train)
    assert f"labels per training document: {per_doc:.2f}" in data

    counts = Counter(label for ex in train for label in set(ex.labels))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    labels = section(card, "Labels")
    assert f"- {len(counts)} labels (all in `labels.json`)" in labels
    frequent = next(line for line in labels.splitlines() if line.startswith("- most frequent"))
    assert frequent.endswith(", ".join(f"`{lab}` ({n:,}, {n / len(train):.1%})" for lab, n in ranked[:10]))
    rarest = next(line for line in labels.splitlines() if line.startswith("- rarest"))
    assert rarest.endswith(", ".join(f"`{lab}` ({n:,}, {n / len(train):.1%})" for lab, n in ranked[-5:]))


def test_card_states_intended_use_and_limits(tiny, tiny_split):
    card = model_card(tiny.generator, {"valid_micro_f1": 0.5})
    assert "## Intended use" in card and "seq2labels predict MODEL --top-k K" in card
    limits = section(card, "Limits")
    assert f"Only the {tiny.generator.label_vocab.num_labels} labels in `labels.json` can be predicted" in limits
    assert "never seen in training never comes out" in limits
    assert f"cut to their first {tiny.cfg.text.max_len} tokens" in limits
    assert "Language and domain: those of the training data" in limits and "after lowercasing" in limits
    counts = Counter(label for ex in tiny_split[0] for label in set(ex.labels))
    rare = sum(1 for n in counts.values() if n < RARE_LABEL_DOCS)
    assert rare > 0  # 360 comments: several emotions are rare
    assert f"- {rare} label(s) have fewer than {RARE_LABEL_DOCS} training documents" in limits
    assert "not calibrated" in limits
    assert "| valid_micro_f1 | 0.5000 |" in section(card, "Metrics")


def test_the_data_section_survives_save_load_save(tiny, tmp_path):
    first = save_model(tiny.generator, tmp_path / "a", metrics={"valid_micro_f1": 0.5})
    loaded = load_model(first)
    assert loaded.data_summary == tiny.generator.data_summary
    second = save_model(loaded, tmp_path / "b", metrics={"valid_micro_f1": 0.5})
    card = (second / "README.md").read_text(encoding="utf-8")
    assert card == (first / "README.md").read_text(encoding="utf-8")
    assert "most frequent in training" in card


def test_a_model_without_data_summary_still_gets_a_card(tiny, tmp_path):
    folder = save_model(tiny.generator, tmp_path / "model")
    meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    del meta["training_data"]  # a model saved before the card counted its data
    (folder / "config.json").write_text(json.dumps(meta), encoding="utf-8")
    loaded = load_model(folder)
    assert loaded.data_summary is None
    card = model_card(loaded, None)
    assert "- train: in-memory data (Python API)\n" in card
    assert f"`{loaded.label_vocab.labels[0]}`" in section(card, "Labels")


def test_malformed_training_data_is_a_model_format_error(tiny, tmp_path):
    folder = save_model(tiny.generator, tmp_path / "model")
    meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    meta["training_data"] = ["not", "an", "object"]
    (folder / "config.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelFormatError, match="training_data must be a JSON object"):
        load_model(folder)
