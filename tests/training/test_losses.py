"""Sequence losses against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from seq2labels.training.losses import (
    LOSSES,
    distillation_cross_entropy,
    label_set_bce,
    label_set_scores,
    label_weights,
    sequence_cross_entropy,
    sequence_focal_loss,
    sequence_loss,
    step_weights,
)
from seq2labels.models.sgm import SGM
from seq2labels.models.config import SGMConfig

pytestmark = pytest.mark.usefixtures("one_thread")

PAD, BOS, EOS = 0, 1, 2
NEG_INF = float("-inf")


def masked_log_probs(seed: int = 0, batch: int = 2, steps: int = 3, outputs: int = 6) -> torch.Tensor:
    """Random log-distributions with PAD and BOS at -inf, as the model emits them."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, steps, outputs, generator=g)
    logits[..., PAD] = NEG_INF
    logits[..., BOS] = NEG_INF
    return torch.log_softmax(logits, dim=-1)


# ---- cross-entropy --------------------------------------------------------------------

def test_sequence_cross_entropy_is_the_mean_nll_of_gold_labels_and_eos():
    lp = masked_log_probs()
    targets = torch.tensor([[3, 5, EOS], [EOS, PAD, PAD]])
    expected = -(lp[0, 0, 3] + lp[0, 1, 5] + lp[0, 2, EOS] + lp[1, 0, EOS]) / 4
    torch.testing.assert_close(sequence_cross_entropy(lp, targets), expected)


def test_sequence_cross_entropy_ignores_pad_positions_even_where_pad_is_minus_inf():
    lp = masked_log_probs()
    targets = torch.tensor([[3, EOS, PAD], [EOS, PAD, PAD]])
    base = sequence_cross_entropy(lp, targets)
    changed = lp.clone()
    changed[0, 2] = torch.log_softmax(torch.tensor([9.0, -3, 4, 1, 2, 7]), dim=0)  # rows only PAD targets
    changed[1, 1:] = NEG_INF
    changed[1, 1:, 4] = 0.0
    assert torch.equal(sequence_cross_entropy(changed, targets), base)
    # the model's PAD column is -inf everywhere; the loss and its gradient stay finite
    leaf = lp.clone().requires_grad_(True)
    loss = sequence_cross_entropy(leaf, targets)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all()
    assert torch.all(leaf.grad[0, 2] == 0) and torch.all(leaf.grad[1, 1:] == 0)


# ---- label-set BCE -------------------------------------------------------------------

def test_label_set_bce_equals_a_hand_computation():
    # one document, outputs PAD BOS EOS a(3) b(4) c(5); gold {a}; targets a, EOS, PAD
    probs = torch.tensor([[[0.0, 0.0, 0.1, 0.6, 0.2, 0.1],     # step 1: emits a
                           [0.0, 0.0, 0.7, 0.0, 0.25, 0.05],   # step 2: EOS (a is masked)
                           [0.0, 0.0, 0.01, 0.0, 0.98, 0.01]]])  # step 3: PAD target, must be ignored
    lp = probs.log()
    targets = torch.tensor([[3, EOS, PAD]])
    s_a, s_b, s_c = 0.6, 0.25, 0.1                              # max over the two valid steps
    expected = -(math.log(s_a) + math.log(1 - s_b) + math.log(1 - s_c))
    assert label_set_bce(lp, targets).item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(label_set_scores(lp, targets)[0, 3:], torch.tensor([s_a, s_b, s_c]))


def test_label_set_bce_averages_documents():
    lp = masked_log_probs(seed=3)
    targets = torch.tensor([[3, 5, EOS], [4, EOS, PAD]])
    per_doc = [label_set_bce(lp[i:i + 1], targets[i:i + 1]) for i in range(2)]
    torch.testing.assert_close(label_set_bce(lp, targets), (per_doc[0] + per_doc[1]) / 2)


def test_label_set_bce_is_finite_when_a_label_never_gets_probability():
    lp = masked_log_probs(outputs=5)
    lp[0, :, 4] = NEG_INF             # gold label 4 impossible at every step: log(0) would be -inf
    lp = torch.log_softmax(lp, dim=-1)
    targets = torch.tensor([[4, EOS, PAD], [3, EOS, PAD]])
    leaf = lp.clone().requires_grad_(True)
    loss = label_set_bce(leaf, targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert not torch.isnan(leaf.grad).any()


def test_losses_on_real_model_outputs_have_finite_gradients():
    torch.manual_seed(0)
    model = SGM(SGMConfig(vocab_size=20, num_outputs=7, embedding_dim=8, encoder_hidden=8,
                          label_embedding_dim=8, decoder_hidden=8))
    src = torch.tensor([[3, 4, 5], [6, 7, 0]])
    targets = torch.tensor([[4, 3, 6, EOS], [5, EOS, PAD, PAD]])
    for kind in LOSSES:
        model.zero_grad()
        loss = sequence_loss(model(src, torch.tensor([3, 2]), targets), targets, kind)
        loss.backward()
        assert torch.isfinite(loss), kind
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None), kind


