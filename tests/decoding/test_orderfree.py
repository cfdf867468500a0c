"""Predicted-label alignment (PLA): hand-made choices, and the teacher-forcing pass it drives."""

from __future__ import annotations

import math

import pytest
import torch

from seq2labels.decoding.orderfree import (
    canonical_targets,
    free_running_log_probs,
    gold_set,
    pla_step,
    pla_targets,
)
from seq2labels.models.config import SGMConfig
from seq2labels.models.sgm import SGM

pytestmark = pytest.mark.usefixtures("one_thread")

PAD, BOS, EOS = 0, 1, 2


def log_rows(*rows: list[float]) -> torch.Tensor:
    """Log of hand-written probability rows (0 -> -inf)."""
    return torch.tensor([[math.log(p) if p > 0 else -math.inf for p in row] for row in rows])


def test_pla_picks_the_highest_ranked_remaining_gold_label_then_eos():
    # outputs PAD BOS EOS a(3) b(4) c(5) d(6); row 0 gold {a, c, d}; row 1 gold {b}
    targets = torch.tensor([[3, 5, 6, EOS], [4, EOS, PAD, PAD]])
    step0 = log_rows([0, 0, .05, .10, .40, .20, .25],   # b is best but not gold: d (.25) > c > a
                     [0, 0, .50, .10, .20, .10, .10])   # EOS is best, but gold b must come first
    step1 = log_rows([0, 0, .05, .30, .10, .40, 0],     # d emitted (masked): c
                     [0, 0, .90, .02, 0, .04, .04])
    step2 = log_rows([0, 0, .50, .30, .20, 0, 0],       # only a is left, whatever EOS says
                     [0, 0, 1, 0, 0, 0, 0])
    step3 = log_rows([0, 0, 1, 0, .0, 0, 0], [0, 0, 1, 0, 0, 0, 0])
    log_probs = torch.stack([step0, step1, step2, step3], dim=1)  # (2, 4, 7)
    assert pla_targets(log_probs, targets).tolist() == [[6, 5, 3, EOS], [4, EOS, PAD, PAD]]


def test_pla_ties_go_to_the_smaller_id_and_a_masked_gold_label_is_still_chosen():
    remaining = torch.tensor([[False, False, False, True, True, True]])
    chosen, left = pla_step(torch.log(torch.tensor([[0, 0, .2, .4, .4, .0]])), remaining, torch.tensor([EOS]))
    assert chosen.tolist() == [3] and left.tolist() == [[False, False, False, False, True, True]]
    chosen, left = pla_step(torch.full((1, 6), -math.inf), left, torch.tensor([EOS]))  # all -inf: first left
    assert chosen.tolist() == [4]
    chosen, _ = pla_step(torch.zeros(1, 6), torch.zeros(1, 6, dtype=torch.bool), torch.tensor([PAD]))
    assert chosen.tolist() == [PAD]


def test_canonical_targets_sort_gold_ids_and_keep_eos_and_pad():
    targets = torch.tensor([[6, 3, 5, EOS], [4, EOS, PAD, PAD], [EOS, PAD, PAD, PAD]])
    assert canonical_targets(targets).tolist() == [[3, 5, 6, EOS], [4, EOS, PAD, PAD], [EOS, PAD, PAD, PAD]]
    assert gold_set(targets, 7).tolist()[0] == [False, False, False, True, False, True, True]


def tiny_sgm(seed: int = 0, labels: int = 6, mask_repeats: bool = True) -> SGM:
    torch.manual_seed(seed)
    model = SGM(SGMConfig(vocab_size=20, num_outputs=labels + 3, embedding_dim=8, encoder_hidden=8,
                          label_embedding_dim=8, decoder_hidden=8, dropout=0.0, mask_repeats=mask_repeats))
    return model.eval()


SRC = torch.tensor([[3, 4, 5, 9], [6, 7, 0, 0], [8, 0, 0, 0]])
LENGTHS = torch.tensor([4, 2, 1])
TARGETS = torch.tensor([[3, 5, 7, 8, EOS], [4, 6, EOS, PAD, PAD], [EOS, PAD, PAD, PAD, PAD]])


@pytest.mark.parametrize("mask_repeats", [True, False])
def test_the_pla_pass_equals_teacher_forcing_on_the_order_it_chose(mask_repeats):
    """The steps after a choice are fed that choice and mask it (when the model masks repeats):
    exactly plain teacher forcing on the chosen order."""
    model = tiny_sgm(mask_repeats=mask_repeats)
    with torch.no_grad():
        aligned = model(SRC, LENGTHS, TARGETS, align="pla")                 # (3, 5, V)
        chosen = pla_targets(aligned, TARGETS)
        plain = model(SRC, LENGTHS, chosen)
    assert torch.equal(aligned, plain)
    assert sorted(chosen[0, :4].tolist()) == [3, 5, 7, 8] and chosen[0, 4] == EOS
    assert chosen[2].tolist() == TARGETS[2].tolist()
    if mask_repeats:  # at each step the chosen label is the model's favourite among those left
        assert aligned[0, 1, chosen[0, 0]] == -math.inf


def test_the_pla_pass_does_not_depend_on_the_order_of_the_gold_labels():
    model = tiny_sgm(seed=3)
    shuffled = torch.tensor([[8, 3, 7, 5, EOS], [6, 4, EOS, PAD, PAD], [EOS, PAD, PAD, PAD, PAD]])
    with torch.no_grad():
        a = model(SRC, LENGTHS, canonical_targets(TARGETS), align="pla")
        b = model(SRC, LENGTHS, canonical_targets(shuffled), align="pla")
    assert torch.equal(a, b)


def test_unknown_alignment_is_an_error():
    with pytest.raises(ValueError, match="unknown alignment 'greedy'"):
        tiny_sgm()(SRC, LENGTHS, TARGETS, align="greedy")


def test_free_running_pass_feeds_its_own_greedy_choices_and_never_eos():
    model = tiny_sgm(seed=1)
    with torch.no_grad():
        lp = free_running_log_probs(model, SRC, LENGTHS, 4)                # (3, 4, V)
    assert lp.shape == (3, 4, 9)
    assert torch.isneginf(lp[..., [PAD, BOS, EOS]]).all()
    greedy = lp.argmax(dim=2)                                              # (3, 4)
    for row in greedy.tolist():
        assert len(set(row)) == 4                                          # each emitted label masked after
    with torch.no_grad():  # teacher forcing on those choices gives the same steps, up to EOS's share
        forced = model(SRC, LENGTHS, torch.cat([greedy, torch.full((3, 1), EOS)], dim=1))[:, :4]

    def over_labels(x: torch.Tensor) -> torch.Tensor:
        return x[..., 3:] - torch.logsumexp(x[..., 3:], dim=2, keepdim=True)  # (3, 4, labels)

    torch.testing.assert_close(over_labels(forced), over_labels(lp))
    with pytest.raises(ValueError, match="free-running steps"):
        free_running_log_probs(model, SRC, LENGTHS, 7)
