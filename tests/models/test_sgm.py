"""SGM: shapes, the teacher-forcing mask, the variants, and its config."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
import torch

from seq2labels.decoding import beam_decode, greedy_decode
from seq2labels.training.losses import sequence_loss
from seq2labels.models.sgm import SGM
from seq2labels.models.config import SGMConfig

pytestmark = pytest.mark.usefixtures("one_thread")

PAD, BOS, EOS = 0, 1, 2
V = 9  # 6 real labels (ids 3..8)


def small_config(**overrides) -> SGMConfig:
    base = dict(vocab_size=30, num_outputs=V, embedding_dim=8, encoder_hidden=8, label_embedding_dim=6,
                decoder_hidden=10, dropout=0.0)
    base.update(overrides)
    return SGMConfig(**base)


def make_model(seed: int = 0, **overrides) -> SGM:
    torch.manual_seed(seed)
    return SGM(small_config(**overrides))


def batch():
    """3 texts of lengths 5, 3, 1 (PAD-padded) and their targets: labels, EOS, PAD."""
    src = torch.tensor([[4, 5, 6, 7, 8], [9, 10, 11, 0, 0], [12, 0, 0, 0, 0]])
    lengths = torch.tensor([5, 3, 1])
    targets = torch.tensor([[5, 3, 8, EOS],
                            [4, EOS, PAD, PAD],
                            [EOS, PAD, PAD, PAD]])
    return src, lengths, targets


VARIANTS = {
    "default": {},
    "global_embedding": {"global_embedding": True},
    "no_attention": {"attention": False},
    "self_attention": {"self_attention": True, "self_attention_heads": 2},
    "gru": {"rnn_type": "gru"},
    "unidirectional_2_layers": {"bidirectional": False, "encoder_layers": 2, "dropout": 0.2},
}


# ---- shapes -------------------------------------------------------------------------

def test_forward_returns_log_probabilities_of_shape_batch_steps_outputs():
    model = make_model()
    src, lengths, targets = batch()
    out = model(src, lengths, targets)
    assert out.shape == (3, 4, V)
    # each step up to EOS is a distribution over the outputs; past EOS (PAD targets) nothing is possible
    valid = targets != 0                                                   # (batch, steps)
    torch.testing.assert_close(out.logsumexp(-1)[valid], torch.zeros(int(valid.sum())), atol=1e-5, rtol=0)
    assert torch.isneginf(out[~valid]).all()


def test_start_and_step_shapes_and_attention_is_a_distribution_over_real_tokens():
    model = make_model().eval()
    src, lengths, _ = batch()
    static, state = model.start(src, lengths)
    assert static["memory"].shape == (3, 5, 16)          # bidirectional: 2 * encoder_hidden
    assert static["mask"].tolist() == [[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4]
    assert state["h"].shape == state["c"].shape == (3, 10)
    forbidden = torch.zeros(3, V, dtype=torch.bool)
    forbidden[:, [PAD, BOS]] = True
    log_probs, new_state, attention = model.step(torch.full((3,), BOS), state, static, forbidden)
    assert log_probs.shape == (3, V)
    assert attention.shape == (3, 5)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3))
    assert torch.all(attention[~static["mask"]] == 0)
    assert set(new_state) == set(state)


# ---- the teacher-forcing mask --------------------------------------------------------

@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_teacher_forcing_masks_exactly_pad_bos_and_labels_already_emitted(variant):
    model = make_model(**VARIANTS[variant]).eval()
    src, lengths, targets = batch()
    with torch.no_grad():
        out = model(src, lengths, targets)
    for b in range(3):
        for t in range(targets.size(1)):
            if targets[b, t] == PAD:                       # past EOS: no output possible, ignored by losses
                assert torch.isneginf(out[b, t]).all(), (b, t)
                continue
            emitted = set(targets[b, :t].tolist())
            for label in range(V):
                value = out[b, t, label]
                if label in (PAD, BOS):
                    assert value == float("-inf"), (b, t, label)
                elif label == EOS:
                    assert torch.isfinite(value), (b, t)       # stopping is always possible
                elif label in emitted:
                    assert value == float("-inf"), f"label {label} repeated at step {t} of row {b}"
                else:
                    assert torch.isfinite(value), f"label {label} wrongly forbidden at step {t} of row {b}"


def test_teacher_forcing_equals_step_by_step_decoding_with_the_same_mask():
    """forward() is the same computation as calling step() with the growing mask by hand (up to each
    row's EOS; the rows left then run in a smaller batch, hence the 1e-6)."""
    model = make_model(global_embedding=True).eval()
    src, lengths, targets = batch()
    with torch.no_grad():
        out = model(src, lengths, targets)
        static, state = model.start(src, lengths)
        forbidden = torch.zeros(3, V, dtype=torch.bool)
        forbidden[:, [PAD, BOS]] = True
        prev = torch.full((3,), BOS)
        for t in range(targets.size(1)):
            log_probs, state, _ = model.step(prev, state, static, forbidden)
            live = targets[:, t] != PAD                   # forward() stops computing a row after its EOS
            torch.testing.assert_close(log_probs[live], out[live, t], rtol=0, atol=1e-6)
            prev = targets[:, t]
            forbidden = forbidden.clone()
            forbidden[torch.arange(3), prev] = True
            forbidden[:, EOS] = False


# ---- variants ------------------------------------------------------------------------

@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_run_forward_and_backward_with_finite_gradients(variant):
    model = make_model(**VARIANTS[variant]).train()
    src, lengths, targets = batch()
    loss = sequence_loss(model(src, lengths, targets), targets, "ce+bce")
    assert torch.isfinite(loss)
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    for name, grad in grads.items():
        if name == "label_embedding.weight" or name.startswith("encoder.embedding"):
            continue  # padding rows stay zero; checked below as a whole
        assert grad is not None, f"{name} got no gradient"
        assert torch.isfinite(grad).all(), name
    specific = {"global_embedding": "ge_gate_e.weight", "self_attention": "encoder.self_attn.in_proj_weight",
                "default": "attention.v.weight", "gru": "encoder.layers.0.1.weight_hh_l0",
                "unidirectional_2_layers": "encoder.layers.1.0.weight_hh_l0"}
    if variant in specific:
        assert grads[specific[variant]].abs().sum() > 0
    if variant == "no_attention":
        assert model.attention is None
    assert torch.isfinite(model.label_embedding.weight.grad).all()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_decode_greedy_and_beam(variant):
    model = make_model(**VARIANTS[variant]).eval()
    src, lengths, _ = batch()
    with torch.no_grad():
        greedy = greedy_decode(model, src, lengths, max_labels=4, min_labels=2)
        beam = beam_decode(model, src, lengths, beam_size=3, max_labels=4, min_labels=2)
    for out in (greedy, beam):
        assert (out.lengths >= 2).all()
        for row, n in zip(out.sequences.tolist(), out.lengths.tolist()):
            labels = row[:n]
            assert len(set(labels)) == n and all(3 <= x < V for x in labels)


@pytest.mark.parametrize("variant", ["default", "self_attention", "no_attention", "gru"])
def test_padding_does_not_change_a_text_s_outputs(variant):
    """A text decoded alone and next to a longer one (so padded) gets the same log-probs."""
    model = make_model(**VARIANTS[variant]).eval()
    src, lengths, targets = batch()
    with torch.no_grad():
        together = model(src, lengths, targets)
        alone = model(src[1:2, :3], lengths[1:2], targets[1:2])
    torch.testing.assert_close(together[1:2], alone, atol=1e-5, rtol=1e-5)


def test_dropout_is_active_in_train_mode_only():
    model = make_model(dropout=0.5)
    src, lengths, targets = batch()
    torch.manual_seed(1)
    a = model.train()(src, lengths, targets)
    b = model(src, lengths, targets)
    assert not torch.equal(a, b)
    model.eval()
    assert torch.equal(model(src, lengths, targets), model(src, lengths, targets))


# ---- SGMConfig -----------------------------------------------------------------------

@pytest.mark.parametrize("overrides, field", [
    ({"rnn_type": "rnn"}, "rnn_type"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"embedding_dim": 0}, "embedding_dim"),
    ({"encoder_hidden": -1}, "encoder_hidden"),
    ({"encoder_layers": 0}, "encoder_layers"),
    ({"decoder_hidden": 0}, "decoder_hidden"),
    ({"label_embedding_dim": 0}, "label_embedding_dim"),
    ({"num_outputs": 3}, "num_outputs"),
    ({"dropout": 1.0}, "dropout"),
    ({"dropout": -0.1}, "dropout"),
    ({"self_attention": True, "encoder_hidden": 5, "self_attention_heads": 4}, "self_attention_heads"),
])
def test_sgm_config_rejects_bad_values_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        small_config(**overrides)


def test_sgm_config_accepts_heads_that_divide_the_memory_size():
    cfg = small_config(self_attention=True, encoder_hidden=5, self_attention_heads=5)
    assert cfg.memory_dim == 10
    assert small_config(bidirectional=False).memory_dim == 8


def test_sgm_config_round_trips_through_a_dict_and_json():
    cfg = small_config(rnn_type="gru", global_embedding=True, attention=False, self_attention=True,
                       self_attention_heads=2, dropout=0.25, bidirectional=False)
    data = cfg.to_dict()
    assert set(data) == {f.name for f in fields(SGMConfig)}
    assert SGMConfig.from_dict(data) == cfg
    assert SGMConfig.from_dict(json.loads(json.dumps(data))) == cfg


def test_sgm_config_from_dict_names_unknown_keys():
    data = small_config().to_dict()
    data["hidden_size"] = 3
    data["zzz"] = 1
    with pytest.raises(ValueError, match="hidden_size, zzz"):
        SGMConfig.from_dict(data)


def test_sgm_config_from_dict_fills_defaults():
    assert SGMConfig.from_dict({"vocab_size": 10, "num_outputs": 5}) == SGMConfig(vocab_size=10, num_outputs=5)
