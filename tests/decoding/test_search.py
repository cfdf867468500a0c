"""Greedy and beam decoding against a fake step model."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seq2labels.decoding import (
    BOS_ID,
    EOS_ID,
    FIRST_LABEL_ID,
    PAD_ID,
    DecodeOutput,
    beam_decode,
    decode,
    greedy_decode,
)


def run(model, src, lengths, beam_size: int, **kw) -> DecodeOutput:
    """Greedy for beam_size 0 (a marker), beam search otherwise (beam 1 included)."""
    if beam_size == 0:
        return greedy_decode(model, src, lengths, **kw)
    return beam_decode(model, src, lengths, beam_size=beam_size, **kw)


def assert_valid(out: DecodeOutput, num_outputs: int, max_labels: int, min_labels: int) -> None:
    """Labels only inside the length, PAD after it, no repeats, limits respected."""
    batch, width = out.sequences.shape
    inside = torch.arange(width)[None, :] < out.lengths[:, None]              # (batch, steps)
    assert ((out.sequences >= FIRST_LABEL_ID) & (out.sequences < num_outputs))[inside].all()
    assert (out.sequences[~inside] == PAD_ID).all()
    counts = F.one_hot(out.sequences, num_outputs).sum(dim=1)                 # (batch, V)
    assert (counts[:, FIRST_LABEL_ID:] <= 1).all()
    assert (out.lengths <= max_labels).all()
    assert (out.lengths >= min(min_labels, num_outputs - FIRST_LABEL_ID)).all()
    assert width == (int(out.lengths.max()) if batch else 0)
    assert ((out.step_probs > 0) & (out.step_probs <= 1))[inside].all()
    assert (out.step_probs[~inside] == 0).all()
    assert (out.scores <= 0).all() and torch.isfinite(out.scores).all()


@pytest.mark.parametrize("seed", range(12))
def test_beam_size_one_is_exactly_greedy(make_model, make_batch, seed: int) -> None:
    model = make_model(num_labels=4 + seed % 5, seed=seed)
    src, lengths = make_batch(seed, batch=1 + seed % 7)
    kw = dict(max_labels=2 + seed % 6, min_labels=seed % 3, return_attention=True)
    greedy = greedy_decode(model, src, lengths, **kw)
    beam = beam_decode(model, src, lengths, beam_size=1, **kw)
    for name in ("sequences", "lengths", "scores", "step_probs", "attention", "label_scores"):
        assert torch.equal(getattr(greedy, name), getattr(beam, name)), name


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fixtures are stateless
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 6), beam=st.sampled_from([0, 1, 2, 5]),
       num_labels=st.integers(1, 7), max_labels=st.integers(1, 9), min_labels=st.integers(0, 3),
       eos_bias=st.sampled_from([-3.0, 0.0, 3.0]))
def test_outputs_are_valid_label_sequences(make_model, make_batch, seed, batch, beam, num_labels,
                                           max_labels, min_labels, eos_bias) -> None:
    min_labels = min(min_labels, max_labels)
    model = make_model(num_labels=num_labels, seed=seed, eos_bias=eos_bias)
    src, lengths = make_batch(seed, batch)
    out = run(model, src, lengths, beam, max_labels=max_labels, min_labels=min_labels)
    assert_valid(out, model.num_outputs, max_labels, min_labels)


@pytest.mark.parametrize("beam", [0, 1, 5])
def test_min_labels_one_is_never_empty(make_model, make_batch, beam: int) -> None:
    model = make_model(num_labels=5, seed=3, eos_bias=6.0)  # EOS first almost always
    src, lengths = make_batch(3, batch=8)
    assert (run(model, src, lengths, beam, max_labels=4).lengths == 0).all()
    out = run(model, src, lengths, beam, max_labels=4, min_labels=1)
    assert (out.lengths >= 1).all()


@pytest.mark.parametrize("beam", [0, 1, 3, 5])
@pytest.mark.parametrize("min_labels", [0, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_equals_teacher_forced_log_prob(make_model, make_batch, sequence_log_prob,
                                              beam: int, min_labels: int, seed: int) -> None:
    model = make_model(num_labels=6, seed=seed)
    src, lengths = make_batch(seed, batch=6)
    out = run(model, src, lengths, beam, max_labels=4, min_labels=min_labels)
    expected = sequence_log_prob(model, src, lengths, out.sequences, out.lengths,
                                 max_labels=4, min_labels=min_labels)
    assert torch.allclose(out.scores, expected, atol=1e-5, rtol=0)
    assert (out.lengths == 4).any() and (out.lengths < 4).any()  # both endings are covered


def all_sequences(num_labels: int, max_labels: int) -> list[list[int]]:
    """Every ordered selection of distinct labels, empty one included."""
    labels = range(FIRST_LABEL_ID, FIRST_LABEL_ID + num_labels)
    return [list(p) for n in range(max_labels + 1) for p in itertools.permutations(labels, n)]


@pytest.mark.parametrize("num_labels,max_labels,beam", [(3, 3, 16), (4, 2, 17)])
@pytest.mark.parametrize("seed", range(4))
def test_exhaustive_beam_finds_the_most_probable_sequence(
        make_model, make_batch, sequence_log_prob, num_labels, max_labels, beam, seed) -> None:
    # beam >= number of complete hypotheses: nothing is ever pruned, so the answer is the
    # brute-force optimum, which is at least as good as greedy's.
    model = make_model(num_labels=num_labels, seed=seed)
    src, lengths = make_batch(seed, batch=1)
    candidates = all_sequences(num_labels, max_labels)
    assert len(candidates) == beam
    seqs = torch.tensor([c + [PAD_ID] * (max_labels - len(c)) for c in candidates])  # (n, max_labels)
    seq_lengths = torch.tensor([len(c) for c in candidates])                       # (n,)
    n = len(candidates)
    log_probs = sequence_log_prob(model, src.expand(n, -1), lengths.expand(n), seqs, seq_lengths,
                                  max_labels=max_labels)                            # (n,)
    best = int(log_probs.argmax())
    out = beam_decode(model, src, lengths, beam_size=beam, max_labels=max_labels)
    assert out.lengths.item() == seq_lengths[best]
    assert out.sequences[0].tolist() == candidates[best]
    assert torch.allclose(out.scores, log_probs[best:best + 1], atol=1e-9)
    assert out.scores.item() >= greedy_decode(model, src, lengths, max_labels=max_labels).scores.item() - 1e-9


@pytest.mark.parametrize("seed", range(10))
def test_beam_five_scores_at_least_greedy(make_model, make_batch, seed: int) -> None:
    # Not a theorem (greedy's prefix can be pruned), but it holds on these fixed seeds, and
    # beam must improve somewhere; the exhaustive test above covers the guaranteed case.
    model = make_model(num_labels=6, seed=seed)
    src, lengths = make_batch(seed, batch=8)
    greedy = greedy_decode(model, src, lengths, max_labels=5)
    beam = beam_decode(model, src, lengths, beam_size=5, max_labels=5)
    assert (beam.scores >= greedy.scores - 1e-9).all()


def test_beam_improves_on_greedy_somewhere(make_model, make_batch) -> None:
    improved = 0
    for seed in range(5):
        model = make_model(num_labels=6, seed=seed)
        src, lengths = make_batch(seed, batch=8)
        greedy = greedy_decode(model, src, lengths, max_labels=5)
        beam = beam_decode(model, src, lengths, beam_size=5, max_labels=5)
        improved += int((beam.scores > greedy.scores + 1e-9).sum())
    assert improved > 0


@pytest.mark.parametrize("beam", [0, 1, 4])
def test_batch_invariance(make_model, make_batch, beam: int) -> None:
    model = make_model(num_labels=6, seed=7)
    src, lengths = make_batch(7, batch=9)
    kw = dict(max_labels=5, min_labels=1, return_attention=True)
    batched = run(model, src, lengths, beam, **kw)
    for i in range(src.size(0)):
        alone = run(model, src[i:i + 1], lengths[i:i + 1], beam, **kw)
        n = int(alone.lengths)
        assert batched.lengths[i] == n
        assert torch.equal(batched.sequences[i, :n], alone.sequences[0, :n])
        assert torch.allclose(batched.scores[i], alone.scores[0], atol=1e-9)
        assert torch.allclose(batched.step_probs[i, :n], alone.step_probs[0, :n], atol=1e-9)
        assert torch.allclose(batched.attention[i, :n], alone.attention[0, :n], atol=1e-9)
        assert torch.allclose(batched.label_scores[i], alone.label_scores[0], atol=1e-9)


@pytest.mark.parametrize("beam", [0, 1, 5])
def test_stops_after_one_step_when_everything_emits_eos(make_model, make_batch, beam: int) -> None:
    model = make_model(num_labels=5, seed=1, eos_bias=100.0)
    src, lengths = make_batch(1, batch=4)
    out = run(model, src, lengths, beam, max_labels=6)
    assert model.calls == 1
    assert out.sequences.shape == (4, 0) and (out.lengths == 0).all()
    assert torch.allclose(out.scores, torch.zeros(4, dtype=out.scores.dtype), atol=1e-12)


@pytest.mark.parametrize("beam", [0, 1, 3])
def test_max_labels_ends_without_eos(make_model, make_batch, sequence_log_prob, beam: int) -> None:
    model = make_model(num_labels=6, seed=2, eos_bias=-50.0)  # EOS never wins
    src, lengths = make_batch(2, batch=3)
    out = run(model, src, lengths, beam, max_labels=3)
    assert model.calls == 3 and (out.lengths == 3).all()
    expected = sequence_log_prob(model, src, lengths, out.sequences, out.lengths, max_labels=3)
    assert torch.allclose(out.scores, expected, atol=1e-9)


@pytest.mark.parametrize("beam", [0, 1, 3])
def test_eos_is_forced_once_every_label_is_used(make_model, make_batch, sequence_log_prob,
                                                beam: int) -> None:
    model = make_model(num_labels=2, seed=4, eos_bias=-50.0)
    src, lengths = make_batch(4, batch=3)
    out = run(model, src, lengths, beam, max_labels=10, min_labels=5)
    assert model.calls == 3  # two labels, then the forced EOS
    assert (out.lengths == 2).all()
    assert torch.equal(out.sequences.sort(dim=1).values, torch.tensor([[3, 4]] * 3))
    expected = sequence_log_prob(model, src, lengths, out.sequences, out.lengths,
                                 max_labels=10, min_labels=5)
    assert torch.allclose(out.scores, expected, atol=1e-9)


@pytest.mark.parametrize("beam", [0, 4])
def test_attention_and_label_scores(make_model, make_batch, beam: int) -> None:
    model = make_model(num_labels=6, seed=5)
    src, lengths = make_batch(5, batch=6)
    out = run(model, src, lengths, beam, max_labels=5, return_attention=True)
    batch, width = out.sequences.shape
    assert out.attention.shape == (batch, width, src.size(1))
    inside = torch.arange(width)[None, :] < out.lengths[:, None]              # (batch, steps)
    sums = out.attention.sum(dim=2)                                           # (batch, steps)
    assert torch.allclose(sums[inside], torch.ones_like(sums[inside]))
    assert (sums[~inside] == 0).all()
    padded_src = torch.arange(src.size(1))[None, :] >= lengths[:, None]       # (batch, time)
    assert (out.attention.masked_select(padded_src[:, None, :]) == 0).all()
    assert out.label_scores.shape == (batch, model.num_outputs)
    assert (out.label_scores[:, [PAD_ID, BOS_ID]] == 0).all()
    assert ((out.label_scores >= 0) & (out.label_scores <= 1)).all()
    chosen = out.label_scores.gather(1, out.sequences)                        # (batch, steps)
    assert (chosen[inside] >= out.step_probs[inside]).all()
    assert (out.label_scores[:, EOS_ID] > 0).all()  # every path saw EOS probabilities
    assert run(model, src, lengths, beam, max_labels=5).attention is None


def test_decode_dispatches_on_beam_size(make_model, make_batch) -> None:
    model = make_model(num_labels=6, seed=6)
    src, lengths = make_batch(6, batch=5)
    assert torch.equal(decode(model, src, lengths, max_labels=4).sequences,
                       greedy_decode(model, src, lengths, max_labels=4).sequences)
    assert torch.equal(decode(model, src, lengths, beam_size=3, max_labels=4).scores,
                       beam_decode(model, src, lengths, beam_size=3, max_labels=4).scores)


@pytest.mark.parametrize("beam", [0, 3])
def test_works_under_inference_mode_with_float32(make_model, make_batch, beam: int) -> None:
    model = make_model(num_labels=6, seed=8)
    for name in ("src_embedding", "label_embedding", "w_state", "w_context", "w_out"):
        setattr(model, name, getattr(model, name).float())
    src, lengths = make_batch(8, batch=4)
    with torch.inference_mode():
        out = run(model, src, lengths, beam, max_labels=4, min_labels=1, return_attention=True)
    assert out.scores.dtype == torch.float32
    assert_valid(out, model.num_outputs, 4, 1)


def test_model_may_expose_config_num_outputs(make_model, make_batch) -> None:
    inner = make_model(num_labels=6, seed=9)
    wrapped = SimpleNamespace(start=inner.start, step=inner.step,
                              config=SimpleNamespace(num_outputs=inner.num_outputs))
    src, lengths = make_batch(9, batch=3)
    assert torch.equal(greedy_decode(wrapped, src, lengths, max_labels=3).sequences,
                       greedy_decode(inner, src, lengths, max_labels=3).sequences)
    with pytest.raises(TypeError, match="num_outputs"):
        greedy_decode(SimpleNamespace(start=inner.start, step=inner.step), src, lengths, max_labels=3)


@pytest.mark.parametrize("kw", [dict(max_labels=0), dict(max_labels=2, min_labels=3),
                                dict(max_labels=2, min_labels=-1), dict(max_labels=2, beam_size=0),
                                dict(max_labels=2, beam_size=2, n_best=2)])
def test_bad_limits_are_rejected(make_model, make_batch, kw) -> None:
    model = make_model()
    src, lengths = make_batch(0, batch=2)
    kw.setdefault("beam_size", 2)
    with pytest.raises(ValueError):
        beam_decode(model, src, lengths, **kw)
    assert model.calls == 0
