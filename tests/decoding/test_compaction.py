"""Dropping finished examples from the model's batch changes no result."""

import pytest
import torch

from seq2labels.decoding.search import decode
from seq2labels.models.sgm import SGM
from seq2labels.models.config import SGMConfig


def _model(global_embedding: bool, seed: int) -> SGM:
    torch.manual_seed(seed)
    cfg = SGMConfig(vocab_size=40, num_outputs=12, embedding_dim=8, encoder_hidden=8, label_embedding_dim=8,
                    decoder_hidden=8, global_embedding=global_embedding, dropout=0.0)
    model = SGM(cfg).eval()
    with torch.no_grad():   # an input-dependent EOS score: a mix of short and long sequences
        model.output.bias[2] = 0.0
        model.output.weight[2] *= 8
    return model


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("global_embedding", [False, True])
@pytest.mark.parametrize("seed", [0, 2])
def test_compact_decoding_matches_full_batch_decoding(beam_size, global_embedding, seed):
    model = _model(global_embedding, seed)
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 9, (33,), generator=gen)                 # (batch,)
    src = torch.randint(3, 40, (33, 8), generator=gen)                  # (batch, time)
    src = src.masked_fill(torch.arange(8)[None, :] >= lengths[:, None], 0)
    step_rows = []
    original_step = model.step

    def counting_step(prev, state, static, forbidden):
        step_rows.append(prev.size(0))
        return original_step(prev, state, static, forbidden)

    model.step = counting_step
    with torch.inference_mode():
        full = decode(model, src, lengths, beam_size=beam_size, max_labels=8, return_attention=True, compact=False)
        full_rows, step_rows[:] = list(step_rows), []
        compact = decode(model, src, lengths, beam_size=beam_size, max_labels=8, return_attention=True, compact=True)
    assert full_rows[0] == 33                            # the first step runs once per example
    assert set(full_rows[1:]) <= {33 * beam_size}
    assert min(step_rows) < 33 * beam_size             # finished examples left the model's batch
    assert torch.equal(full.sequences, compact.sequences)
    assert torch.equal(full.lengths, compact.lengths)
    torch.testing.assert_close(full.scores, compact.scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(full.step_probs, compact.step_probs, atol=1e-5, rtol=0)
    torch.testing.assert_close(full.label_scores, compact.label_scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(full.attention, compact.attention, atol=1e-5, rtol=0)