# ---- dispatch ------------------------------------------------------------------------

def test_sequence_loss_dispatches_and_weights_the_bce_term():
    lp = masked_log_probs(seed=5)
    targets = torch.tensor([[3, EOS, PAD], [5, 4, EOS]])
    ce, bce = sequence_cross_entropy(lp, targets), label_set_bce(lp, targets)
    assert torch.equal(sequence_loss(lp, targets, "ce"), ce)
    assert torch.equal(sequence_loss(lp, targets, "bce"), bce)
    torch.testing.assert_close(sequence_loss(lp, targets, "ce+bce", bce_weight=0.25), ce + 0.25 * bce)


def test_unknown_loss_name_is_an_error_listing_the_choices():
    lp = masked_log_probs()
    targets = torch.tensor([[3, EOS, PAD], [EOS, PAD, PAD]])
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'.*ce, bce, ce\+bce, focal"):
        sequence_loss(lp, targets, "hinge")


# ---- class imbalance: per-label weights and the focal loss -------------------------------

def test_inverse_label_weights_are_one_over_the_count_with_mean_one():
    w = label_weights([8, 2, 1], "inverse")
    raw = torch.tensor([1 / 8, 1 / 2, 1.0])
    torch.testing.assert_close(w[3:], raw / raw.mean())
    assert w[3:].mean().item() == pytest.approx(1.0)
    assert w[:3].tolist() == [0.0, 1.0, 1.0]                    # PAD never a target, BOS and EOS 1
    assert label_weights([8, 2, 1], "none") is None


def test_effective_number_weights_follow_cui_et_al():
    beta = 0.9
    w = label_weights([10, 3, 1, 0], "effective", beta=beta)
    n = torch.tensor([10.0, 3.0, 1.0, 1.0])                      # a count of 0 counts as 1
    raw = (1 - beta) / (1 - beta ** n)                           # 1 / effective number (1 - b^n) / (1 - b)
    torch.testing.assert_close(w[3:], (raw / raw.mean()).float())
    assert w[3] < w[4] < w[5] == w[6]
    # beta 0: every label counts as one sample (uniform); beta near 1: inverse frequency
    assert torch.equal(label_weights([10, 3, 1], "effective", beta=0.0)[3:], torch.ones(3))
    torch.testing.assert_close(label_weights([10, 3, 1], "effective", beta=1 - 1e-9),
                               label_weights([10, 3, 1], "inverse"), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="label_weights_beta"):
        label_weights([1], "effective", beta=1.0)
    with pytest.raises(ValueError, match="unknown label weights 'sqrt'"):
        label_weights([1], "sqrt")


def test_weighted_cross_entropy_is_the_weighted_mean_over_target_steps():
    lp = masked_log_probs(seed=2)
    targets = torch.tensor([[3, 5, EOS], [EOS, PAD, PAD]])
    w = torch.tensor([0.0, 1.0, 1.0, 2.0, 1.0, 0.5])
    # EOS of row 0 weighs the mean of its labels' weights (2 and 0.5); row 1 has no label: weight[EOS]
    expected = -(2.0 * lp[0, 0, 3] + 0.5 * lp[0, 1, 5] + 1.25 * lp[0, 2, EOS] + lp[1, 0, EOS]) / (2 + 0.5 + 1.25 + 1)
    torch.testing.assert_close(sequence_loss(lp, targets, "ce", label_weights=w), expected)
    ones = torch.tensor([0.0, 1, 1, 1, 1, 1])
    torch.testing.assert_close(sequence_loss(lp, targets, "ce", label_weights=ones), sequence_cross_entropy(lp, targets))


