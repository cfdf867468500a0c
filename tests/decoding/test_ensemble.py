"""The ensemble step model: log of the mean of member distributions, under the unchanged search."""

from __future__ import annotations

import math

import pytest
import torch

from seq2labels.decoding import decode
from seq2labels.decoding.ensemble import EnsembleStepModel

FIELDS = ("sequences", "lengths", "step_probs", "scores", "attention", "label_scores")


class PerHypothesisStatic:
    """A member that wants static rows repeated per hypothesis (static_per_example False)."""

    static_per_example = False

    def __init__(self, model):
        self.model = model
        self.num_outputs = model.num_outputs

    def start(self, src, src_lengths):
        return self.model.start(src, src_lengths)

    def step(self, prev, state, static, forbidden):
        return self.model.step(prev, state, static, forbidden)


@pytest.mark.parametrize("beam", [1, 3])
def test_ensemble_of_one_is_that_model_exactly(make_model, make_batch, beam):
    model = make_model(num_labels=6, seed=3)
    src, lengths = make_batch(0, 9)
    alone = decode(model, src, lengths, beam_size=beam, max_labels=5, return_attention=True)
    together = decode(EnsembleStepModel([model]), src, lengths, beam_size=beam, max_labels=5, return_attention=True)
    for name in FIELDS:
        assert torch.equal(getattr(alone, name), getattr(together, name)), name


@pytest.mark.parametrize("beam", [1, 4])
def test_ensemble_of_two_identical_models_is_that_model(make_model, make_batch, beam):
    src, lengths = make_batch(1, 12)
    alone = decode(make_model(num_labels=6, seed=4), src, lengths, beam_size=beam, max_labels=5)
    pair = EnsembleStepModel([make_model(num_labels=6, seed=4), make_model(num_labels=6, seed=4)])
    together = decode(pair, src, lengths, beam_size=beam, max_labels=5)
    assert torch.equal(alone.sequences, together.sequences)
    torch.testing.assert_close(alone.scores, together.scores, atol=1e-12, rtol=0)
    torch.testing.assert_close(alone.label_scores, together.label_scores, atol=1e-12, rtol=0)


def test_step_is_log_of_mean_member_probabilities(make_model, make_batch):
    members = [make_model(num_labels=5, seed=s) for s in (0, 1, 2)]
    src, lengths = make_batch(2, 4)
    ensemble = EnsembleStepModel(members)
    static, state = ensemble.start(src, lengths)
    forbidden = torch.zeros(4, ensemble.num_outputs, dtype=torch.bool)
    forbidden[:, :2] = True                                                # PAD, BOS
    forbidden[0, 4] = True
    prev = torch.full((4,), 1)
    log_probs, new_state, attention = ensemble.step(prev, state, static, forbidden)
    by_hand = torch.zeros(4, ensemble.num_outputs, dtype=torch.float64)
    for m in members:
        s, st = m.start(src, lengths)
        lp, _, att0 = m.step(prev, st, s, forbidden)
        by_hand += lp.exp() / 3
        if m is members[0]:
            first_attention = att0
    torch.testing.assert_close(log_probs.exp(), by_hand, atol=1e-12, rtol=0)
    assert torch.isinf(log_probs[0, 4]) and torch.isinf(log_probs[:, 0]).all()
    assert math.isclose(float(log_probs.exp().sum(1)[0]), 1.0, rel_tol=1e-12)
    torch.testing.assert_close(attention, first_attention)               # the first member's attention
    assert set(new_state) == {"m0.h", "m1.h", "m2.h"}


def test_beam_rows_follow_parents_for_every_member(make_model, make_batch):
    """Batched beam search of a mixed ensemble (different inputs, vocabularies, static layouts)
    equals decoding each example alone: every member's state is reordered with the beam."""
    a, b = make_model(num_labels=6, seed=5, src_vocab=20), PerHypothesisStatic(make_model(num_labels=6, seed=6, src_vocab=30))
    src_a, len_a = make_batch(3, 7, src_vocab=20, max_time=6)
    src_b, len_b = make_batch(4, 7, src_vocab=30, max_time=9)
    ensemble = EnsembleStepModel([a, b])
    assert not ensemble.static_per_example
    batched = decode(ensemble, [(src_a, len_a), (src_b, len_b)], len_a, beam_size=3, max_labels=5,
                     return_attention=True)
    assert batched.attention.size(2) == src_a.size(1)                    # the first member's positions
    for i in range(7):
        one = decode(ensemble, [(src_a[i:i + 1], len_a[i:i + 1]), (src_b[i:i + 1], len_b[i:i + 1])],
                     len_a[i:i + 1], beam_size=3, max_labels=5)
        n = int(one.lengths[0])
        assert int(batched.lengths[i]) == n
        assert torch.equal(batched.sequences[i, :n], one.sequences[0, :n])
        torch.testing.assert_close(batched.scores[i], one.scores[0], atol=1e-9, rtol=0)


