"""The optional bag-of-words term: trains, decodes (greedy = beam 1), and scores consistently."""

import torch

from seq2labels.decoding import beam_decode, greedy_decode
from seq2labels.training.losses import sequence_loss
from seq2labels.models.sgm import SGM
from seq2labels.models.config import SGMConfig


def _model(**kw):
    torch.manual_seed(0)
    return SGM(SGMConfig(vocab_size=40, num_outputs=9, embedding_dim=8, encoder_hidden=8, decoder_hidden=8,
                         label_embedding_dim=4, dropout=0.0, bag_of_words=True, **kw))


def test_bag_of_words_model_trains_and_its_term_gets_gradients():
    model = _model()
    src = torch.randint(1, 40, (3, 6))
    lengths = torch.tensor([6, 4, 1])
    targets = torch.tensor([[3, 5, 2], [4, 2, 0], [2, 0, 0]])
    loss = sequence_loss(model(src, lengths, targets), targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.bow_output.weight.grad is not None and model.bow_output.weight.grad.abs().sum() > 0


def test_bag_of_words_ignores_padding_and_decodes_like_greedy_with_beam_1():
    model = _model(global_embedding=True).eval()
    src = torch.randint(1, 40, (4, 7))
    lengths = torch.tensor([7, 3, 5, 1])
    padded = src.clone()
    for i, n in enumerate(lengths.tolist()):
        padded[i, n:] = 0
    other = padded.clone()
    other[1, 3:] = 0                                               # different padding content is irrelevant
    with torch.inference_mode():
        a = model.start(padded, lengths)[0]["bow_logits"]
        b = model.start(other, lengths)[0]["bow_logits"]
        assert torch.equal(a, b)
        greedy = greedy_decode(model, padded, lengths, max_labels=4)
        beam1 = beam_decode(model, padded, lengths, beam_size=1, max_labels=4)
        beam3 = beam_decode(model, padded, lengths, beam_size=3, max_labels=4)
    assert torch.equal(greedy.sequences, beam1.sequences)
    assert (beam3.scores >= greedy.scores - 1e-6).all()
