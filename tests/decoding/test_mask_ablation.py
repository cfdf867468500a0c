"""The "no mask" ablation: without the repeat mask a label may be emitted again, and the
generator still reports each label once."""

import torch

from seq2labels.decoding.search import EOS_ID, FIRST_LABEL_ID, forbidden_labels
from seq2labels.pipeline.generator import _first_occurrences


def test_forbidden_labels_without_repeat_mask_allows_emitted_labels():
    emitted = torch.zeros(2, 6, dtype=torch.bool)
    emitted[0, FIRST_LABEL_ID] = True
    masked = forbidden_labels(emitted, mask_repeats=True)
    unmasked = forbidden_labels(emitted, mask_repeats=False)
    assert masked[0, FIRST_LABEL_ID] and not unmasked[0, FIRST_LABEL_ID]
    assert unmasked[:, :2].all()                       # PAD and BOS stay forbidden
    assert not unmasked[:, EOS_ID].any()


def test_first_occurrences_drops_repeats_with_their_probabilities_and_attention():
    row = {"ids": [5, 4, 5, 6], "probs": [0.9, 0.8, 0.7, 0.6], "score": -1.0,
           "attention": torch.arange(8.0).reshape(4, 2).numpy()}
    out = _first_occurrences(row)
    assert out["ids"] == [5, 4, 6] and out["probs"] == [0.9, 0.8, 0.6]
    assert out["attention"].tolist() == [[0.0, 1.0], [2.0, 3.0], [6.0, 7.0]]
    unique = {"ids": [4, 5], "probs": [0.5, 0.4], "score": 0.0}
    assert _first_occurrences(unique) is unique


def test_teacher_forcing_without_mask_leaves_earlier_gold_labels_possible():
    from seq2labels.decoding.search import teacher_forced_log_probs
    from seq2labels.models.sgm import SGM
    from seq2labels.models.config import SGMConfig

    torch.manual_seed(0)
    src = torch.randint(3, 20, (2, 5))                  # (batch, time)
    lengths = torch.tensor([5, 3])
    targets = torch.tensor([[4, 5, EOS_ID], [6, EOS_ID, 0]])  # (batch, steps)
    for mask, expect_inf in ((True, True), (False, False)):
        model = SGM(SGMConfig(vocab_size=20, num_outputs=8, embedding_dim=8, encoder_hidden=8,
                              label_embedding_dim=8, decoder_hidden=8, mask_repeats=mask)).eval()
        log_probs = teacher_forced_log_probs(model, src, lengths, targets)  # (batch, steps, V)
        assert bool(torch.isinf(log_probs[0, 1, 4])) is expect_inf   # label 4 was fed at step 0
