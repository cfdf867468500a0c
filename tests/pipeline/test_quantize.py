"""Dynamic int8 quantization: a quantized copy predicts nearly what the float model does, and
everything it cannot do (save, GPU, ONNX) fails with a one-line reason."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from seq2labels.apps.cli import main
from seq2labels.errors import ConfigError
from seq2labels.pipeline.quantize import QUANTIZED_TYPES, quantize_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def quantized(tiny, single_thread):
    with single_thread():
        return tiny.generator.quantize("int8")


def _float_modules(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if type(module) in QUANTIZED_TYPES]


def test_every_rnn_and_linear_layer_is_quantized_and_the_original_is_untouched(tiny, quantized):
    assert _float_modules(tiny.generator.model)                     # the float model has such layers ...
    assert _float_modules(quantized.model) == []                    # ... the copy has none left
    kinds = {m._get_name() for m in quantized.model.modules()}  # the names repr shows
    assert {"DynamicQuantizedLSTM", "DynamicQuantizedLSTMCell", "DynamicQuantizedLinear"} <= kinds
    assert quantized.model is not tiny.generator.model and quantized.quantized == "int8"
    assert tiny.generator.quantized is None
    assert all(not p.is_quantized for p in tiny.generator.model.parameters())


def test_quantized_predictions_overlap_heavily_with_float(tiny, quantized, test_texts):
    """min_labels=2 gives every text a real label sequence; int8 weights may flip a few choices."""
    fp32 = tiny.generator.predict(test_texts, beam_size=5, min_labels=2)
    int8 = quantized.predict(test_texts, beam_size=5, min_labels=2)
    same_sets = sum(set(a.labels) == set(b.labels) for a, b in zip(fp32, int8)) / len(fp32)
    pairs = [(set(a.labels), set(b.labels)) for a, b in zip(fp32, int8)]
    jaccard = sum(len(a & b) / len(a | b) for a, b in pairs) / len(pairs)
    assert same_sets >= 0.8 and jaccard >= 0.85, (same_sets, jaccard)
    scores = torch.tensor([[a.score, b.score] for a, b in zip(fp32, int8)])
    assert not torch.equal(scores[:, 0], scores[:, 1])              # it really runs other arithmetic
    assert (scores[:, 0] - scores[:, 1]).abs().median() < 0.1


def test_gru_encoder_quantizes_too(tiny):
    from seq2labels.models.sgm import SGM
    from seq2labels.models.config import SGMConfig

    model = SGM(SGMConfig(vocab_size=30, num_outputs=8, embedding_dim=8, encoder_hidden=8, rnn_type="gru",
                          label_embedding_dim=8, decoder_hidden=8, self_attention=True, self_attention_heads=2,
                          global_embedding=True, bag_of_words=True)).eval()
    q = quantize_model(model)
    assert {"DynamicQuantizedGRU", "DynamicQuantizedLSTMCell"} <= {m._get_name() for m in q.modules()}
    src, lengths = torch.randint(1, 30, (3, 5)), torch.tensor([5, 3, 1])
    with torch.no_grad():
        static, state = q.start(src, lengths)
        log_probs, _, _ = q.step(torch.ones(3, dtype=torch.long), state, static, torch.zeros(3, 8, dtype=torch.bool))
    assert torch.isfinite(log_probs).all() and torch.allclose(log_probs.exp().sum(1), torch.ones(3), atol=1e-5)


def test_what_a_quantized_model_cannot_do_is_a_config_error(tiny, quantized, tmp_path):
    with pytest.raises(ConfigError, match="cannot be saved"):
        quantized.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()
    with pytest.raises(ConfigError, match="CPU only"):
        quantized.to("cuda")
    with pytest.raises(ConfigError, match="already int8"):
        quantized.quantize("int8")
    with pytest.raises(ConfigError, match="onnxruntime backend runs the float model"):
        quantized.with_backend("onnxruntime")
    with pytest.raises(ConfigError, match="unknown quantization 'int4'"):
        tiny.generator.quantize("int4")


def test_cli_evaluate_and_predict_with_int8(tiny, write_jsonl, tmp_path, capsys):
    model_dir = tiny.generator.save(tmp_path / "model")
    data = write_jsonl(tmp_path / "test.jsonl", tiny.test_examples[:30])
    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(model_dir), str(data), "--quantize", "int8", "--output", str(out), "-q"]) == 0
    assert 0.0 <= json.loads(out.read_text())["micro_f1"] <= 1.0
    preds = tmp_path / "preds.jsonl"
    assert main(["predict", str(model_dir), str(data), "--quantize", "int8", "--min-labels", "1",
                 "-o", str(preds), "-q"]) == 0
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(lines) == 30 and all(line["labels"] for line in lines)
    assert main(["predict", str(model_dir), str(data), "--quantize", "int8", "--device", "cuda"]) == 2
    assert "runs on the CPU" in capsys.readouterr().err
