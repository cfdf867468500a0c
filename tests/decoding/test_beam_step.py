"""beam_step and the forbidden mask, driven by hand on tiny tensors."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seq2labels.decoding import EOS_ID, PAD_ID, beam_step, forbidden_labels

INF = float("inf")


def test_beam_step_by_hand() -> None:
    # 2 examples x beam 2, V = 5: PAD, BOS, EOS, label 3, label 4.
    log_probs = torch.tensor([
        [-INF, -INF, -3.0, -0.5, -1.0],    # ex 0 row 0: EOS -4.0, l3 -1.5, l4 -2.0
        [-INF, -INF, -0.1, -INF, -2.0],    # ex 0 row 1: EOS -2.1, l4 -4.0
        [-1.0, -1.0, -0.01, -0.02, -0.03],  # ex 1 row 2: finished -> only PAD at -0.5
        [-INF, -INF, -0.4, -0.3, -INF],    # ex 1 row 3: EOS -1.1, l3 -1.0
    ])
    scores = torch.tensor([-1.0, -2.0, -0.5, -0.7])
    finished = torch.tensor([False, False, True, False])
    new_scores, parent, token = beam_step(log_probs, scores, finished, beam_size=2)
    assert torch.equal(parent, torch.tensor([0, 0, 2, 3]))
    assert torch.equal(token, torch.tensor([3, 4, PAD_ID, 3]))
    assert torch.allclose(new_scores, torch.tensor([-1.5, -2.0, -0.5, -1.0]))


def test_finished_hypothesis_keeps_its_score_and_can_win() -> None:
    log_probs = torch.tensor([
        [-5.0, -5.0, -0.2, -0.1, -0.3],    # finished: everything ignored
        [-INF, -INF, -2.0, -0.4, -1.0],
    ])
    scores = torch.tensor([-0.3, -0.2])
    finished = torch.tensor([True, False])
    new_scores, parent, token = beam_step(log_probs, scores, finished, beam_size=2)
    assert torch.equal(parent, torch.tensor([0, 1]))
    assert torch.equal(token, torch.tensor([PAD_ID, 3]))
    assert new_scores[0] == scores[0]  # kept bit for bit
    assert torch.allclose(new_scores[1], torch.tensor(-0.6))


def test_only_beam_zero_is_live_at_the_start() -> None:
    row = torch.tensor([-INF, -INF, -1.2, -0.7, -0.9])
    log_probs = torch.stack([row, row, row])                       # identical copies, beam 3
    scores = torch.tensor([0.0, -INF, -INF])
    new_scores, parent, token = beam_step(log_probs, scores, torch.zeros(3, dtype=torch.bool), 3)
    assert torch.equal(parent, torch.zeros(3, dtype=torch.long))
    assert torch.equal(token, torch.tensor([3, 4, EOS_ID]))         # three different extensions
    assert torch.allclose(new_scores, torch.tensor([-0.7, -0.9, -1.2]))


def test_too_few_candidates_leave_dead_slots() -> None:
    log_probs = torch.tensor([[-INF, -INF, -0.1, -INF], [-INF, -INF, -0.1, -INF]])
    new_scores, parent, token = beam_step(log_probs, torch.tensor([0.0, -INF]),
                                          torch.zeros(2, dtype=torch.bool), 2)
    assert (parent[0].item(), token[0].item()) == (0, EOS_ID)
    assert new_scores[0] == log_probs[0, EOS_ID] and new_scores[1].item() == -INF


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 3), beam=st.integers(1, 4), labels=st.integers(1, 4),
       seed=st.integers(0, 10_000))
def test_beam_step_invariants(batch: int, beam: int, labels: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    rows, vocab = batch * beam, labels + 3
    log_probs = torch.randn(rows, vocab, generator=g, dtype=torch.float64).log_softmax(1)
    log_probs[:, :2] = -INF
    scores = -torch.rand(rows, generator=g, dtype=torch.float64) * 3
    finished = torch.rand(rows, generator=g) < 0.3
    new_scores, parent, token = beam_step(log_probs, scores, finished, beam)
    # parents stay inside their own example, survivors come best first
    assert torch.equal(parent // beam, torch.arange(rows) // beam)
    assert (new_scores.view(batch, beam).diff(dim=1) <= 0).all()
    # each survivor's score is its parent's plus its token's log-prob (0 via PAD if finished)
    gained = torch.where(finished[parent], 0.0, log_probs[parent, token])
    live = torch.isfinite(new_scores)
    assert torch.allclose(new_scores[live], (scores[parent] + gained)[live])
    assert (token[finished[parent] & live] == PAD_ID).all()
    # the best candidate of each example is taken
    cand = torch.where(finished[:, None], torch.where(torch.arange(vocab) == PAD_ID, 0.0, -INF),
                       log_probs) + scores[:, None]
    assert torch.allclose(new_scores.view(batch, beam)[:, 0], cand.view(batch, -1).max(1).values)


def test_forbidden_labels_mask() -> None:
    emitted = torch.tensor([
        [False, False, False, False, False, False],  # nothing yet: EOS held by min_labels=1
        [False, False, False, True, False, False],   # one label: EOS allowed
        [False, False, False, True, True, True],     # every label used: EOS is the only choice
    ])
    forbidden = forbidden_labels(emitted, min_labels=1)
    expected = torch.tensor([
        [True, True, True, False, False, False],
        [True, True, False, True, False, False],
        [True, True, False, True, True, True],
    ])
    assert torch.equal(forbidden, expected)
    assert not forbidden_labels(emitted)[:, EOS_ID].any()           # min_labels=0: EOS always allowed