def test_step_weights_tie_each_eos_to_its_own_examples_labels():
    targets = torch.tensor([[3, 4, EOS, PAD], [5, EOS, PAD, PAD], [EOS, PAD, PAD, PAD]])
    w = torch.tensor([0.0, 1.0, 1.0, 0.1, 0.3, 4.0])
    got = step_weights(targets, w)
    expected = torch.tensor([[0.1, 0.3, 0.2, 0.0], [4.0, 4.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(got, expected)
    # a frequent-label example no longer lets EOS outweigh its label: label and EOS weigh alike
    assert got[1, 0] == got[1, 1] and got[0, 2] < 1.0
    lp = masked_log_probs(seed=5, batch=3, steps=4).clone().requires_grad_(True)
    loss = sequence_cross_entropy(lp, targets, w)                     # PAD steps are -inf there: still finite
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(lp.grad).all() and torch.all(lp.grad[2, 1:] == 0)


def test_weighted_bce_weighs_each_label_term():
    lp = masked_log_probs(seed=3)
    targets = torch.tensor([[3, 5, EOS], [4, EOS, PAD]])
    w = torch.tensor([0.0, 1.0, 1.0, 2.0, 0.0, 0.5])
    scores = label_set_scores(lp, targets)[:, 3:].clamp(1e-6, 1 - 1e-6)
    gold = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    terms = torch.nn.functional.binary_cross_entropy(scores, gold, reduction="none") * w[3:]
    torch.testing.assert_close(label_set_bce(lp, targets, weight=w), terms.sum(1).mean())


@pytest.mark.parametrize("weighted", [False, True])
def test_focal_loss_with_gamma_0_is_the_cross_entropy(weighted):
    lp = masked_log_probs(seed=4, batch=3, steps=4)
    targets = torch.tensor([[3, 5, 4, EOS], [EOS, PAD, PAD, PAD], [5, EOS, PAD, PAD]])
    w = torch.tensor([0.0, 1.0, 1.0, 3.0, 0.2, 0.7]) if weighted else None
    torch.testing.assert_close(sequence_focal_loss(lp, targets, 0.0, w), sequence_cross_entropy(lp, targets, w))
    torch.testing.assert_close(sequence_loss(lp, targets, "focal", focal_gamma=0.0, label_weights=w),
                               sequence_loss(lp, targets, "ce", label_weights=w))


def test_focal_loss_by_hand_and_it_discounts_easy_steps():
    lp = masked_log_probs(seed=6)
    targets = torch.tensor([[3, EOS, PAD], [4, 5, EOS]])
    picked = [lp[0, 0, 3], lp[0, 1, EOS], lp[1, 0, 4], lp[1, 1, 5], lp[1, 2, EOS]]
    expected = sum(-(1 - p.exp()) ** 2 * p for p in picked) / len(picked)
    torch.testing.assert_close(sequence_loss(lp, targets, "focal", focal_gamma=2.0), expected)
    assert sequence_loss(lp, targets, "focal", focal_gamma=2.0) < sequence_cross_entropy(lp, targets)
    leaf = lp.clone().requires_grad_(True)
    sequence_focal_loss(leaf, targets, 2.0).backward()
    assert torch.isfinite(leaf.grad).all() and torch.all(leaf.grad[0, 2] == 0)


# ---- distillation ---------------------------------------------------------------------

def one_hot_steps(targets: torch.Tensor, outputs: int) -> torch.Tensor:
    """Soft targets that put all of each step's mass on its gold output (0 on PAD steps)."""
    soft = torch.nn.functional.one_hot(targets, outputs).float()         # (batch, steps, V)
    return soft.masked_fill((targets == PAD).unsqueeze(-1), 0.0)


def test_distillation_on_one_hot_targets_is_the_cross_entropy():
    lp = masked_log_probs(seed=3)
    targets = torch.tensor([[3, 5, EOS], [4, EOS, PAD]])
    soft = one_hot_steps(targets, 6)
    torch.testing.assert_close(distillation_cross_entropy(lp, targets, soft), sequence_cross_entropy(lp, targets))
    w = torch.tensor([0.0, 1.0, 1.0, 2.0, 1.0, 0.5])
    torch.testing.assert_close(distillation_cross_entropy(lp, targets, soft, w),
                               sequence_loss(lp, targets, "ce", label_weights=w))


def test_distillation_is_the_mean_soft_cross_entropy_of_the_target_steps():
    lp = masked_log_probs(seed=4, batch=1, steps=2)
    targets = torch.tensor([[3, EOS]])
    soft = torch.zeros(1, 2, 6)
    soft[0, 0, 3], soft[0, 0, 4] = 0.75, 0.25
    soft[0, 1, EOS], soft[0, 1, 5] = 0.5, 0.5
    expected = -((0.75 * lp[0, 0, 3] + 0.25 * lp[0, 0, 4]) + (0.5 * lp[0, 1, EOS] + 0.5 * lp[0, 1, 5])) / 2
    torch.testing.assert_close(distillation_cross_entropy(lp, targets, soft), expected)


def test_distillation_drops_mass_on_forbidden_outputs_and_keeps_gradients_finite():
    logits = torch.randn(1, 2, 6, requires_grad=True)
    lp = torch.log_softmax(logits.masked_fill(torch.tensor([True, True, False, False, False, False]), NEG_INF), -1)
    lp = torch.cat([lp[:, :1], lp[:, 1:].masked_fill(torch.arange(6) == 3, NEG_INF)], dim=1)  # label 3 emitted
    targets = torch.tensor([[3, EOS]])
    soft = torch.zeros(1, 2, 6)
    soft[0, 0, 3] = 1.0
    soft[0, 1, 3], soft[0, 1, EOS] = 0.4, 0.6                             # mass on the label already emitted
    loss = distillation_cross_entropy(lp, targets, soft)
    loss.backward()
    expected = -(lp[0, 0, 3] + 0.6 * lp[0, 1, EOS]) / 2
    torch.testing.assert_close(loss, expected)
    assert torch.isfinite(logits.grad).all()