def test_members_must_share_the_label_vocabulary(make_model):
    with pytest.raises(ValueError, match="share the label vocabulary"):
        EnsembleStepModel([make_model(num_labels=5), make_model(num_labels=6)])
    with pytest.raises(ValueError, match="at least one"):
        EnsembleStepModel([])


def test_inputs_must_match_the_members(make_model, make_batch):
    ensemble = EnsembleStepModel([make_model(seed=0), make_model(seed=1)])
    src, lengths = make_batch(0, 3)
    with pytest.raises(ValueError, match="2 members but got 1"):
        ensemble.start([(src, lengths)], lengths)
    with pytest.raises(ValueError, match="same examples"):
        ensemble.start([(src, lengths), (src[:2], lengths[:2])], lengths)


class Relabelled:
    """``model`` with its labels numbered differently: this wrapper's id k is the model's id q[k]."""

    def __init__(self, model, q):
        self.model, self.q = model, q
        self.num_outputs = model.num_outputs
        self.inverse = torch.argsort(q)                                    # model id -> wrapper id

    def start(self, src, src_lengths):
        return self.model.start(src, src_lengths)

    def step(self, prev, state, static, forbidden):
        model_forbidden = forbidden.index_select(1, self.inverse)          # column m = wrapper column inverse[m]
        log_probs, state, attention = self.model.step(self.q[prev], state, static, model_forbidden)
        return log_probs.index_select(1, self.q), state, attention


def test_members_numbering_labels_differently_are_translated(make_model, make_batch):
    model = make_model(num_labels=6, seed=8)
    q = torch.tensor([0, 1, 2, 7, 3, 8, 4, 6, 5])                          # a relabelling of the 6 labels
    src, lengths = make_batch(5, 8)
    alone = decode(model, src, lengths, beam_size=3, max_labels=5)
    relabelled = Relabelled(make_model(num_labels=6, seed=8), q)
    assert not torch.equal(decode(relabelled, src, lengths, beam_size=3, max_labels=5).sequences, alone.sequences)
    # the ensemble speaks the model's ids; member id of ensemble id j is inverse(q)[j]
    together = decode(EnsembleStepModel([relabelled], label_maps=[torch.argsort(q)]), src, lengths,
                      beam_size=3, max_labels=5)
    for name in ("sequences", "lengths", "scores", "label_scores"):
        assert torch.equal(getattr(alone, name), getattr(together, name)), name


def test_label_maps_are_checked(make_model):
    with pytest.raises(ValueError, match="exactly once"):
        EnsembleStepModel([make_model(num_labels=2)], label_maps=[torch.tensor([0, 1, 2, 3, 3])])
    with pytest.raises(ValueError, match="exactly once"):
        EnsembleStepModel([make_model(num_labels=2)], label_maps=[torch.tensor([0, 1, 2, 3, -1])])
    with pytest.raises(ValueError, match="in place"):
        EnsembleStepModel([make_model(num_labels=2)], label_maps=[torch.tensor([0, 2, 1, 3, 4])])


def test_a_member_lacking_a_label_gives_it_probability_zero(make_model, make_batch):
    """Member b knows 4 of a's 5 labels (a's label id 5 is missing): the mixture gives that label
    half of a's probability, still sums to 1, and decoding never produces NaN."""
    a, b = make_model(num_labels=5, seed=10), make_model(num_labels=4, seed=11)
    to_b = torch.tensor([0, 1, 2, 3, 4, -1, 5, 6])                          # ensemble id -> b's id
    ensemble = EnsembleStepModel([a, b], label_maps=[None, to_b])
    assert ensemble.num_outputs == 8
    src, lengths = make_batch(6, 5)
    static, state = ensemble.start(src, lengths)
    forbidden = torch.zeros(5, 8, dtype=torch.bool)
    forbidden[:, :2] = True
    prev = torch.tensor([1, 5, 3, 1, 6])                                     # label 5 reaches b as PAD
    log_probs, _, _ = ensemble.step(prev, state, static, forbidden)
    sa, sta = a.start(src, lengths)
    pa = a.step(prev, sta, sa, forbidden)[0].exp()
    sb, stb = b.start(src, lengths)
    b_forbidden = forbidden[:, [0, 1, 2, 3, 4, 6, 7]]
    pb = b.step(torch.tensor([1, 0, 3, 1, 5]), stb, sb, b_forbidden)[0].exp()  # (5, 7) in b's ids
    expected = pa / 2
    expected[:, [0, 1, 2, 3, 4, 6, 7]] += pb / 2
    torch.testing.assert_close(log_probs.exp(), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(log_probs.exp().sum(1), torch.ones(5, dtype=torch.float64), atol=1e-12, rtol=0)
    out = decode(ensemble, src, lengths, beam_size=3, max_labels=5, min_labels=5)
    assert (out.lengths == 5).all() and not torch.isnan(out.scores).any()  # b runs out of labels first
