"""ONNX export and the onnxruntime backend: the same search over exported graphs gives the same labels.

Every model option in use is exported and decoded greedily and with beam 5 by torch and by
ONNX Runtime (through the one search implementation); labels must be identical, in the same
order, and scores/probabilities within 1e-4. With the shared data present, a small SGM trained
on Reuters-21578 is compared over the whole test set (3,019 documents).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from seq2labels.apps.cli import main
from seq2labels.pipeline.config import load_config, replace
from seq2labels.decoding import onnx_backend as ob
from seq2labels.errors import ConfigError, ModelFormatError
from seq2labels.pipeline.export import export_onnx, weights_sha256
from seq2labels.pipeline.loading import load_for_inference

pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_thread")

SHARED_DATA = Path(os.environ.get("SEQ2LABELS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
REUTERS = SHARED_DATA / "reuters21578"
TOLERANCE = 1e-4

# Each option in use, on top of the tiny bi-LSTM with attention (conftest's ``tiny``).
VARIANTS = {
    "global_embedding": {"global_embedding": True},
    "bag_of_words+self_attention": {"bag_of_words": True, "self_attention": True},
    "gru+unidirectional+no_attention": {"rnn_type": "gru", "bidirectional": False, "attention": False},
}


def compare_rows(reference: list[dict], other: list[dict]) -> tuple[list[int], float]:
    """(indices whose label sequences differ, max |difference| of scores, step and label probabilities)."""
    differing, worst = [], 0.0
    for i, (a, b) in enumerate(zip(reference, other, strict=True)):
        if a["ids"] != b["ids"]:
            differing.append(i)
            continue
        worst = max(worst, abs(a["score"] - b["score"]),
                    float(np.max(np.abs(np.subtract(a["probs"], b["probs"])), initial=0.0)),
                    float(np.max(np.abs(a["label_scores"] - b["label_scores"]), initial=0.0)))
    return differing, worst


def assert_backends_agree(generator, encoded, beam_sizes=(1, 5), min_labels=(0, 2), onnx_dir=None) -> None:
    """``min_labels=2`` makes every sequence at least two labels long, so the comparison covers
    real label choices even where a tiny model would stop at once."""
    settings = [(beam, least) for beam in beam_sizes for least in min_labels]
    torch_rows = {s: generator.decode_encoded(encoded, beam_size=s[0], min_labels=s[1]) for s in settings}
    generator.with_backend("onnxruntime", onnx_dir=onnx_dir)
    try:
        for beam, least in settings:
            ort_rows = generator.decode_encoded(encoded, beam_size=beam, min_labels=least)
            differing, worst = compare_rows(torch_rows[beam, least], ort_rows)
            assert not differing, (f"beam {beam}, min_labels {least}: {len(differing)} of {len(encoded)} "
                                   "label sequences differ")
            assert worst <= TOLERANCE, f"beam {beam}, min_labels {least}: scores differ by {worst:.3g}"
    finally:
        generator.with_backend("torch")


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request, tiny, single_thread):
    """One short epoch on 200 examples: enough for non-uniform outputs, cheap enough for three variants."""
    from seq2labels.pipeline.recipe import train

    cfg = replace(tiny.cfg, model=replace(tiny.cfg.model, **VARIANTS[request.param]),
                  train=replace(tiny.cfg.train, epochs=1))
    with single_thread():
        generator, _ = train(cfg, None, train_examples=tiny.train_examples[:200])
    return generator


@pytest.fixture(scope="module")
def encoded(tiny, test_texts):
    return tiny.generator.encode_texts(test_texts)


# ---- agreement --------------------------------------------------------------------------

def test_default_model_greedy_and_beam_agree_with_torch(tiny, encoded):
    assert_backends_agree(tiny.generator, encoded)


def test_each_model_option_greedy_and_beam_agree_with_torch(variant, test_texts):
    assert_backends_agree(variant, variant.encode_texts(test_texts))


def test_the_exported_folder_decodes_like_torch_and_records_its_graphs(tiny, encoded, tmp_path):
    out = export_onnx(tiny.generator, tmp_path / "onnx")
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["decoder_step.onnx", "encoder.onnx", "manifest.json"]
    assert manifest["weights_sha256"] == weights_sha256(tiny.generator.model)
    assert manifest["verified_max_abs_diff"] <= TOLERANCE
    assert manifest["graphs"]["decoder_step"]["inputs"][:2] == ["prev_labels", "forbidden"]
    assert_backends_agree(tiny.generator, encoded, beam_sizes=(5,), min_labels=(2,), onnx_dir=out)


def test_graphs_accept_any_batch_and_length(tiny):
    """Dynamic axes: one text, then a batch of eight of uneven lengths (beam rows = batch x 5)."""
    generator = tiny.generator
    texts = ["stocks fell sharply after the report " * 8, "good", "", "thanks so much, this is great",
             "what a terrible idea", "i love it", "no", "why would anyone do that"]
    for batch in (texts[:1], texts):
        encoded = generator.encode_texts(batch)
        assert_backends_agree(generator, encoded, min_labels=(2,))


# ---- the whole Reuters-21578 test set ---------------------------------------------------------

@pytest.mark.skipif(not (REUTERS / "test.jsonl.gz").is_file(), reason=f"shared data not found at {REUTERS}")
def test_reuters_whole_test_set_greedy_and_beam_agree(train_tiny):
    """A small SGM (1 epoch, 60 tokens) trained on Reuters train; all 3,019 test documents."""
    from seq2labels.data.readers import read_examples
    from seq2labels.pipeline.recipe import train

    cfg = load_config(None, ["text.max_len=60", "text.max_vocab=10000", "model.embedding_dim=32",
                             "model.encoder_hidden=32", "model.decoder_hidden=48", "model.label_embedding_dim=32",
                             "model.bag_of_words=true", "train.epochs=1", "train.batch_size=64", "train.lr=0.005",
                             "train.threads=1", "train.progress=false", "data.valid_fraction=0.05"])
    with warnings.catch_warnings():   # each file has a line listing a label twice; readers warn
        warnings.simplefilter("ignore", UserWarning)
        test = read_examples(REUTERS / "test.jsonl.gz")
        train_examples = read_examples(REUTERS / "train.jsonl.gz")
    assert len(test) == 3019
    generator, _ = train(cfg, None, train_examples=train_examples)
    encoded = generator.encode_texts([ex.text for ex in test])
    assert_backends_agree(generator, encoded, min_labels=(0,))


# ---- files and errors -------------------------------------------------------------------------

def test_a_graph_changed_after_export_is_refused(tiny, tmp_path):
    out = export_onnx(tiny.generator, tmp_path / "onnx")
    graph = out / "decoder_step.onnx"
    graph.write_bytes(graph.read_bytes()[:-10])
    with pytest.raises(ModelFormatError, match="SHA-256 differs"):
        ob.load_onnx_step_model(out)


def test_an_export_of_other_weights_is_refused(tiny, tmp_path):
    out = export_onnx(tiny.generator, tmp_path / "onnx")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["weights_sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="other weights"):
        tiny.generator.with_backend("onnxruntime", onnx_dir=out)
    assert tiny.generator.step_model is None


def test_missing_or_foreign_manifest_errors_name_the_fix(tmp_path):
    with pytest.raises(ModelFormatError, match="seq2labels export"):
        ob.load_onnx_step_model(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "seq2labels-onnx", "format_version": 99}))
    with pytest.raises(ModelFormatError, match="version 99"):
        ob.load_onnx_step_model(tmp_path)


def test_unknown_backend_and_device_mix_are_config_errors(tiny, tmp_path):
    with pytest.raises(ConfigError, match="unknown backend"):
        tiny.generator.with_backend("tensorrt")
    with pytest.raises(ConfigError, match="CPU"):
        load_for_inference(tmp_path, device="cuda", backend="onnxruntime")


# ---- command line -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(tiny, tmp_path_factory):
    return tiny.generator.save(tmp_path_factory.mktemp("export") / "model")


def _predictions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_cli_export_then_predict_with_onnxruntime_matches_torch(model_dir, tiny, write_jsonl, tmp_path, capsys):
    data = write_jsonl(tmp_path / "test.jsonl", tiny.test_examples[:40])
    assert main(["export", str(model_dir), "--format", "onnx", "-q"]) == 0
    assert (model_dir / "onnx" / "manifest.json").is_file()
    outputs = {}
    for backend in ("torch", "onnxruntime"):
        outputs[backend] = tmp_path / f"{backend}.jsonl"
        assert main(["predict", str(model_dir), str(data), "--beam-size", "5", "--backend", backend,
                     "-o", str(outputs[backend]), "-q"]) == 0
    torch_preds, ort_preds = _predictions(outputs["torch"]), _predictions(outputs["onnxruntime"])
    assert [p["labels"] for p in ort_preds] == [p["labels"] for p in torch_preds]
    for a, b in zip(torch_preds, ort_preds):
        assert b["score"] == pytest.approx(a["score"], abs=TOLERANCE)
        assert b["probabilities"] == pytest.approx(a["probabilities"], abs=TOLERANCE)


def test_cli_evaluate_with_onnxruntime_gives_the_torch_metrics(model_dir, tiny, write_jsonl, tmp_path):
    data = write_jsonl(tmp_path / "test.jsonl", tiny.test_examples[:40])
    metrics = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.json"
        assert main(["evaluate", str(model_dir), str(data), "--backend", backend, "--output", str(out), "-q"]) == 0
        metrics[backend] = json.loads(out.read_text())
    for name in ("micro_f1", "macro_f1", "example_f1", "subset_accuracy"):
        assert metrics["onnxruntime"][name] == metrics["torch"][name], name


def test_cli_rejects_bad_combinations_with_one_line(model_dir, tmp_path, capsys):
    data = tmp_path / "texts.txt"
    data.write_text("hello\n", encoding="utf-8")
    assert main(["predict", str(model_dir), str(data), "--backend", "onnxruntime", "--quantize", "int8"]) == 2
    assert "choose one of" in capsys.readouterr().err
    assert main(["predict", str(model_dir), str(data), "--backend", "onnxruntime", "--device", "cuda"]) == 2
    assert "runs on the CPU" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "model folder not found" in capsys.readouterr().err


def test_export_leaves_the_torch_model_in_eval_mode_with_its_weights(tiny):
    """The exporter restores train/eval flags recursively; the model must not end up training."""
    before = {k: v.clone() for k, v in tiny.generator.model.state_dict().items()}
    tiny.generator.with_backend("onnxruntime").with_backend("torch")
    assert not tiny.generator.model.training
    after = tiny.generator.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
