"""Label orders and class-imbalance options through the public recipe: config, training, saving,
reproducibility and resuming (the learned order)."""

from __future__ import annotations

import csv

import pytest
import torch

from seq2labels.errors import ConfigError
from seq2labels.pipeline.config import load_config
from seq2labels.pipeline.generator import LabelGenerator
from seq2labels.pipeline.recipe import train
from seq2labels.training.artifacts import CHECKPOINT_NAME, load_checkpoint

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*never seen in training:UserWarning")]

SMALL = ["text.min_count=1", "text.max_len=16", "model.embedding_dim=16", "model.encoder_hidden=16",
         "model.decoder_hidden=16", "model.label_embedding_dim=16", "train.batch_size=32", "train.lr=0.003",
         "train.threads=1", "train.progress=false", "train.epochs=1"]

OPTIONS = {
    "orderfree": ["labels.order=orderfree"],
    "orderfree hungarian": ["labels.order=orderfree", "labels.orderfree=hungarian"],
    "learned": ["labels.order=learned", "labels.learned_warmup=0"],
    "inverse": ["train.label_weights=inverse"],
    "effective": ["train.label_weights=effective", "train.label_weights_beta=0.99"],
    "focal": ["train.loss=focal", "train.focal_gamma=1.0"],
    "focal + effective + orderfree": ["train.loss=focal", "train.label_weights=effective", "labels.order=orderfree"],
}


@pytest.fixture(scope="module")
def examples(sample_examples):
    return sample_examples[0][:160], sample_examples[1][:40]


@pytest.mark.parametrize("name", OPTIONS)
def test_each_option_trains_saves_and_loads(name, examples, tmp_path):
    cfg = load_config(None, SMALL + OPTIONS[name])
    generator, result = train(cfg, tmp_path / "run", train_examples=examples[0])
    assert result.epochs_run == 1 and torch.isfinite(torch.tensor(result.history[0]["train_loss"]))
    assert "label_position_deviation" in result.history[0]
    folder = generator.save(tmp_path / "model")
    back = LabelGenerator.load(folder)
    assert back.config == cfg and back.label_vocab == generator.label_vocab
    assert back.label_vocab.order == cfg.labels.order
    texts = [ex.text for ex in examples[1][:8]]
    assert [p.labels for p in back.predict(texts)] == [p.labels for p in generator.predict(texts)]
    metrics = back.evaluate(examples[1])
    assert 0.0 <= metrics["micro_f1"] <= 1.0 and metrics["label_position_deviation"] >= 0.0


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def last_weights(run_dir):
    """The weights after the run's last epoch (the returned model holds the best epoch's)."""
    return load_checkpoint(run_dir / CHECKPOINT_NAME)["model"]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


LEARNED = SMALL + ["labels.order=learned", "labels.learned_warmup=1"]


def test_learned_order_is_reproducible_and_resumes_exactly(examples, tmp_path):
    cfg3 = load_config(None, LEARNED + ["train.epochs=3", "train.patience=5"])
    _, r1 = train(cfg3, tmp_path / "a", train_examples=examples[0])
    _, r2 = train(cfg3, tmp_path / "b", train_examples=examples[0])
    assert same_weights(last_weights(tmp_path / "a"), last_weights(tmp_path / "b"))
    assert [h["train_loss"] for h in r1.history] == [h["train_loss"] for h in r2.history]
    deviations = [h["learned_order_deviation"] for h in r1.history]
    assert deviations[0] == 0.0 and deviations[1] > 0.0         # warm-up, then the model's own order
    # stop after epoch 2 (already in learned order), resume for epoch 3
    cfg2 = load_config(None, LEARNED + ["train.epochs=2", "train.patience=5"])
    train(cfg2, tmp_path / "c", train_examples=examples[0])
    train(cfg3, tmp_path / "c", train_examples=examples[0], resume=True)
    assert same_weights(last_weights(tmp_path / "a"), last_weights(tmp_path / "c"))
    straight, resumed = read_csv(tmp_path / "a" / "metrics.csv"), read_csv(tmp_path / "c" / "metrics.csv")
    assert [(r["train_loss"], r["learned_order_deviation"]) for r in resumed] == \
        [(r["train_loss"], r["learned_order_deviation"]) for r in straight]


def test_learned_order_changes_training_compared_with_frequency(examples, tmp_path):
    _, freq = train(load_config(None, SMALL + ["train.epochs=2"]), tmp_path / "f", train_examples=examples[0])
    _, learned = train(load_config(None, LEARNED + ["train.epochs=2"]), tmp_path / "l", train_examples=examples[0])
    assert freq.history[0]["train_loss"] == learned.history[0]["train_loss"]   # warm-up: frequency order
    assert freq.history[1]["train_loss"] != learned.history[1]["train_loss"]
    assert not same_weights(last_weights(tmp_path / "f"), last_weights(tmp_path / "l"))


@pytest.mark.parametrize("overrides, key", [
    (["labels.order=sideways"], "labels.order"),
    (["labels.order=orderfree", "labels.orderfree=mla"], "labels.orderfree"),
    (["labels.orderfree=hungarian"], "labels.orderfree"),
    (["labels.learned_warmup=3"], "labels.learned_warmup"),
    (["labels.order=learned", "labels.learned_warmup=-1"], "labels.learned_warmup"),
    (["train.loss=hinge"], "train.loss"),
    (["train.focal_gamma=1.0"], "train.focal_gamma"),
    (["train.loss=focal", "train.focal_gamma=-1"], "train.focal_gamma"),
    (["train.label_weights=sqrt"], "train.label_weights"),
    (["train.label_weights_beta=0.9"], "train.label_weights_beta"),
    (["train.label_weights=effective", "train.label_weights_beta=1.0"], "train.label_weights_beta"),
    (["labels.order=learned", "data.streaming=true", "data.train=x.jsonl"], "labels.order"),
    (["train.label_weights=inverse", "data.streaming=true", "data.train=x.jsonl"], "train.label_weights"),
    (["labels.orderfree=2"], "labels.orderfree"),
])
def test_bad_order_and_imbalance_settings_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, overrides)


def test_new_keys_have_the_old_behaviour_by_default():
    cfg = load_config(None, [])
    assert (cfg.labels.order, cfg.labels.orderfree, cfg.labels.learned_warmup) == ("frequency", "pla", 2)
    assert (cfg.train.loss, cfg.train.label_weights, cfg.train.focal_gamma, cfg.train.label_weights_beta) == \
        ("ce", "none", 2.0, 0.999)
