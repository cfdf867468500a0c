"""Mixed-precision inference and training through the recipe and the CLI (bf16 on CPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from seq2labels.apps.cli import main
from seq2labels.pipeline.config import load_config
from seq2labels.errors import ConfigError
from seq2labels.training.precision import autocast, check_precision


def test_check_precision_names_the_setting_and_refuses_what_the_device_cannot_do():
    assert check_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ConfigError, match=r"decode.precision: must be one of 'fp32', 'bf16', 'fp16', got 'fp8'"):
        check_precision("fp8", "cpu", "decode.precision")
    with pytest.raises(ConfigError, match="fp16 autocast is a GPU mode.*use bf16 on the CPU"):
        check_precision("fp16", "cpu")


def test_autocast_is_a_no_op_for_fp32_and_bf16_on_cpu_otherwise():
    layer = torch.nn.Linear(4, 4)
    with autocast("cpu", "fp32"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
    with autocast("cpu", "bf16"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16


def test_bf16_prediction_runs_under_autocast_and_keeps_float32_outputs(tiny, test_texts, monkeypatch):
    seen = []
    encoder_forward = type(tiny.generator.model.encoder).forward

    def spy(self, src, lengths):
        out = encoder_forward(self, src, lengths)
        seen.append(out.memory.dtype)
        return out

    monkeypatch.setattr(type(tiny.generator.model.encoder), "forward", spy)
    fp32 = tiny.generator.predict(test_texts, beam_size=3)
    bf16 = tiny.generator.predict(test_texts, beam_size=3, precision="bf16")
    assert seen[0] == torch.float32 and seen[-1] == torch.bfloat16
    assert tiny.generator.precision == "fp32"          # a per-call precision does not stick
    same = sum(a.labels == b.labels for a, b in zip(fp32, bf16))
    assert same >= 0.9 * len(test_texts)
    for pred in bf16:
        assert all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in pred.probabilities)
        assert pred.score <= 0.0


def test_bf16_label_scores_and_attention_stay_float32(tiny, test_texts):
    rows = tiny.generator.decode_encoded(tiny.generator.encode_texts(test_texts[:8]), beam_size=2,
                                         return_attention=True, precision="bf16")
    assert all(row["label_scores"].dtype.name == "float32" for row in rows)
    assert all(row["attention"].dtype.name == "float32" for row in rows if row["attention"] is not None)


def test_what_cannot_run_in_reduced_precision_is_a_config_error(tiny):
    with pytest.raises(ConfigError, match="fp16 autocast is a GPU mode"):
        tiny.generator.predict(["a text"], precision="fp16")
    with pytest.raises(ConfigError, match="must be one of"):
        tiny.generator.with_precision("half")
    quantized = tiny.generator.quantize("int8")
    assert quantized.precision == "fp32"
    with pytest.raises(ConfigError, match="needs the torch backend and a float model, not an int8 model"):
        quantized.predict(["a text"], precision="bf16")


def test_decode_precision_is_saved_with_the_model_and_used_by_default(tiny, tmp_path):
    from seq2labels.pipeline.generator import load_model

    model_dir = tiny.generator.save(tmp_path / "model")
    config = json.loads((model_dir / "config.json").read_text())
    config["run_config"]["decode"]["precision"] = "bf16"
    (model_dir / "config.json").write_text(json.dumps(config))
    loaded = load_model(model_dir)
    assert loaded.precision == "bf16"
    assert loaded.with_backend("torch").precision == "bf16"


def test_config_refuses_fp16_training_on_cpu_naming_the_key():
    with pytest.raises(ConfigError, match="train.precision: fp16 autocast is a GPU mode"):
        load_config(None, ["train.precision=fp16"])
    with pytest.raises(ConfigError, match="decode.precision: must be one of"):
        load_config(None, ["decode.precision=int8"])
    assert load_config(None, ["train.precision=bf16"]).train.precision == "bf16"


def test_cli_trains_in_bf16_and_predicts_in_bf16(tmp_path, write_jsonl, sample_examples, one_thread):
    train = write_jsonl(tmp_path / "train.jsonl", sample_examples[0][:200])
    test = write_jsonl(tmp_path / "test.jsonl", sample_examples[1][:40])
    run = tmp_path / "run"
    assert main(["train", "--train", str(train), "--out", str(run), "--epochs", "1", "--precision", "bf16",
                 "--set", "model.encoder_hidden=16", "--set", "model.decoder_hidden=16", "--set", "text.min_count=1",
                 "--set", "train.progress=false", "-q"]) == 0
    saved = (run / "config.yaml").read_text()
    assert "precision: bf16" in saved
    out = tmp_path / "preds.jsonl"
    assert main(["predict", str(run / "model"), str(test), "--precision", "bf16", "--beam-size", "3",
                 "-o", str(out), "-q"]) == 0
    assert len(out.read_text().splitlines()) == 40
    assert main(["predict", str(run / "model"), str(test), "--precision", "bf16", "--quantize", "int8"]) == 2


def test_multi_file_predict_and_cross_data_evaluate_take_the_inference_options(tiny, tmp_path, write_jsonl):
    model_dir = tiny.generator.save(tmp_path / "model")
    a = write_jsonl(tmp_path / "a.jsonl", tiny.test_examples[:10])
    b = write_jsonl(tmp_path / "b.jsonl", tiny.test_examples[10:25])
    out = tmp_path / "preds.jsonl"
    assert main(["predict", str(model_dir), str(a), str(b), "--precision", "bf16", "-o", str(out), "-q"]) == 0
    assert len(out.read_text().splitlines()) == 25
    assert main(["predict", str(model_dir), str(a), str(b), "--quantize", "int8", "-o", str(out), "-q"]) == 0
    assert len(out.read_text().splitlines()) == 25
    metrics = tmp_path / "m.json"
    assert main(["evaluate", str(model_dir), str(b), "--match-labels", "name", "--precision", "bf16",
                 "--output", str(metrics), "-q"]) == 0
    assert 0.0 <= json.loads(metrics.read_text())["micro_f1"] <= 1.0


def test_allocator_thresholds_are_raised_once_and_the_environment_can_say_no():
    code = ("from seq2labels.training.allocator import keep_freed_memory as k; a = k(); b = k(); print(a, b)")
    raised = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if sys.platform.startswith("linux"):
        assert raised == ["True", "True"]
    left = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"SEQ2LABELS_MALLOC": "default", "PATH": ""}).stdout.split()
    assert left == ["False", "False"]


def test_serve_loads_the_model_with_the_inference_options(tiny, tmp_path):
    pytest.importorskip("fastapi")
    from seq2labels.apps.serve import ServerOptions, load_for_serving

    model_dir = tiny.generator.save(tmp_path / "model")
    assert load_for_serving(ServerOptions(model=str(model_dir), precision="bf16")) is not None
    with pytest.raises(ConfigError, match="--precision bf16 needs the torch backend"):
        load_for_serving(ServerOptions(model=str(model_dir), precision="bf16", quantize="int8"))
