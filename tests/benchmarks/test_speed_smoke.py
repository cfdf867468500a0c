"""The speed suite's own machinery (benchmarks/speed.py): its peer encoders and switches must be
what they claim, or the table compares the wrong things. No timing is asserted here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from seq2labels.decoding import decode
from seq2labels.decoding import search
from seq2labels.models.sgm import SGM, SGMConfig

SPEED = Path(__file__).resolve().parents[2] / "benchmarks" / "speed.py"


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("speed_benchmark", SPEED)
    module = importlib.util.module_from_spec(spec)
    sys.modules["speed_benchmark"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("speed_benchmark", None)


def _tiny_sgm(seed: int = 0) -> SGM:
    torch.manual_seed(seed)
    return SGM(SGMConfig(vocab_size=40, num_outputs=12, embedding_dim=8, encoder_hidden=6, label_embedding_dim=8,
                         decoder_hidden=10, dropout=0.0)).eval()


def _batch():
    lengths = torch.tensor([7, 2, 5, 1])
    src = torch.randint(1, 40, (4, 7))
    for i, n in enumerate(lengths.tolist()):
        src[i, n:] = 0
    return src, lengths


def _copy_package_weights(model: SGM, peer) -> None:
    """The package encoder's two unidirectional RNNs are the peer's forward and reverse weights."""
    state = {}
    for direction, suffix in ((0, ""), (1, "_reverse")):
        uni = model.encoder.layers[0][direction]
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            state[f"{name}_l0{suffix}"] = getattr(uni, f"{name}_l0")
    peer.rnn.load_state_dict(state)
    peer.embedding.load_state_dict(model.encoder.embedding.state_dict())


def test_packed_peer_computes_the_package_encoder_and_padded_peer_differs_only_backwards(speed):
    model = _tiny_sgm()
    classes = speed._encoder_classes()
    packed, padded = classes["packed"](model.config).eval(), classes["padded"](model.config).eval()
    _copy_package_weights(model, packed)
    _copy_package_weights(model, padded)
    src, lengths = _batch()
    with torch.no_grad():
        ours, mask = model.encoder(src, lengths)                     # (batch, time, 12)
        by_packing, packed_mask = packed(src, lengths)
        by_padding, _ = padded(src, lengths)
    assert torch.equal(mask, packed_mask)
    assert torch.allclose(ours, by_packing, atol=1e-6)
    hidden = model.config.encoder_hidden
    assert torch.allclose(ours[..., :hidden], by_padding[..., :hidden], atol=1e-6)   # forward: same
    full = lengths == src.size(1)                                   # no padding: backward is the same too
    assert torch.allclose(ours[full], by_padding[full], atol=1e-6)
    assert not torch.allclose(ours[~full][..., hidden:], by_padding[~full][..., hidden:], atol=1e-4)


def test_build_variant_swaps_only_the_encoder(speed, tmp_path):
    from seq2labels.config import load_config
    from seq2labels.data.labels import LabelVocab
    from seq2labels.data.vocab import Vocab

    cfg = load_config(None, ["model.embedding_dim=8", "model.encoder_hidden=6", "model.decoder_hidden=10",
                             "model.label_embedding_dim=8"])
    vocab = Vocab.build([["a", "b", "c"]], min_count=1)
    labels = LabelVocab.build([["x", "y"]])
    ours = speed.build_variant(cfg, vocab, labels, "ours")
    for kind in ("padded", "packed"):
        peer = speed.build_variant(cfg, vocab, labels, kind)
        assert type(peer.encoder).__name__ != type(ours.encoder).__name__
        assert sum(p.numel() for p in peer.encoder.parameters()) == sum(p.numel() for p in ours.encoder.parameters())
        assert torch.equal(peer.output.weight, ours.output.weight)  # same seed, same decoder


@pytest.mark.parametrize("beam_size", [1, 3])
def test_without_early_stop_runs_every_step_and_changes_no_answer(speed, beam_size):
    model = _tiny_sgm(1)
    src, lengths = _batch()
    counted = speed.CountingStepModel(model)
    with torch.inference_mode():
        early = decode(counted, src, lengths, beam_size=beam_size, max_labels=6)
        early_steps = counted.steps
        counted.steps = 0
        with speed.without_early_stop():
            full = decode(counted, src, lengths, beam_size=beam_size, max_labels=6)
    assert counted.steps == 6 >= early_steps
    assert torch.equal(early.sequences, full.sequences) and torch.equal(early.lengths, full.lengths)
    assert torch.allclose(early.scores, full.scores)
    assert "bool" not in vars(search)                                # the switch is undone


def test_switch_table_starts_with_the_default_and_changes_one_thing_per_row(speed):
    for has_compact in (False, True):
        rows = speed.decode_switches(has_compact)
        default = rows[0][2]
        assert rows[0][0] == "default" and default["early_stop"] and default["grad_mode"] == "inference_mode"
        for switch, _, options in rows[1:]:
            changed = {k for k in options if options[k] != default[k]}
            assert len(changed) == 1 or (switch == "early stop" and changed == {"early_stop", "decode_kw"})
        assert any(o["decode_kw"] == {"compact": False} for _, _, o in rows) == has_compact
