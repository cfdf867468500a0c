"""Image, features and fused models through the recipe, the model folder and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seq2labels.data.images import read_multimodal_examples
from seq2labels.errors import ConfigError, DataFormatError
from seq2labels.pipeline.config import load_config
from seq2labels.pipeline.generator import load_model
from seq2labels.pipeline.recipe import train

SMALL = ["image.size=16", "image.channels=8,16", "image.color=gray", "model.encoder_hidden=16",
         "model.decoder_hidden=32", "model.label_embedding_dim=16", "model.embedding_dim=16", "train.progress=false",
         "text.min_count=1", "train.lr=0.005", "train.batch_size=8", "train.threads=1"]


def quadrant_data(folder: Path, n: int = 60, seed: int = 0) -> Path:
    """Images whose bright quadrants are the labels; the text names the labels too, features count them."""
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        pixels, labels = np.zeros((16, 16), np.uint8), []
        if rng.random() < 0.5:
            pixels[:8, :8], labels = 255, [*labels, "top_left"]
        if rng.random() < 0.5:
            pixels[8:, 8:], labels = 255, [*labels, "bottom_right"]
        if not labels:
            pixels[:8, 8:], labels = 255, ["top_right"]
        Image.fromarray(pixels).save(folder / "img" / f"{i}.png")
        rows.append({"image": f"img/{i}.png", "labels": labels, "text": " ".join(labels) if i % 3 else "",
                     "features": [float(len(labels)), float(rng.random())]})
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return quadrant_data(tmp_path_factory.mktemp("quadrants"))


def fit(data: Path, encoder: str, epochs: int = 25, extra=()):
    cfg = load_config(None, [f"data.train={data}", f"model.encoder={encoder}", f"train.epochs={epochs}",
                             f"train.patience={epochs}", *SMALL, *extra])
    return train(cfg)


def test_cnn_learns_quadrants_and_save_load_predicts_the_same(data, tmp_path):
    generator, result = fit(data, "cnn")
    assert result.best_score >= 0.8
    examples = read_multimodal_examples(data)[:12]
    before = generator.predict_examples(examples, return_attention=True)
    folder = generator.save(tmp_path / "model")
    assert not list(folder.glob("*.pt")) and (folder / "model.safetensors").is_file()
    loaded = load_model(folder)
    after = loaded.predict_examples(examples, return_attention=True)
    assert [p.labels for p in before] == [p.labels for p in after]
    assert [p.probabilities for p in before] == [p.probabilities for p in after]
    first = after[0]
    assert first.attention.shape == (len(first.labels), 16) and first.tokens[0] == "cell 0,0"
    metrics = loaded.evaluate(read_multimodal_examples(data))
    assert metrics["micro_f1"] >= 0.8


def test_seeded_training_is_bit_for_bit_reproducible(data):
    a, _ = fit(data, "fusion", epochs=2)
    b, _ = fit(data, "fusion", epochs=2)
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name


def test_fusion_reads_every_modality_and_masks_missing_text(data):
    generator, _ = fit(data, "fusion", epochs=3, extra=["model.fusion=gate"])
    opts = generator.model.config.encoder_options
    assert opts["modalities"] == ["text", "image", "features"] and opts["mode"] == "gate"
    examples = read_multimodal_examples(data)
    empty_text = next(ex for ex in examples if not ex.text)
    pred = generator.predict_examples([empty_text], return_attention=True)[0]
    assert pred.tokens[:1] == ["cell 0,0"] and all(not t.startswith("top") for t in pred.tokens)
    from dataclasses import replace
    only_text = replace(examples[1], image=None, features=None)
    assert generator.predict_examples([only_text])                # an example with one modality is fine


def test_features_encoder_and_wrong_feature_count(data):
    generator, _ = fit(data, "features", epochs=2)
    assert generator.model.encoder.fixed_positions == 8
    from seq2labels.data.readers import Example
    with pytest.raises(DataFormatError, match="has 3 numbers, the model reads 2"):
        generator.predict_examples([Example(text="", labels=(), features=(1.0, 2.0, 3.0))])
    with pytest.raises(DataFormatError, match="no input the model reads"):
        generator.predict_examples([Example(text="words only", labels=())])


def test_config_checks():
    with pytest.raises(ConfigError, match="image.channels"):
        load_config(None, ["model.encoder=cnn", "image.channels=a,b"])
    with pytest.raises(ConfigError, match="halved"):
        load_config(None, ["model.encoder=cnn", "image.size=8", "image.channels=4,4,4,4"])
    with pytest.raises(ConfigError, match="streaming"):
        load_config(None, ["model.encoder=fusion", "data.streaming=true"])
    with pytest.raises(ConfigError, match="image.color"):
        load_config(None, ["image.color=cmyk"])


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "seq2labels", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_cli_train_evaluate_predict(data, tmp_path):
    sets = [x for s in SMALL + ["train.epochs=2"] for x in ("--set", s)]
    done = run_cli("train", "--train", str(data), "--test", str(data), "--encoder", "cnn", "--out", str(tmp_path / "run"),
                   *sets)
    assert done.returncode == 0, done.stderr
    model = tmp_path / "run" / "model"
    done = run_cli("evaluate", str(model), str(data))
    assert done.returncode == 0 and "micro_f1" in done.stdout, done.stderr
    out = tmp_path / "pred.jsonl"
    done = run_cli("predict", str(model), str(data), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 60
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"no image")
    (bad / "in.jsonl").write_text(json.dumps({"image": "x.png", "labels": []}) + "\n")
    done = run_cli("predict", str(model), str(bad / "in.jsonl"))
    assert done.returncode != 0 and "in.jsonl:1" in done.stderr and "Traceback" not in done.stderr


def test_onnx_backend_is_refused_and_int8_runs(data):
    generator, _ = fit(data, "cnn", epochs=2)
    with pytest.raises(ConfigError, match="torch backend"):
        generator.with_backend("onnxruntime")
    examples = read_multimodal_examples(data)[:5]
    assert len(generator.quantize().predict_examples(examples)) == 5
