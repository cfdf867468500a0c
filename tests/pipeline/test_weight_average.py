"""``train.ema_decay``: the recipe trains, evaluates and saves the moving average of the SGM weights."""

from __future__ import annotations

import pytest
import torch

from seq2labels.errors import ConfigError
from seq2labels.pipeline.config import load_config
from seq2labels.pipeline.generator import load_model
from seq2labels.pipeline.recipe import train, trainer_config

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*never seen in training:UserWarning")]

SMALL = ["text.min_count=1", "text.max_len=16", "model.embedding_dim=16", "model.encoder_hidden=16",
         "model.decoder_hidden=16", "model.label_embedding_dim=16", "train.batch_size=32", "train.lr=0.003",
         "train.threads=1", "train.progress=false", "train.epochs=3", "train.patience=5"]


def test_default_is_no_averaging_and_the_key_reaches_the_trainer():
    assert load_config(None, []).train.ema_decay == 0.0
    assert trainer_config(load_config(None, ["train.ema_decay=0.99"])).ema_decay == 0.99


@pytest.mark.parametrize("value", ["1.0", "-0.5"])
def test_out_of_range_decay_is_a_config_error_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"train\.ema_decay"):
        load_config(None, [f"train.ema_decay={value}"])


def test_averaged_sgm_is_saved_and_reloads_to_the_kept_weights(sample_examples, tmp_path):
    examples = sample_examples[0][:240]
    plain, _ = train(load_config(None, SMALL), tmp_path / "plain", train_examples=examples)
    averaged, result = train(load_config(None, [*SMALL, "train.ema_decay=0.8"]), tmp_path / "ema",
                             train_examples=examples)
    weights = averaged.model.state_dict()
    assert any(not torch.equal(weights[k], v) for k, v in plain.model.state_dict().items())
    reloaded = load_model(averaged.save(tmp_path / "saved"))
    assert all(torch.equal(reloaded.model.state_dict()[k], v) for k, v in weights.items())
    assert reloaded.config.train.ema_decay == 0.8  # the model's config records it
    assert reloaded.predict(["a short text"])[0] is not None
    assert result.best_epoch >= 1
