"""Order-free losses (PLA, minimal-cost alignment) and the learned order, on a tiny real SGM."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from seq2labels.data.dataset import EncodedDataset, SeqBatch, collate
from seq2labels.decoding.orderfree import canonical_targets, pla_targets
from seq2labels.models.config import SGMConfig
from seq2labels.models.sgm import SGM
from seq2labels.training.label_order import (
    MASKED_COST,
    LearnedOrder,
    alignment_for,
    assignment_costs,
    hungarian_order,
    hungarian_targets,
    make_loss_fn,
    order_deviation,
)

pytestmark = pytest.mark.usefixtures("one_thread")

PAD, BOS, EOS = 0, 1, 2


# ---- the minimal-cost assignment -----------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_hungarian_order_matches_a_brute_force_minimum(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 6))
    costs = rng.random((1, k, k)) * 5
    costs[0][rng.random((k, k)) < 0.2] = MASKED_COST          # some masked cells
    columns = hungarian_order(costs, np.array([k]))[0]
    got = sum(costs[0, t, columns[t]] for t in range(k))
    best = min(sum(costs[0, t, p[t]] for t in range(k)) for p in itertools.permutations(range(k)))
    assert sorted(columns.tolist()) == list(range(k))
    assert got == pytest.approx(best)


def test_hungarian_targets_reorder_each_row_by_its_own_costs():
    # V = 7 (labels 3..6); row 0 gold {3, 5, 6}: steps prefer 6, then 3, then 5; row 1 gold {4}
    lp = torch.full((2, 3, 7), -5.0)
    lp[0, 0, 6], lp[0, 1, 3], lp[0, 2, 5] = -0.1, -0.2, -0.3
    lp[0, 1, 6] = float("-inf")                                   # 6 emitted at step 0: masked later
    targets = torch.tensor([[3, 5, 6, EOS], [4, EOS, PAD, PAD]])
    costs = assignment_costs(lp, targets)
    assert costs.shape == (2, 3, 3) and costs[0, 1, 2] == MASKED_COST
    assert hungarian_targets(lp, targets).tolist() == [[6, 3, 5, EOS], [4, EOS, PAD, PAD]]


def test_alignment_names():
    assert alignment_for("frequency", "pla") == "none" and alignment_for("learned", "hungarian") == "none"
    assert alignment_for("orderfree", "pla") == "pla" and alignment_for("orderfree", "hungarian") == "hungarian"
    with pytest.raises(ValueError, match="order-free variant 'mla'"):
        alignment_for("orderfree", "mla")
    with pytest.raises(ValueError, match="unknown alignment"):
        make_loss_fn(alignment="greedy")


# ---- the losses on a real model ------------------------------------------------------

def tiny_sgm(seed: int = 0, labels: int = 6) -> SGM:
    torch.manual_seed(seed)
    return SGM(SGMConfig(vocab_size=20, num_outputs=labels + 3, embedding_dim=8, encoder_hidden=8,
                         label_embedding_dim=8, decoder_hidden=8, dropout=0.0)).eval()


def batch_of(targets: list[list[int]]) -> SeqBatch:
    src = torch.tensor([[3, 4, 5, 9], [6, 7, 0, 0], [8, 11, 12, 0]])
    return SeqBatch(src, torch.tensor([4, 2, 3]), torch.tensor(targets), torch.arange(3))


ORDERED = [[3, 5, 7, 8, EOS], [4, 6, EOS, PAD, PAD], [6, EOS, PAD, PAD, PAD]]
PERMUTED = [[8, 5, 3, 7, EOS], [6, 4, EOS, PAD, PAD], [6, EOS, PAD, PAD, PAD]]


@pytest.mark.parametrize("kind", ["ce", "focal", "ce+bce"])
@pytest.mark.parametrize("alignment", ["pla", "hungarian"])
def test_orderfree_loss_ignores_the_order_of_the_gold_labels(alignment, kind):
    model = tiny_sgm(seed=2)
    loss = make_loss_fn(alignment=alignment, kind=kind)
    a, b = loss(model, batch_of(ORDERED)), loss(model, batch_of(PERMUTED))
    assert torch.equal(a, b)


def test_fixed_order_loss_depends_on_the_order():
    model = tiny_sgm(seed=2)
    loss = make_loss_fn(alignment="none")
    assert not torch.allclose(loss(model, batch_of(ORDERED)), loss(model, batch_of(PERMUTED)))


def test_orderfree_losses_are_the_fixed_loss_on_the_order_they_chose():
    model = tiny_sgm(seed=4)
    batch = batch_of(PERMUTED)
    targets = canonical_targets(batch.targets)
    with torch.no_grad():
        pla_order = pla_targets(model(batch.src, batch.src_lengths, targets, align="pla"), targets)
    fixed = make_loss_fn(alignment="none")
    assert torch.equal(make_loss_fn(alignment="pla")(model, batch),
                       fixed(model, batch_of(pla_order.tolist())))
    assert pla_order.tolist() != targets.tolist()  # the model's choice is not just the sorted ids


def one_hot_table(targets: list[list[int]], outputs: int = 9):
    """A soft-target callable that returns each row's gold steps as one-hot distributions."""
    t = torch.tensor(targets)
    table = torch.nn.functional.one_hot(t, outputs).float().masked_fill((t == PAD).unsqueeze(-1), 0.0)
    return lambda index, steps: table[index, :steps]


