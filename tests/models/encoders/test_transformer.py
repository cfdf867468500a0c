"""The transformer encoder over a tiny random-weight BERT config built here (no files): shapes and
masks, windows, the frozen-state cache, fine-tuning only the top layers, and its optimizer groups."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="needs the transformer extra: pip install 'seq2labels[transformer]'")

from seq2labels.decoding import beam_decode  # noqa: E402
from seq2labels.models.config import SGMConfig  # noqa: E402
from seq2labels.models.sgm import SGM  # noqa: E402
from seq2labels.training.config import TrainerConfig  # noqa: E402
from seq2labels.training.schedules import build_optimizer, trainable_parameters  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 40          # our ids; the encoder maps id i to model id i + 5 (0 -> [PAD])
CLS, SEP, PAD = 2, 3, 0


def bert_config(**overrides) -> dict:
    from transformers import BertConfig
    base = dict(vocab_size=60, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=24,
                max_position_embeddings=12, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    base.update(overrides)
    return BertConfig(**base).to_dict()


def make_sgm(seed: int = 0, dropout: float = 0.0, **options) -> SGM:
    opts = {"hf_config": bert_config(), "special_ids": {"cls": CLS, "sep": SEP, "pad": PAD}, **options}
    torch.manual_seed(seed)
    model = SGM(SGMConfig(vocab_size=VOCAB, num_outputs=8, label_embedding_dim=6, decoder_hidden=10,
                          dropout=dropout, encoder="transformer", encoder_options=opts))
    with torch.no_grad():
        model.encoder.model_ids.copy_(torch.tensor([0] + [i + 5 for i in range(1, VOCAB)]))
    return model.eval()


def texts():
    """Three texts of 7, 4 and 1 pieces, padded."""
    src = torch.tensor([[4, 5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 0, 0, 0], [15, 0, 0, 0, 0, 0, 0]])
    return src, torch.tensor([7, 4, 1])


def test_memory_mask_and_pooled():
    model = make_sgm()
    src, lengths = texts()
    memory, mask, pooled = model.encoder(src, lengths)
    assert memory.shape == (3, 7, 16) and mask.shape == (3, 7) and pooled.shape == (3, 16)
    assert mask.sum(1).tolist() == [7, 4, 1]
    assert torch.all(memory[~mask] == 0)
    torch.testing.assert_close(pooled[1], memory[1, :4].mean(0))


def test_a_row_does_not_depend_on_its_batch():
    model = make_sgm()
    src, lengths = texts()
    memory, _, _ = model.encoder(src, lengths)
    alone, _, _ = model.encoder(src[1:2, :4], lengths[1:2])
    torch.testing.assert_close(memory[1, :4], alone[0], atol=1e-2, rtol=0)  # frozen memory is bf16-rounded


def test_windows_read_each_window_alone_and_concatenate():
    """window 3: a 7-piece text is read as [CLS] 3 [SEP], [CLS] 3 [SEP], [CLS] 1 [SEP]."""
    model = make_sgm(window=3, frozen_memory="fp32")
    src, lengths = texts()
    memory, mask, _ = model.encoder(src, lengths)
    assert memory.shape == (3, 7, 16)
    second, _, _ = model.encoder(src[:1, 3:6], torch.tensor([3]))
    torch.testing.assert_close(memory[0, 3:6], second[0], atol=1e-5, rtol=0)
    assert torch.all(memory[~mask] == 0)


def test_window_default_leaves_room_for_cls_and_sep():
    assert make_sgm().encoder.window == 12 - 2


def test_frozen_cache_returns_the_states_computed_without_it():
    model = make_sgm()
    src, lengths = texts()
    plain, _, plain_pooled = model.encoder(src, lengths)
    model.encoder.enable_cache()
    first, _, _ = model.encoder(src, lengths)                     # fills the cache
    assert len(model.encoder.cache) == 3
    order = torch.tensor([2, 0, 1])
    again, _, pooled = model.encoder(src[order], lengths[order])  # read back, other batch order
    assert torch.equal(first, plain)
    torch.testing.assert_close(again, plain[order], atol=0, rtol=0)
    torch.testing.assert_close(pooled, plain_pooled[order])
    model.encoder.disable_cache()
    assert model.encoder.cache is None


def test_decoding_with_the_cache_gives_the_same_labels():
    model = make_sgm()
    src, lengths = texts()
    plain = beam_decode(model, src, lengths, beam_size=3, max_labels=4)
    model.encoder.enable_cache()
    beam_decode(model, src, lengths, beam_size=3, max_labels=4)
    cached = beam_decode(model, src, lengths, beam_size=3, max_labels=4)
    assert torch.equal(plain.sequences, cached.sequences)
    torch.testing.assert_close(plain.scores, cached.scores)


def test_frozen_encoder_has_no_trainable_weight_and_no_dropout():
    model = make_sgm()
    assert not any(p.requires_grad for p in model.encoder.model.parameters())
    model.train()
    assert not model.encoder.model.training                      # fixed weights: no dropout noise
    src, lengths = texts()
    a, b = model.encoder(src, lengths).memory, model.encoder(src, lengths).memory
    assert torch.equal(a, b)


def test_finetune_top_layers_only():
    model = make_sgm(mode="finetune", train_layers=1)
    trained = {n for n, p in model.encoder.model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith("encoder.layer.2.") for n in trained)
    model.train()
    assert model.encoder.model.encoder.layer[2].training and not model.encoder.model.encoder.layer[0].training
    src, lengths = texts()
    model.encoder(src, lengths).memory.sum().backward()
    assert model.encoder.model.encoder.layer[2].attention.self.query.weight.grad is not None
    assert model.encoder.model.embeddings.word_embeddings.weight.grad is None


def test_cache_is_refused_when_finetuning():
    with pytest.raises(ValueError, match="frozen"):
        make_sgm(mode="finetune").encoder.enable_cache()


def test_finetuning_gets_its_own_learning_rate_group():
    model = make_sgm(mode="finetune", lr=1e-5)
    groups = trainable_parameters(model)
    assert len(groups) == 2 and groups[1]["lr"] == 1e-5 and "lr" not in groups[0]
    encoder = {id(p) for p in model.encoder.parameters() if p.requires_grad}
    assert {id(p) for p in groups[1]["params"]} == encoder
    assert not encoder & {id(p) for p in groups[0]["params"]}
    optimizer = build_optimizer(groups, TrainerConfig(lr=2e-3))
    assert [g["lr"] for g in optimizer.param_groups] == [2e-3, 1e-5]


def test_frozen_and_rnn_models_keep_one_plain_parameter_list():
    for model in (make_sgm(), SGM(SGMConfig(vocab_size=20, num_outputs=6, embedding_dim=4, encoder_hidden=4))):
        params = trainable_parameters(model)
        assert params == [p for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("options, message", [
    ({"mode": "train"}, "mode"), ({"pooling": "max"}, "pooling"), ({"train_layers": 0}, "train_layers"),
    ({"colour": 1}, "unknown"), ({"window": 11}, "window"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        make_sgm(**options)


def test_cls_pooling_uses_the_first_windows_cls_state():
    model = make_sgm(pooling="cls")
    src, lengths = texts()
    _, _, pooled = model.encoder(src, lengths)
    assert pooled.shape == (3, 16)
    assert not torch.allclose(pooled, model.encoder(src, lengths).memory.mean(1))
