"""``train.monitor``: the validation metric that early stopping, the lr plateau and the kept weights follow."""

from __future__ import annotations

import pytest
from safetensors import safe_open

from seq2labels.errors import ConfigError
from seq2labels.pipeline.config import load_config
from seq2labels.pipeline.recipe import train, trainer_config
from seq2labels.training.artifacts import BEST_WEIGHTS_NAME

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*never seen in training:UserWarning")]

SMALL = ["text.min_count=1", "text.max_len=16", "model.embedding_dim=16", "model.encoder_hidden=16",
         "model.decoder_hidden=16", "model.label_embedding_dim=16", "train.batch_size=32", "train.lr=0.003",
         "train.threads=1", "train.progress=false", "train.epochs=5", "train.patience=5"]


def test_default_monitor_is_micro_f1():
    assert load_config(None, []).train.monitor == "micro_f1"
    assert trainer_config(load_config(None, [])).monitor == "micro_f1"


def test_unknown_monitor_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"train\.monitor.*'micro_f1'.*'hamming'"):
        load_config(None, ["train.monitor=hamming"])


@pytest.mark.parametrize("monitor", ["macro_f1", "example_f1"])
def test_kept_epoch_is_the_best_of_the_monitored_metric(monitor, sample_examples, tmp_path):
    cfg = load_config(None, [*SMALL, f"train.monitor={monitor}"])
    _, result = train(cfg, tmp_path / "run", train_examples=sample_examples[0][:240])
    scores = [row[monitor] for row in result.history]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # the first epoch reaching the maximum
    assert result.best_epoch == best + 1 and result.best_score == pytest.approx(scores[best])
    with safe_open(str(tmp_path / "run" / BEST_WEIGHTS_NAME), "pt") as f:
        assert f.metadata()["monitor"] == monitor
