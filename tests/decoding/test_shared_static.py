"""Beam search shares the encoder outputs across an example's hypotheses and runs the first
step once per example; neither changes a result."""

import pytest
import torch

from seq2labels.decoding.search import decode
from seq2labels.models.sgm import SGM
from seq2labels.models.config import SGMConfig


class _CopiesStatic:
    """The same model, decoded the general way: static tensors repeated once per hypothesis."""

    static_per_example = False

    def __init__(self, model: SGM):
        self.model = model
        self.config = model.config
        self.static_rows: list[int] = []

    def start(self, src, lengths):
        return self.model.start(src, lengths)

    def step(self, prev, state, static, forbidden):
        self.static_rows.append(static["mask"].size(0))
        return self.model.step(prev, state, static, forbidden)


def _model(seed: int, **overrides) -> SGM:
    torch.manual_seed(seed)
    cfg = SGMConfig(vocab_size=40, num_outputs=12, embedding_dim=8, encoder_hidden=8, label_embedding_dim=8,
                    decoder_hidden=8, dropout=0.0, **overrides)
    model = SGM(cfg).eval()
    with torch.no_grad():   # an input-dependent EOS score: a mix of short and long sequences
        model.output.bias[2] = 0.0
        model.output.weight[2] *= 8
    return model


def _batch(seed: int, batch: int = 29, time: int = 9):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, time + 1, (batch,), generator=gen)        # (batch,)
    src = torch.randint(3, 40, (batch, time), generator=gen)             # (batch, time)
    return src.masked_fill(torch.arange(time)[None, :] >= lengths[:, None], 0), lengths


@pytest.mark.parametrize("overrides", [{}, {"global_embedding": True}, {"bag_of_words": True},
                                       {"attention": False}, {"self_attention": True, "self_attention_heads": 2}])
@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("seed", [0, 3])
def test_shared_static_matches_copied_static(overrides, compact, seed):
    model = _model(seed, **overrides)
    src, lengths = _batch(seed)
    copies = _CopiesStatic(model)
    with torch.inference_mode():
        shared = decode(model, src, lengths, beam_size=4, max_labels=6, return_attention=True, compact=compact)
        copied = decode(copies, src, lengths, beam_size=4, max_labels=6, return_attention=True, compact=compact)
    assert copies.static_rows[0] == 29 and set(copies.static_rows[1:]) <= {29 * 4} | set(range(4, 29 * 4, 4))
    assert torch.equal(shared.sequences, copied.sequences)
    assert torch.equal(shared.lengths, copied.lengths)
    torch.testing.assert_close(shared.scores, copied.scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(shared.label_scores, copied.label_scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(shared.attention, copied.attention, atol=1e-5, rtol=0)


def test_first_step_runs_once_per_example_and_matches_a_full_first_step():
    """The first step's outputs are equal across an example's beam slots, so one row each is enough."""
    model = _model(1, global_embedding=True)
    src, lengths = _batch(1)
    with torch.inference_mode():
        static, state = model.start(src, lengths)
        forbidden = torch.zeros(29, 12, dtype=torch.bool)
        forbidden[:, :2] = True
        prev = torch.full((29,), 1)
        once, _, attn_once = model.step(prev, state, static, forbidden)
        rep = {k: v.repeat_interleave(3, 0) for k, v in state.items()}
        full, _, attn_full = model.step(prev.repeat_interleave(3), rep, static, forbidden.repeat_interleave(3, 0))
    torch.testing.assert_close(once.repeat_interleave(3, 0), full, atol=1e-6, rtol=0)
    torch.testing.assert_close(attn_once.repeat_interleave(3, 0), attn_full, atol=1e-6, rtol=0)


@pytest.mark.parametrize("group", [1, 4])
def test_attention_in_slices_equals_attention_in_one_piece(monkeypatch, group):
    """The energy is built a slice of examples at a time (cache-sized); the slices change nothing."""
    from seq2labels.models import attention

    model = _model(2)
    src, lengths = _batch(2, batch=23)
    with torch.inference_mode():
        static, _ = model.start(src, lengths)
        query = torch.randn(23 * group, model.config.decoder_hidden, generator=torch.Generator().manual_seed(0))
        whole = model.attention(query, static["keys"], static["memory"], static["mask"])
        monkeypatch.setattr(attention, "ENERGY_CHUNK_ELEMENTS", 2 * group * 9 * model.config.decoder_hidden)
        sliced = model.attention(query, static["keys"], static["memory"], static["mask"])
    for a, b in zip(whole, sliced):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("overrides", [{}, {"global_embedding": True}, {"attention": False}])
def test_teacher_forcing_that_drops_finished_rows_gives_the_same_log_probs_and_gradients(monkeypatch, overrides):
    """Rows past their EOS leave the training batch; the positions they leave are PAD, which losses ignore."""
    from seq2labels.decoding import search
    from seq2labels.training.losses import sequence_loss

    model = _model(4, **overrides)
    src, lengths = _batch(4, batch=16)
    gen = torch.Generator().manual_seed(4)
    counts = torch.randint(0, 6, (16,), generator=gen)                   # 0..5 labels, then EOS
    targets = torch.zeros(16, 7, dtype=torch.long)
    for i, n in enumerate(counts.tolist()):
        targets[i, :n] = torch.randperm(9, generator=gen)[:n] + 3
        targets[i, n] = 2
    results = {}
    for fraction in (0.0, 0.75):
        monkeypatch.setattr(search, "TEACHER_FORCING_KEEP_FRACTION", fraction)
        model.zero_grad()
        log_probs = model(src, lengths, targets)                         # (batch, steps, V)
        for kind in ("ce", "ce+bce"):
            sequence_loss(log_probs, targets, kind).backward(retain_graph=True)
        results[fraction] = (log_probs.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None])
    valid = targets != 0                                                 # (batch, steps)
    torch.testing.assert_close(results[0.0][0][valid], results[0.75][0][valid], atol=1e-5, rtol=0)
    for a, b in zip(results[0.0][1], results[0.75][1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
