"""Examples with text, an image and/or a features vector, encoded and batched for image and fused encoders.

A batch's ``src`` is an :class:`Inputs` (a dict of tensors that moves to a device as one), so the
decoder, beam search and trainer take it where they take a token tensor. Every modality the model
reads is in every batch; a modality an example lacks is zeros with its ``<name>_present`` flag False,
and the encoder masks it out. ``src_lengths`` is each row's count of real memory positions
(the encoder's fixed ones: image cells, feature slots; then its real text tokens), which is
where decoding cuts each row's attention.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seq2labels.data.dataset import SeqBatch, _pad, _warn_unseen_labels
from seq2labels.data.images import ImageSpec, load_image
from seq2labels.data.labels import EOS_ID, PAD_ID, LabelVocab
from seq2labels.data.readers import Example
from seq2labels.data.tokenizer import tokenize
from seq2labels.data.vocab import Vocab
from seq2labels.errors import DataFormatError

MODALITIES = ("text", "image", "features")


class Inputs(dict):
    """A batch's inputs by name (``text``, ``text_lengths``, ``image``, ``features`` and their
    ``*_present`` flags); ``.to(device)`` moves every tensor."""

    def to(self, device: torch.device | str) -> "Inputs":
        return Inputs({k: v.to(device) for k, v in self.items()})


def modalities_of(examples: Sequence[Example]) -> tuple[str, ...]:
    """The modalities at least one example carries, in :data:`MODALITIES` order."""
    found = set()
    for ex in examples:
        if ex.text:
            found.add("text")
        if ex.image is not None:
            found.add("image")
        if ex.features is not None:
            found.add("features")
    return tuple(m for m in MODALITIES if m in found)


@dataclass
class MultiModalDataset:
    """Encoded examples: token ids, uint8 images (n, C, H, W), features (n, F), presence flags, targets."""

    token_ids: list[list[int]]
    target_ids: list[list[int]]
    modalities: tuple[str, ...]
    fixed_positions: int                    # memory positions every row has (image cells + feature slots)
    images: torch.Tensor | None = None      # (n, C, H, W) uint8
    features: torch.Tensor | None = None    # (n, F) float32
    present: dict[str, torch.Tensor] | None = None  # modality -> (n,) bool

    def __len__(self) -> int:
        return len(self.target_ids)

    def lengths(self) -> list[int]:
        """Token count of each example (bucketing: similar text lengths share a batch)."""
        return [len(ids) for ids in self.token_ids]

    def collate(self, indices: Sequence[int]) -> SeqBatch:
        """The rows ``indices`` as one batch whose ``src`` is an :class:`Inputs`."""
        if len(indices) == 0:
            raise ValueError("cannot collate an empty batch")
        index = torch.tensor(list(indices), dtype=torch.long)                      # (batch,)
        src = Inputs()
        text_real = torch.zeros(len(indices), dtype=torch.long)                    # (batch,)
        if "text" in self.modalities:
            rows = [self.token_ids[i] or [PAD_ID] for i in indices]
            src["text"] = _pad(rows)                                               # (batch, time)
            src["text_lengths"] = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (batch,)
            src["text_present"] = self.present["text"][index]                      # (batch,)
            text_real = src["text_lengths"] * src["text_present"]                  # (batch,)
        if "image" in self.modalities:
            src["image"] = self.images[index]                                      # (batch, C, H, W) uint8
            src["image_present"] = self.present["image"][index]                    # (batch,)
        if "features" in self.modalities:
            src["features"] = self.features[index]                                 # (batch, F)
            src["features_present"] = self.present["features"][index]              # (batch,)
        goals = [[*self.target_ids[i], EOS_ID] for i in indices]
        src_lengths = (text_real + self.fixed_positions).clamp(min=1)              # (batch,)
        return SeqBatch(src=src, src_lengths=src_lengths, targets=_pad(goals), index=index)


def encode_multimodal(examples: Sequence[Example], tokenizer: Callable[[str], list[str]], vocab: Vocab,
                      label_vocab: LabelVocab, max_len: int | None, *, modalities: tuple[str, ...],
                      spec: ImageSpec | None, features_dim: int | None, fixed_positions: int,
                      name: str = "examples") -> MultiModalDataset:
    """Decode, tokenize and encode ``examples`` for a model reading ``modalities``.

    An example needs at least one modality the model reads; the ones it does not read are left
    out (a cnn model reads only the image of an example that also has text)."""
    n = len(examples)
    present = {m: torch.zeros(n, dtype=torch.bool) for m in modalities}
    images = torch.zeros((n, spec.channels, spec.size, spec.size), dtype=torch.uint8) if "image" in modalities else None
    features = torch.zeros((n, features_dim), dtype=torch.float32) if "features" in modalities else None
    token_ids, target_ids, unseen = [], [], set()
    for i, ex in enumerate(examples):
        where = f"{name}[{i}]"
        _check_modalities(ex, where)
        ids = vocab.encode(tokenize(tokenizer, ex.text, max_len), max_len=max_len) if "text" in modalities else []
        token_ids.append(ids)
        if "text" in modalities and ex.text:
            present["text"][i] = True
        if images is not None and ex.image is not None:
            images[i] = torch.from_numpy(load_image(ex.image, spec, where=f"{where}: field 'image'"))
            present["image"][i] = True
        if features is not None and ex.features is not None:
            features[i] = torch.from_numpy(_features_row(ex.features, features_dim, where))
            present["features"][i] = True
        if not any(bool(p[i]) for p in present.values()):
            raise DataFormatError(f"{where}: no input the model reads (it reads {', '.join(modalities)})")
        target_ids.append(label_vocab.encode_targets(ex.labels))
        unseen.update(label_vocab.unknown(ex.labels))
    if unseen:
        _warn_unseen_labels(unseen)
    return MultiModalDataset(token_ids, target_ids, modalities, fixed_positions, images, features, present)


def _check_modalities(ex: Example, where: str) -> None:
    if not isinstance(ex, Example):
        raise TypeError(f"{where} is {type(ex).__name__}, expected seq2labels Example")


def _features_row(values, dim: int, where: str) -> np.ndarray:
    row = np.asarray(values, dtype=np.float32).reshape(-1)               # (F,)
    if row.size != dim:
        raise DataFormatError(f"{where}: field 'features' has {row.size} numbers, the model reads {dim}")
    if not np.isfinite(row).all():
        raise DataFormatError(f"{where}: field 'features' holds NaN or inf")
    return row