def test_distillation_mixes_the_soft_cross_entropy_into_the_loss_by_its_weight():
    model = tiny_sgm(seed=6)
    batch = batch_of(ORDERED)
    plain = make_loss_fn(alignment="none")(model, batch)
    for weight in (0.3, 1.0):  # one-hot teachers are the gold targets: the mixture is the plain loss
        torch.testing.assert_close(make_loss_fn(soft_targets=one_hot_table(ORDERED), distill_weight=weight)(model, batch),
                                   plain)
    uniform = lambda index, steps: torch.full((len(index), steps, 9), 1 / 9)  # noqa: E731
    mixed = make_loss_fn(soft_targets=uniform, distill_weight=0.25)(model, batch)
    assert not torch.allclose(mixed, plain)


def test_distillation_needs_a_fixed_order_and_a_weight_in_range():
    with pytest.raises(ValueError, match="fixed label order"):
        make_loss_fn(alignment="hungarian", soft_targets=one_hot_table(ORDERED))
    with pytest.raises(ValueError, match="distill_weight"):
        make_loss_fn(soft_targets=one_hot_table(ORDERED), distill_weight=0.0)


def test_orderfree_losses_train_with_finite_gradients():
    for alignment in ("pla", "hungarian"):
        model = tiny_sgm(seed=5).train()
        loss = make_loss_fn(alignment=alignment)(model, batch_of(ORDERED))
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ---- the learned order ---------------------------------------------------------------

DATA = EncodedDataset(token_ids=[[3, 4, 5], [6, 7], [8, 9, 10, 11], [12], [5, 6, 7]],
                      target_ids=[[3, 4, 5], [4, 6], [3, 8, 7, 6], [5], [6, 3]])


def scorer(model: SGM):
    def score(batch: SeqBatch) -> torch.Tensor:
        with torch.no_grad():
            return model(batch.src, batch.src_lengths, batch.targets, align="pla")
    return score


def test_learned_order_keeps_frequency_in_warmup_then_follows_the_model():
    model = tiny_sgm(seed=7, labels=8)
    learned = LearnedOrder(DATA, warmup=1, score=scorer(model), batch_size=2)
    batches = [[0, 1], [2, 3], [4]]
    assert learned.dataset_for(1, batches) is DATA and learned.last_deviation == 0.0
    after = learned.dataset_for(2, batches)
    assert [sorted(t) for t in after.target_ids] == [sorted(t) for t in DATA.target_ids]
    assert after.target_ids != DATA.target_ids and learned.last_deviation > 0
    assert after.token_ids is DATA.token_ids
    # each example's order is what PLA picks for it
    for i in range(len(DATA)):
        batch = collate(DATA, [i])
        targets = canonical_targets(batch.targets)
        with torch.no_grad():
            chosen = pla_targets(model(batch.src, batch.src_lengths, targets, align="pla"), targets)
        assert after.target_ids[i] == chosen[0, :len(DATA.target_ids[i])].tolist()
    # only this process's rows are reordered
    part = learned.dataset_for(3, [[2]])
    assert part.target_ids[2] == after.target_ids[2] and part.target_ids[0] == DATA.target_ids[0]


def test_learned_order_is_deterministic():
    a = LearnedOrder(DATA, warmup=0, score=scorer(tiny_sgm(seed=7, labels=8))).dataset_for(1, [[0, 1, 2, 3, 4]])
    b = LearnedOrder(DATA, warmup=0, score=scorer(tiny_sgm(seed=7, labels=8))).dataset_for(1, [[4, 3], [2, 1, 0]])
    assert a.target_ids == b.target_ids
    with pytest.raises(ValueError, match="learned_warmup"):
        LearnedOrder(DATA, warmup=-1, score=scorer(tiny_sgm()))


def test_order_deviation():
    assert order_deviation([[3, 4, 5]], [[3, 4, 5]]) == 0.0
    assert order_deviation([[3, 4, 5], [6]], [[5, 4, 3], [6]]) == pytest.approx((2 + 0 + 2 + 0) / 4)
