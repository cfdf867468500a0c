"""MLP, Kim CNN and CNN-RNN modules: shapes, padding, the decoding protocol, configs."""

from __future__ import annotations

import pytest
import torch

from seq2labels.decoding import beam_decode, decode, greedy_decode
from seq2labels.training.losses import sequence_loss
from seq2labels.models.cnn import KimCNN, KimCNNConfig
from seq2labels.models.cnn_rnn import CNNRNN, CNNRNNConfig
from seq2labels.models.mlp import MLPConfig, PerLabelMLP, SigmoidMLP

pytestmark = pytest.mark.usefixtures("one_thread")

PAD, BOS, EOS = 0, 1, 2
V = 9  # 6 real labels (ids 3..8)


def texts():
    """3 texts of lengths 5, 3, 1 (PAD-padded)."""
    src = torch.tensor([[4, 5, 6, 7, 8], [9, 10, 11, 0, 0], [12, 0, 0, 0, 0]])
    return src, torch.tensor([5, 3, 1])


def cnn_rnn(seed: int = 0, **overrides) -> CNNRNN:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=30, num_outputs=V, embedding_dim=8, filter_sizes=(2, 3), num_filters=4,
               label_embedding_dim=6, decoder_hidden=10, dropout=0.0)
    cfg.update(overrides)
    return CNNRNN(CNNRNNConfig(**cfg)).eval()


# ---- MLP ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [SigmoidMLP, PerLabelMLP])
@pytest.mark.parametrize("hidden", [(), (16,), (16, 8)])
def test_mlp_shapes(cls, hidden):
    model = cls(MLPConfig(input_dim=7, num_labels=5, hidden=hidden))
    assert model(torch.randn(3, 7)).shape == (3, 5)


def test_mlp_variants_differ_in_parameter_layout():
    cfg = MLPConfig(input_dim=7, num_labels=5, hidden=(16,))
    one = {name: tuple(p.shape) for name, p in SigmoidMLP(cfg).named_parameters()}
    per = {name: tuple(p.shape) for name, p in PerLabelMLP(cfg).named_parameters()}
    assert one["output.weight"] == (5, 16)
    assert sum(name.startswith("heads.") for name in per) == 10  # weight and bias per label
    assert per["heads.4.weight"] == (1, 16)
    assert sum(p.numel() for p in SigmoidMLP(cfg).parameters()) == sum(p.numel() for p in PerLabelMLP(cfg).parameters())


@pytest.mark.parametrize("bad", [dict(hidden=(0,)), dict(dropout=1.0), dict(num_labels=0)])
def test_mlp_config_rejects(bad):
    with pytest.raises(ValueError):
        MLPConfig(**{**dict(input_dim=4, num_labels=2), **bad})


# ---- Kim CNN -------------------------------------------------------------------------

def kim(seed: int = 0, **overrides) -> KimCNN:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=30, num_labels=6, embedding_dim=8, filter_sizes=(2, 3, 4), num_filters=5, dropout=0.0)
    cfg.update(overrides)
    return KimCNN(KimCNNConfig(**cfg)).eval()


def test_kim_cnn_shapes_and_short_texts():
    src, lengths = texts()
    out = kim()(src, lengths)                                  # a text shorter than every filter too
    assert out.shape == (3, 6) and torch.isfinite(out).all()


def test_kim_cnn_ignores_padding_content_and_width():
    model = kim()
    src, lengths = texts()
    reference = model(src, lengths)
    garbage = src.clone()
    garbage[1, 3:] = torch.tensor([20, 21])
    garbage[2, 1:] = torch.tensor([22, 23, 24, 25])
    wider = torch.cat([garbage, torch.randint(3, 30, (3, 4))], dim=1)  # more, non-PAD padding
    torch.testing.assert_close(model(garbage, lengths), reference)
    torch.testing.assert_close(model(wider, lengths), reference)
    alone = model(src[1:2, :3], lengths[1:2])                  # no padding at all
    torch.testing.assert_close(alone, reference[1:2])


def test_kim_cnn_config_rejects_empty_filters():
    with pytest.raises(ValueError):
        KimCNNConfig(vocab_size=10, num_labels=2, filter_sizes=())


# ---- CNN-RNN -----------------------------------------------------------------------

def test_cnn_rnn_forward_shapes_mask_and_loss():
    model = cnn_rnn()
    src, lengths = texts()
    targets = torch.tensor([[5, 3, 8, EOS], [4, EOS, PAD, PAD], [EOS, PAD, PAD, PAD]])
    log_probs = model(src, lengths, targets)
    assert log_probs.shape == (3, 4, V)
    assert torch.isneginf(log_probs[:, :, PAD]).all() and torch.isneginf(log_probs[:, :, BOS]).all()
    assert torch.isneginf(log_probs[0, 1, 5]) and torch.isneginf(log_probs[0, 2, 3])  # gold labels fed earlier
    assert torch.isfinite(log_probs[0, 3, EOS])
    loss = sequence_loss(log_probs, targets, "ce")
    loss.backward()
    assert torch.isfinite(loss)


def test_cnn_rnn_step_protocol_and_uniform_attention():
    model = cnn_rnn()
    src, lengths = texts()
    static, state = model.start(src, lengths)
    forbidden = torch.zeros(3, V, dtype=torch.bool)
    forbidden[:, :2] = True
    log_probs, new_state, attention = model.step(torch.full((3,), BOS), state, static, forbidden)
    assert log_probs.shape == (3, V) and attention.shape == (3, 5)
    torch.testing.assert_close(attention.sum(1), torch.ones(3))
    assert attention[1, 3:].eq(0).all() and attention[2, 0] == 1
    assert set(new_state) == {"h", "c"}


def test_cnn_rnn_teacher_forcing_matches_step_by_step():
    model = cnn_rnn()
    src, lengths = texts()
    out = greedy_decode(model, src, lengths, max_labels=V - 3)
    targets = torch.cat([out.sequences, torch.zeros(3, 1, dtype=torch.long)], dim=1)
    targets[torch.arange(3), out.lengths] = EOS
    forced = model(src, lengths, targets)
    picked = forced.gather(2, targets.unsqueeze(-1)).squeeze(-1)
    picked = picked.masked_fill(targets == PAD, 0.0).sum(1)
    torch.testing.assert_close(picked, out.scores)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cnn_rnn_never_repeats_and_beam1_is_greedy(seed):
    model = cnn_rnn(seed, num_outputs=12)
    torch.manual_seed(seed + 10)
    src = torch.randint(3, 30, (4, 6))
    lengths = torch.tensor([6, 4, 2, 1])
    with torch.no_grad():
        greedy = greedy_decode(model, src, lengths, max_labels=9, min_labels=5)
        beam1 = beam_decode(model, src, lengths, beam_size=1, max_labels=9, min_labels=5)
        beam3 = decode(model, src, lengths, beam_size=3, max_labels=9, min_labels=5)
    for field in ("sequences", "lengths", "step_probs", "scores", "label_scores"):
        assert torch.equal(getattr(greedy, field), getattr(beam1, field)), field
    for out in (greedy, beam3):
        for row, n in zip(out.sequences.tolist(), out.lengths.tolist()):
            labels = row[:n]
            assert len(labels) == len(set(labels)) and all(x >= 3 for x in labels)
        assert (out.lengths >= 5).all()


def test_cnn_rnn_exposes_num_outputs():
    model = cnn_rnn()
    assert model.num_outputs == model.config.num_outputs == V
    with pytest.raises(ValueError):
        CNNRNNConfig(vocab_size=10, num_outputs=3)
