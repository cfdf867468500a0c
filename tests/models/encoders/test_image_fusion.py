"""The CNN, features and fusion encoders: memory shapes, masks of missing modalities, and SGM on top."""

from __future__ import annotations

import pytest
import torch

from seq2labels.data.multimodal import Inputs
from seq2labels.decoding import decode
from seq2labels.models.config import SGMConfig
from seq2labels.models.sgm import SGM


def config(encoder: str, **options) -> SGMConfig:
    return SGMConfig(vocab_size=20, num_outputs=8, embedding_dim=8, encoder_hidden=8, label_embedding_dim=8,
                     decoder_hidden=16, dropout=0.0, encoder=encoder, encoder_options=options)


def inputs(batch: int = 3, present=None) -> Inputs:
    present = present or {}
    return Inputs(image=torch.randint(0, 256, (batch, 1, 16, 16), dtype=torch.uint8),
                  image_present=present.get("image", torch.ones(batch, dtype=torch.bool)),
                  features=torch.randn(batch, 5), features_present=present.get("features", torch.ones(batch, dtype=torch.bool)),
                  text=torch.randint(1, 20, (batch, 6)), text_lengths=torch.tensor([6, 3, 1][:batch]),
                  text_present=present.get("text", torch.ones(batch, dtype=torch.bool)))


def test_cnn_memory_is_the_last_feature_map():
    model = SGM(config("cnn", in_channels=1, size=16, channels=[4, 8]))
    out = model.encoder(inputs(), torch.ones(3, dtype=torch.long))
    assert out.memory.shape == (3, 16, 16) and out.mask.all() and out.pooled.shape == (3, 16)
    assert model.encoder.grid == (4, 4)


def test_features_encoder_slots_and_statistics():
    model = SGM(config("features", features_dim=5, slots=3))
    model.encoder.set_statistics(torch.randn(50, 5) * 10 + 3)
    out = model.encoder(inputs(), torch.ones(3, dtype=torch.long))
    assert out.memory.shape == (3, 3, 16) and out.mask.all()
    assert model.encoder.mean.abs().sum() > 0           # a buffer: saved with the weights


@pytest.mark.parametrize("mode", ["embedding", "gate"])
def test_fusion_concatenates_and_masks_missing_modalities(mode):
    model = SGM(config("fusion", modalities=["text", "image", "features"], mode=mode, in_channels=1, size=16,
                       channels=[4, 8], features_dim=5, slots=2)).eval()
    no_image = torch.tensor([True, False, True])
    batch = inputs(present={"image": no_image, "text": torch.tensor([True, True, False])})
    out = model.encoder(batch, torch.ones(3, dtype=torch.long))
    assert out.memory.shape == (3, 16 + 2 + 6, 16)                # image cells, feature slots, text tokens
    assert out.mask[1, :16].sum() == 0 and out.mask[0, :16].all()  # row 1 has no image
    assert out.mask[2, 18:].sum() == 0                              # row 2 has no text
    assert out.mask[1, 18:].tolist() == [True, True, True, False, False, False]
    assert model.encoder.layout() == [("image", 0, 16), ("features", 16, 2)]
    # what a missing image holds does not matter
    other = Inputs(batch)
    other["image"] = batch["image"].clone()
    other["image"][1] = 255 - other["image"][1]
    with torch.no_grad():
        a = decode(model, batch, torch.tensor([24, 21, 18]), beam_size=2, max_labels=3, return_attention=True)
        b = decode(model, other, torch.tensor([24, 21, 18]), beam_size=2, max_labels=3, return_attention=True)
    assert torch.equal(a.scores[1], b.scores[1])
    assert float(a.attention[1, :, :16].abs().sum()) == 0.0       # no attention on the missing image


def test_training_step_reaches_every_part():
    model = SGM(config("fusion", modalities=["text", "image", "features"], mode="gate", in_channels=1, size=16,
                       channels=[4], features_dim=5, slots=2))
    targets = torch.tensor([[3, 4, 2], [5, 2, 0], [6, 2, 0]])
    log_probs = model(inputs(), torch.ones(3, dtype=torch.long), targets)
    log_probs.gather(2, targets.unsqueeze(-1)).clamp(min=-1e4).sum().neg().backward()
    for name in ("parts.image.blocks.0.weight", "parts.features.slot_out.weight", "parts.text.embedding.weight",
                 "modality_embedding.weight", "gate.0.weight"):
        grad = dict(model.encoder.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("options, message", [
    ({"modalities": []}, "fusion needs"),
    ({"modalities": ["audio"]}, "fusion needs"),
    ({"modalities": ["text"], "mode": "sum"}, "fusion mode"),
])
def test_bad_fusion_options(options, message):
    with pytest.raises(ValueError, match=message):
        SGM(config("fusion", **options))


def test_bad_cnn_options():
    with pytest.raises(ValueError, match="pooled"):
        SGM(config("cnn", size=8, channels=[4, 4, 4, 4]))
    with pytest.raises(ValueError, match="features_dim"):
        SGM(config("features"))
