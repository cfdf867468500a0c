"""A transformer-encoder model (the tiny random BERT of conftest) everywhere the bi-RNN works:
CLI flags, predict, evaluate, explain (word pieces merged back to words), report, serve, the
estimator, int8 quantization, and ONNX export's clear refusal."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="needs the transformer extra: pip install 'seq2labels[transformer]'")

from seq2labels.apps.cli import main  # noqa: E402
from seq2labels.pipeline.generator import load_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def run_main(argv) -> tuple[int, str, str]:
    threads = torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        torch.set_num_threads(threads)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory, sample_examples, write_jsonl):
    folder = tmp_path_factory.mktemp("tf-data")
    return write_jsonl(folder / "train.jsonl", sample_examples[0]), write_jsonl(folder / "test.jsonl",
                                                                               sample_examples[1][:40])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, data, tiny_bert_dir):
    """Trained through the CLI flags (no YAML): encoder, pretrained folder, mode, long-text rule."""
    out = tmp_path_factory.mktemp("tf-run")
    code, stdout, stderr = run_main(["train", "--train", data[0], "--out", out, "--encoder", "transformer",
                                     "--pretrained", tiny_bert_dir, "--encoder-mode", "frozen", "--long-text",
                                     "head_tail", "--max-len", 24, "--epochs", 2, "--threads", 1, "--quiet",
                                     "--set", "model.head_tokens=8", "--set", "model.decoder_hidden=32",
                                     "--set", "model.label_embedding_dim=32", "--set", "train.lr=0.003"])
    assert code == 0, stderr
    return out / "model"


def test_the_flags_reach_the_saved_config(model_dir, tiny_bert_dir):
    meta = json.loads((model_dir / "config.json").read_text())
    model = meta["run_config"]["model"]
    assert (model["encoder"], model["pretrained"], model["long_text"]) == ("transformer", str(tiny_bert_dir), "head_tail")
    assert meta["tokenizer"]["truncation"] == "head_tail" and meta["tokenizer"]["head_tokens"] == 8
    assert "pretrained transformer" in (model_dir / "README.md").read_text()


def test_predict_cli_equals_the_library(model_dir, data, sample_examples):
    code, stdout, stderr = run_main(["predict", model_dir, data[1], "--beam-size", 2])
    assert code == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    expected = load_model(model_dir).predict([ex.text for ex in sample_examples[1][:40]], beam_size=2)
    assert lines == [p.to_json() for p in expected]


def test_evaluate_cli(model_dir, data, tmp_path):
    code, _, stderr = run_main(["evaluate", model_dir, data[1], "--output", tmp_path / "m.json"])
    assert code == 0, stderr
    assert 0.0 <= json.loads((tmp_path / "m.json").read_text())["micro_f1"] <= 1.0


def test_explain_merges_word_pieces_into_words(model_dir):
    from seq2labels.apps.explain import explain
    generator = load_model(model_dir)
    text = "I love zzq so much"
    pieces = generator.predict([text], return_attention=True, min_labels=1)[0]
    exp = explain(generator, [text], min_labels=1)[0]
    assert exp.tokens == ["I", "love", "zzq", "so", "much"]
    assert exp.attention.shape == (len(exp.labels), 5)
    np.testing.assert_allclose(exp.attention[:, 2], pieces.attention[:, 2:5].sum(1), rtol=1e-6)
    np.testing.assert_allclose(exp.attention.sum(1), 1.0, rtol=1e-5)
    assert exp.n_text_tokens == 5 and not exp.truncated


def test_explain_cli_writes_pages(model_dir, tmp_path):
    pytest.importorskip("matplotlib")
    code, _, stderr = run_main(["explain", model_dir, "--text", "thank you so much", "--out", tmp_path / "x"])
    assert code == 0, stderr
    assert (tmp_path / "x" / "index.html").is_file()


def test_report_builds(model_dir, sample_examples):
    from seq2labels.apps.report import build_report
    data = build_report(load_model(model_dir), sample_examples[1][:40], beam_size=2, min_labels=1)
    assert 0.0 <= data.metrics["micro_f1"] <= 1.0


def test_serve_predicts_what_the_library_predicts(model_dir, test_texts):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from seq2labels.apps.serve import create_app
    generator = load_model(model_dir)
    with TestClient(create_app(load_model(model_dir))) as client:
        response = client.post("/predict", json={"texts": test_texts[:10]})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [p.to_json() for p in generator.predict(test_texts[:10])]


def test_onnx_export_refuses_with_a_clear_message(model_dir):
    pytest.importorskip("onnxruntime")
    code, _, stderr = run_main(["export", model_dir])
    assert code == 2 and "rnn encoder only" in stderr and "Traceback" not in stderr
    code, _, stderr = run_main(["predict", model_dir, "--backend", "onnxruntime", "--format", "text", __file__])
    assert code == 2 and "rnn encoder only" in stderr


def test_int8_quantization_predicts(model_dir, test_texts):
    from seq2labels.pipeline.loading import load_for_inference
    quantized = load_for_inference(model_dir, quantize="int8")
    assert len(quantized.predict(test_texts[:5])) == 5


def test_estimator_with_a_transformer_encoder(tiny_bert_dir, sample_examples, tmp_path):
    from seq2labels import SGMClassifier
    texts = [ex.text for ex in sample_examples[0][:200]]
    labels = [list(ex.labels) for ex in sample_examples[0][:200]]
    est = SGMClassifier(encoder="transformer", pretrained=str(tiny_bert_dir), max_len=24, epochs=1,
                        decoder_hidden=16, label_embedding_dim=16, batch_size=32, label_init="names").fit(texts, labels)
    assert est.predict(texts[:7]).shape == (7, len(est.classes_))
    est.save(tmp_path / "m")
    loaded = SGMClassifier.load(tmp_path / "m")
    assert {k: v for k, v in loaded.get_params().items() if k != "verbose"} == \
        {k: v for k, v in est.get_params().items() if k != "verbose"}
    assert np.array_equal(loaded.predict(texts[:20]), est.predict(texts[:20]))
