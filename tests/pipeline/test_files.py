"""Model folders: exact files, bit-identical reload in a fresh process, no code execution,
clear errors, and crash-safe replacement."""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
import textwrap

import pytest
import torch

import seq2labels.pipeline.files as io_mod
from seq2labels.errors import ModelFormatError
from seq2labels.pipeline.files import FORMAT_VERSION, read_model_config, save_model
from seq2labels.pipeline.generator import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL_FOLDER_FILES = ["README.md", "config.json", "labels.json", "model.safetensors", "vocab.json"]


@pytest.fixture
def saved(tiny, tmp_path):
    """The tiny model saved at tmp_path/model."""
    return save_model(tiny.generator, tmp_path / "model", metrics={"valid_micro_f1": 0.5, "n": 3})


def assert_same_model(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert a.vocab == b.vocab and a.label_vocab == b.label_vocab and a.tokenizer == b.tokenizer
    assert a.config == b.config and a.model.config == b.model.config


# ---- contents and round trip ----------------------------------------------------------------

def test_folder_holds_exactly_the_documented_files(saved):
    assert sorted(os.listdir(saved)) == MODEL_FOLDER_FILES
    assert sorted(os.listdir(saved.parent)) == ["model"]         # no staging or backup folder left
    meta = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    assert meta["format"] == "seq2labels" and meta["format_version"] == FORMAT_VERSION
    assert meta["metrics"] == {"valid_micro_f1": 0.5, "n": 3}
    card = (saved / "README.md").read_text(encoding="utf-8")
    assert "valid_micro_f1 | 0.5000" in card


def test_folder_gets_the_permissions_of_a_normal_folder(saved, tmp_path):
    reference = tmp_path / "plain"
    reference.mkdir()
    assert stat.S_IMODE(saved.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)


def test_load_in_process_restores_weights_vocabularies_and_config(tiny, saved):
    loaded = load_model(saved)
    assert_same_model(tiny.generator, loaded)
    assert not loaded.model.training


def test_fresh_process_predicts_bit_identically(tiny, saved, test_texts, predictions_json, tmp_path):
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(test_texts), encoding="utf-8")
    expected = {str(beam): predictions_json(tiny.generator, test_texts, beam_size=beam, min_labels=1)
                for beam in (1, 3)}
    script = textwrap.dedent(f"""
        import json, torch
        torch.set_num_threads(1)
        from seq2labels import load_model
        g = load_model({str(saved)!r})
        texts = json.load(open({str(texts_file)!r}, encoding="utf-8"))
        out = {{}}
        for beam in (1, 3):
            preds = g.predict(texts, beam_size=beam, min_labels=1)
            out[str(beam)] = json.dumps([{{"labels": p.labels, "probabilities": p.probabilities,
                                          "score": p.score}} for p in preds])
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["1"] == expected["1"]
    assert got["3"] == expected["3"]


def test_saving_twice_replaces_the_model_and_leaves_nothing_behind(tiny, saved):
    again = save_model(tiny.generator, saved)
    assert again == saved
    assert sorted(os.listdir(saved)) == MODEL_FOLDER_FILES
    assert sorted(os.listdir(saved.parent)) == ["model"]
    assert_same_model(tiny.generator, load_model(saved))


# ---- never run code from the folder ---------------------------------------------------------

class _Canary:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("name", ["model.pt", "pytorch_model.bin", "model.pkl"])
def test_pickle_files_in_the_folder_are_never_executed(tiny, saved, tmp_path, name):
    control = tmp_path / "control-canary"
    pickle.loads(pickle.dumps(_Canary(control)))
    assert control.exists()                                  # the payload works when unpickled
    canary = tmp_path / "canary"
    (saved / name).write_bytes(pickle.dumps(_Canary(canary)))
    loaded = load_model(saved)
    loaded.predict(["is anything executed?"])
    assert not canary.exists()


# ---- clear errors --------------------------------------------------------------------------

def rewrite_config(folder, **changes):
    path = folder / "config.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.update(changes)
    path.write_text(json.dumps(meta), encoding="utf-8")
    return meta


def test_unknown_format_version_is_a_clear_error(saved):
    rewrite_config(saved, format_version=999)
    with pytest.raises(ModelFormatError) as err:
        load_model(saved)
    message = str(err.value)
    assert "config.json" in message and "format version 999" in message and "not supported" in message
    assert f"reads version {FORMAT_VERSION}" in message


def test_a_folder_of_another_format_is_rejected(saved):
    rewrite_config(saved, format="transformers")
    with pytest.raises(ModelFormatError, match="not a seq2labels model"):
        load_model(saved)


@pytest.mark.parametrize("name", ["config.json", "vocab.json", "labels.json", "model.safetensors"])
def test_a_missing_file_is_named(saved, name):
    (saved / name).unlink()
    with pytest.raises(ModelFormatError, match=f"{name} is missing"):
        load_model(saved)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(ModelFormatError, match="model folder not found"):
        load_model(tmp_path / "nothing-here")


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2, 3]", b"\xff\xfe"])
def test_a_broken_config_json_is_a_model_format_error(saved, content):
    (saved / "config.json").write_bytes(content)
    with pytest.raises(ModelFormatError, match="config.json"):
        load_model(saved)


@pytest.mark.parametrize("corrupt", ["garbage", "truncated", "empty"])
def test_corrupt_safetensors_is_a_model_format_error(saved, corrupt):
    path = saved / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes({"garbage": b"\x00\x01this is not safetensors" * 10,
                      "truncated": data[: len(data) // 2], "empty": b""}[corrupt])
    with pytest.raises(ModelFormatError, match="model.safetensors"):
        load_model(saved)


def test_weights_that_do_not_fit_the_config_are_a_model_format_error(saved):
    meta = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    meta["model"]["decoder_hidden"] += 1
    rewrite_config(saved, model=meta["model"])
    with pytest.raises(ModelFormatError, match="do not fit the model config"):
        load_model(saved)


def test_vocabulary_sizes_that_disagree_with_the_config_are_an_error(saved):
    vocab = json.loads((saved / "vocab.json").read_text(encoding="utf-8"))
    vocab["tokens"].append("an-extra-token")
    (saved / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with pytest.raises(ModelFormatError, match="do not match"):
        load_model(saved)


def test_inconsistent_json_is_a_model_format_error(saved):
    (saved / "labels.json").write_text(json.dumps({"labels": ["a", "a"]}), encoding="utf-8")
    with pytest.raises(ModelFormatError, match="inconsistent model files"):
        load_model(saved)


def test_read_model_config_returns_the_metadata(saved):
    meta = read_model_config(saved)
    assert meta["model_type"] == "sgm" and "run_config" in meta and "estimator" not in meta


# ---- crash safety --------------------------------------------------------------------------

def _predict(generator):
    return [(p.labels, p.probabilities) for p in generator.predict(["i love it", "so sad", "what?"], min_labels=1)]


@pytest.fixture
def other_model(tiny):
    """A second generator with different weights, to tell the two saves apart."""
    import copy
    other = copy.deepcopy(tiny.generator)
    with torch.no_grad():
        for p in other.model.parameters():
            p.add_(0.05)
    return other


def assert_previous_model_intact(saved, tiny):
    assert sorted(os.listdir(saved.parent)) == ["model"]             # no temp folder or file left
    assert sorted(os.listdir(saved)) == MODEL_FOLDER_FILES
    loaded = load_model(saved)
    assert_same_model(tiny.generator, loaded)
    assert _predict(loaded) == _predict(tiny.generator)


def test_a_writer_failing_half_way_keeps_the_previous_model(tiny, saved, other_model, monkeypatch):
    def broken_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(io_mod, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        save_model(other_model, saved)
    assert_previous_model_intact(saved, tiny)


def test_failing_on_the_last_file_keeps_the_previous_model(tiny, saved, other_model, monkeypatch):
    real = io_mod.atomic_write_json

    def fail_on_config(path, obj):
        if os.path.basename(path) == "config.json":
            raise KeyboardInterrupt  # even an interrupt must not leave a broken model
        real(path, obj)

    monkeypatch.setattr(io_mod, "atomic_write_json", fail_on_config)
    with pytest.raises(KeyboardInterrupt):
        save_model(other_model, saved)
    assert_previous_model_intact(saved, tiny)


def test_a_failed_swap_puts_the_previous_model_back(tiny, saved, other_model, monkeypatch):
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(str(src)).startswith(".model.tmp-"):
            raise OSError("swap failed")
        return real_replace(src, dst)

    monkeypatch.setattr(io_mod.os, "replace", replace)
    with pytest.raises(OSError, match="swap failed"):
        save_model(other_model, saved)
    monkeypatch.undo()
    assert_previous_model_intact(saved, tiny)


def test_saving_over_a_file_is_refused_and_leaves_it_alone(tiny, tmp_path):
    target = tmp_path / "model"
    target.write_text("precious", encoding="utf-8")
    with pytest.raises(ModelFormatError, match="not a folder"):
        save_model(tiny.generator, target)
    assert target.read_text(encoding="utf-8") == "precious"
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_a_new_save_is_complete_when_it_succeeds(other_model, saved):
    save_model(other_model, saved)
    loaded = load_model(saved)
    assert_same_model(other_model, loaded)
    assert sorted(os.listdir(saved.parent)) == ["model"]
