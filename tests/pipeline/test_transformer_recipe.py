"""SGM over a pretrained transformer through the recipe (the tiny random BERT folder of conftest):
training in both modes, save/load, seeded reproducibility, label-name init, and config errors."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers", reason="needs the transformer extra: pip install 'seq2labels[transformer]'")

from seq2labels.errors import ConfigError, DataFormatError  # noqa: E402
from seq2labels.pipeline.config import load_config  # noqa: E402
from seq2labels.pipeline.generator import load_model  # noqa: E402
from seq2labels.pipeline.transformer import label_texts, sgm_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def frozen(tiny_bert_overrides, train_tiny):
    generator, result = train_tiny(load_config(None, tiny_bert_overrides))
    return generator, result


def encoder_weights(generator) -> dict:
    return {k: v.clone() for k, v in generator.model.encoder.model.state_dict().items()}


def test_frozen_training_learns_and_leaves_the_encoder_alone(frozen, tiny_bert_dir):
    generator, result = frozen
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    from transformers import AutoModel
    pretrained = AutoModel.from_pretrained(str(tiny_bert_dir), local_files_only=True).state_dict()
    for name, value in encoder_weights(generator).items():
        assert torch.equal(value, pretrained[name]), name
    assert generator.model.encoder.cache is None            # the training cache is dropped afterwards


def test_save_load_round_trip_gives_identical_predictions(frozen, tmp_path, test_texts, predictions_json):
    generator, _ = frozen
    generator.save(tmp_path / "model")
    assert (tmp_path / "model" / "tokenizer.json").is_file()
    meta = json.loads((tmp_path / "model" / "config.json").read_text())
    assert meta["model"]["encoder"] == "transformer" and meta["model"]["encoder_options"]["hf_config"]
    assert meta["tokenizer"]["type"] == "wordpiece"
    loaded = load_model(tmp_path / "model")
    assert predictions_json(loaded, test_texts, beam_size=3) == predictions_json(generator, test_texts, beam_size=3)


def test_a_saved_model_needs_neither_the_pretrained_folder_nor_the_network(frozen, tmp_path, monkeypatch,
                                                                         test_texts, predictions_json):
    generator, _ = frozen
    generator.save(tmp_path / "model")
    import seq2labels.utils.hf as hf

    def no_folder(*_args, **_kwargs):
        raise AssertionError("loading a saved model must not look for the pretrained folder")

    monkeypatch.setattr(hf, "resolve_pretrained", no_folder)
    monkeypatch.setattr(hf, "minilm_folder", no_folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_model(tmp_path / "model")
    assert predictions_json(loaded, test_texts) == predictions_json(generator, test_texts)


def test_missing_tokenizer_file_is_a_model_format_error(frozen, tmp_path):
    from seq2labels.errors import ModelFormatError
    generator, _ = frozen
    generator.save(tmp_path / "model")
    (tmp_path / "model" / "tokenizer.json").unlink()
    with pytest.raises(ModelFormatError, match="tokenizer.json"):
        load_model(tmp_path / "model")


def test_seeded_cpu_runs_are_reproducible(tiny_bert_overrides, train_tiny, frozen):
    again, result = train_tiny(load_config(None, tiny_bert_overrides))
    first = frozen[0].model.state_dict()
    for name, value in again.model.state_dict().items():
        assert torch.equal(value, first[name]), name
    assert result.history == [{**row, "epoch_seconds": result.history[i]["epoch_seconds"]}
                              for i, row in enumerate(frozen[1].history)]


def test_finetuning_changes_only_the_top_layer_reproducibly(tiny_bert_overrides, train_tiny, frozen):
    cfg = load_config(None, [*tiny_bert_overrides, "model.encoder_mode=finetune", "model.finetune_layers=1",
                             "model.encoder_lr=1e-3", "train.epochs=1", "train.lr_schedule=linear",
                             "train.warmup_steps=3"])
    generator, _ = train_tiny(cfg)
    before, after = encoder_weights(frozen[0]), encoder_weights(generator)
    changed = {name for name in after if not torch.equal(after[name], before[name])}
    assert changed and all(name.startswith("encoder.layer.1.") for name in changed)
    again, _ = train_tiny(cfg)                      # dropout inside the trained layer is seeded too
    for name, value in again.model.state_dict().items():
        assert torch.equal(value, generator.model.state_dict()[name]), name


def test_bf16_encoder_precision_trains(tiny_bert_overrides, train_tiny, test_texts):
    generator, result = train_tiny(load_config(None, [*tiny_bert_overrides, "model.encoder_precision=bf16",
                                                      "train.epochs=1"]))
    assert len(generator.predict(test_texts[:5])) == 5 and result.epochs_run == 1


def test_windows_read_texts_longer_than_one_window(tiny_bert_overrides, train_tiny, test_texts):
    cfg = load_config(None, [*tiny_bert_overrides, "text.max_len=80", "model.long_text=windows", "train.epochs=1"])
    generator, _ = train_tiny(cfg)
    long_text = " ".join(test_texts[:6])
    pred = generator.predict([long_text], return_attention=True)[0]
    assert generator.model.encoder.window == 38
    assert pred.attention.shape[1] == len(generator.tokenizer(long_text)) > 38


def test_label_names_initialise_the_label_embeddings(tiny_bert_overrides, train_tiny, frozen, tmp_path):
    from seq2labels.pipeline import transformer as tf
    descriptions = tmp_path / "labels.json"
    descriptions.write_text(json.dumps({"joy": "happy and glad"}))
    cfg = load_config(None, [*tiny_bert_overrides, "model.label_init=names",
                             f"model.label_descriptions={descriptions}", "train.epochs=1"])
    seen = {}
    original = tf.init_label_embeddings

    def spy(model, vectors, seed):
        seen["vectors"] = vectors.clone()
        original(model, vectors, seed)
        seen["weight"] = model.label_embedding.weight.detach().clone()

    tf.init_label_embeddings = spy
    try:
        generator, _ = train_tiny(cfg)
    finally:
        tf.init_label_embeddings = original
    label_vocab = generator.label_vocab
    assert seen["vectors"].shape == (label_vocab.num_labels, 32)
    texts = label_texts(label_vocab, descriptions)
    assert texts[label_vocab.labels.index("joy")] == "happy and glad"
    # 32-wide names onto 32-wide label embeddings: centred and rescaled, same directions
    centred = seen["vectors"] - seen["vectors"].mean(0)
    cosine = torch.nn.functional.cosine_similarity(seen["weight"][3:], centred, dim=1)
    assert torch.all(cosine > 0.999)


def test_label_description_file_errors_name_the_file(frozen, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(DataFormatError, match="bad.json"):
        label_texts(frozen[0].label_vocab, bad)
    with pytest.raises(DataFormatError, match="not found"):
        label_texts(frozen[0].label_vocab, tmp_path / "missing.json")


@pytest.mark.parametrize("overrides, message", [
    (["model.encoder=transformer"], "model.pretrained"),
    (["model.pretrained=/x"], "model.encoder: transformer"),
    (["model.label_init=names"], "needs model.encoder: transformer"),
    (["model.label_descriptions=x.json"], "needs model.encoder: transformer"),
    (["model.encoder=transformer", "model.pretrained=/x", "model.bag_of_words=true"], "bag_of_words"),
    (["model.encoder=transformer", "model.pretrained=/x", "text.pretrain_embeddings=true"], "pretrain_embeddings"),
    (["model.encoder=transformer", "model.pretrained=/x", "model.long_text=head_tail", "text.max_len=100",
      "model.head_tokens=100"], "head_tokens"),
    (["model.encoder=bert"], "model.encoder"),
])
def test_config_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_a_missing_folder_and_a_text_over_one_window_are_config_errors(tiny_bert_overrides, train_tiny, tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        train_tiny(load_config(None, [*tiny_bert_overrides, f"model.pretrained={tmp_path / 'nope'}"]))
    with pytest.raises(ConfigError, match="long_text: windows"):
        train_tiny(load_config(None, [*tiny_bert_overrides, "text.max_len=39"]))


def test_rnn_network_config_is_unchanged_by_the_new_keys(tiny_cfg):
    from dataclasses import asdict
    model_cfg = sgm_config(tiny_cfg, 100, 10)
    old_keys = {k: v for k, v in asdict(tiny_cfg.model).items()
                if k in {f for f in asdict(model_cfg)}}
    assert model_cfg.encoder == "rnn" and model_cfg.encoder_options == {}
    assert {k: getattr(model_cfg, k) for k in old_keys} == old_keys
