"""Image models in the apps: explain overlays, the multipart upload endpoint (4xx on hostile
uploads, never 5xx), SGMClassifier on images and dicts."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seq2labels.apps.estimators import SGMClassifier
from seq2labels.pipeline.config import load_config
from seq2labels.pipeline.recipe import train

SMALL = ["image.size=16", "image.channels=8,16", "image.color=gray", "model.encoder_hidden=16",
         "model.decoder_hidden=32", "model.label_embedding_dim=16", "model.embedding_dim=16", "train.progress=false",
         "text.min_count=1", "train.lr=0.005", "train.batch_size=8", "train.threads=1", "train.epochs=25",
         "train.patience=25"]


def quadrants(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n):
        pixels, labs = np.zeros((16, 16), np.uint8), []
        if rng.random() < 0.5:
            pixels[:8, :8], labs = 255, [*labs, "top_left"]
        if rng.random() < 0.5 or not labs:
            pixels[8:, 8:], labs = 255, [*labs, "bottom_right"]
        images.append(pixels)
        labels.append(labs)
    return images, labels


def png(pixels) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("image_apps")
    (root / "img").mkdir()
    images, labels = quadrants()
    rows = []
    for i, (pixels, labs) in enumerate(zip(images, labels)):
        Image.fromarray(pixels).save(root / "img" / f"{i}.png")
        rows.append(json.dumps({"image": f"img/{i}.png", "labels": labs}))
    (root / "data.jsonl").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def model_dir(folder) -> Path:
    cfg = load_config(None, [f"data.train={folder / 'data.jsonl'}", "model.encoder=cnn", *SMALL])
    generator, result = train(cfg)
    assert result.best_score > 0.8
    return generator.save(folder / "model")


def test_explain_writes_an_overlay_per_label(folder, model_dir, tmp_path):
    from seq2labels.apps.cli import main

    out = tmp_path / "explain"
    assert main(["explain", str(model_dir), str(folder / "data.jsonl"), "--out", str(out), "--max-texts", "4"]) == 0
    rows = [json.loads(line) for line in (out / "explanations.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert len(row["overlays"]) == len(row["labels"]) and len(row["attention_grids"]) == len(row["labels"])
        assert np.isclose(np.sum(row["attention_grids"][0]), 1.0, atol=1e-4)
        for name in row["overlays"]:
            with Image.open(out / name) as img:
                assert img.size == (256, 256) and img.mode == "RGB"


def test_overlay_is_red_where_attention_is():
    from seq2labels.apps.explain_image import overlay_png

    grid = np.zeros((2, 2))
    grid[0, 0] = 1.0
    with Image.open(io.BytesIO(overlay_png(np.full((8, 8), 255, np.uint8), grid))) as img:
        pixels = np.asarray(img)
    assert pixels[10, 10, 0] > 200 and pixels[10, 10, 1] < 150      # red over the attended cell
    assert (pixels[240, 240] == 255).all()                          # untouched elsewhere


@pytest.fixture(scope="module")
def client(model_dir):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from seq2labels.apps.serve import ServeSettings, create_app
    from seq2labels.pipeline.generator import load_model

    app = create_app(load_model(model_dir), ServeSettings(max_body_bytes=50_000))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_upload_predicts_like_the_library(client, model_dir):
    from seq2labels.data.readers import Example
    from seq2labels.pipeline.generator import load_model

    images, _ = quadrants(4, seed=3)
    expected = load_model(model_dir).predict_examples([Example(text="", labels=(), image=png(images[0]))])[0]
    r = client.post("/predict/image", files={"image": ("a.png", png(images[0]), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["labels"] == expected.labels


@pytest.mark.parametrize("payload, status", [
    (b"not an image at all", 422),
    (png(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))[:200], 422),
    (bomb_png(100_000, 100_000), 422),
    (b"\0" * 60_000, 413),
])
def test_hostile_uploads_get_4xx(client, payload, status):
    r = client.post("/predict/image", files={"image": ("x.png", payload, "image/png")})
    assert r.status_code == status, r.text
    assert "detail" in r.json() or "error" in r.json()


def test_malformed_requests_get_4xx(client):
    assert client.post("/predict/image", data={"text": "no file"}).status_code == 422
    assert client.post("/predict/image", content=b"raw", headers={"content-type": "image/png"}).status_code == 422
    assert client.post("/predict/image", files={"image": ("a.png", png(np.zeros((4, 4), np.uint8)))},
                       data={"beam_size": "0"}).status_code == 422
    assert client.post("/predict/image", files={"image": ("a.png", png(np.zeros((4, 4), np.uint8)))},
                       data={"features": "[1, 2"}).status_code == 422
    r = client.post("/predict", json={"texts": ["a text for an image model"]})
    assert r.status_code == 422


def test_estimator_on_images_and_dicts(tmp_path):
    images, labels = quadrants(60)
    est = SGMClassifier(encoder="cnn", image_size=16, image_color="gray", image_channels="8,16", encoder_hidden=16,
                        decoder_hidden=32, label_embedding_dim=16, epochs=25, patience=25, lr=0.005, batch_size=8)
    est.fit(images, labels)
    assert est.score(images, labels) > 0.8
    assert est.predict([{"image": images[0]}]).tolist() == est.predict(images[:1]).tolist()
    assert est.predict_proba(images[:3]).shape == (3, 2)
    loaded = SGMClassifier.load(est.save(tmp_path / "est"))
    assert (loaded.predict(images) == est.predict(images)).all() and loaded.image_channels == "8,16"
    with pytest.raises(Exception, match="unknown key"):
        est.predict([{"picture": images[0]}])


def test_report_on_an_image_model(folder, model_dir, tmp_path):
    pytest.importorskip("matplotlib")
    from seq2labels.apps.report import report_file

    data = report_file(model_dir, folder / "data.jsonl", tmp_path / "report.html")
    assert data.metrics["micro_f1"] > 0.8
    assert "<html" in (tmp_path / "report.html").read_text().lower()
