"""The padded, reverse-within-length encoder must equal a packed bidirectional RNN exactly."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2labels.models.sgm import SGM
from seq2labels.models.config import SGMConfig
from seq2labels.models.encoders.rnn import reverse_within_length


def test_reverse_within_length_keeps_padding_and_is_an_involution():
    x = torch.arange(10, dtype=torch.float32).view(2, 5, 1)              # (batch, time, 1)
    lengths = torch.tensor([3, 5])
    out = reverse_within_length(x, lengths)
    assert out[0, :, 0].tolist() == [2, 1, 0, 3, 4]
    assert out[1, :, 0].tolist() == [9, 8, 7, 6, 5]
    assert torch.equal(reverse_within_length(out, lengths), x)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_encoder_equals_packed_bidirectional_rnn(rnn_type, layers):
    torch.manual_seed(0)
    cfg = SGMConfig(vocab_size=50, num_outputs=10, embedding_dim=6, encoder_hidden=8, encoder_layers=layers,
                    rnn_type=rnn_type, dropout=0.0)
    model = SGM(cfg).eval()
    lengths = torch.tensor([7, 3, 5, 1])
    src = torch.randint(1, 50, (4, 7))
    for i, n in enumerate(lengths.tolist()):
        src[i, n:] = 0
    memory, mask, _ = model.encoder(src, lengths)                        # (batch, time, 16)

    rnn_cls = torch.nn.LSTM if rnn_type == "lstm" else torch.nn.GRU
    reference = rnn_cls(6, 8, num_layers=layers, bidirectional=True, batch_first=True)
    state = {}
    for layer in range(layers):
        for direction, suffix in ((0, ""), (1, "_reverse")):
            uni = model.encoder.layers[layer][direction]
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                state[f"{name}_l{layer}{suffix}"] = getattr(uni, f"{name}_l0")
    reference.load_state_dict(state)
    packed = pack_padded_sequence(model.encoder.embedding(src), lengths, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=7)
    assert torch.allclose(memory, expected, atol=1e-6)
    assert mask.sum(1).tolist() == lengths.tolist()


def test_reverse_within_length_sends_gradients_back_to_the_positions_they_came_from():
    x = torch.randn(3, 6, 4, requires_grad=True)                          # (batch, time, dim)
    lengths = torch.tensor([6, 2, 4])
    weights = torch.randn(3, 6, 4)
    (reverse_within_length(x, lengths) * weights).sum().backward()
    assert torch.equal(x.grad, reverse_within_length(weights, lengths))


@pytest.mark.parametrize("self_attention", [False, True])
def test_start_pools_only_real_tokens_whether_or_not_the_encoder_zeroes_padding(self_attention):
    torch.manual_seed(0)
    cfg = SGMConfig(vocab_size=50, num_outputs=10, embedding_dim=6, encoder_hidden=8, dropout=0.0,
                    self_attention=self_attention, self_attention_heads=2)
    model = SGM(cfg).eval()
    lengths = torch.tensor([7, 3, 5])
    src = torch.randint(1, 50, (3, 7))
    for i, n in enumerate(lengths.tolist()):
        src[i, n:] = 0
    memory, mask, _ = model.encoder(src, lengths)                        # (batch, time, 16)
    assert model.encoder.memory_zero_on_padding is not self_attention
    if not self_attention:
        assert not memory[~mask].any()                                   # exactly zero: pooling relies on it
    expected = torch.stack([memory[i, :n].mean(0) for i, n in enumerate(lengths.tolist())])  # (batch, 16)
    _, state = model.start(src, lengths)
    assert torch.allclose(state["context"], expected, atol=1e-6)
