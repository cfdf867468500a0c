"""The trained model object: :class:`LabelGenerator` (raw text in, ordered labels out) and its files.

It holds the network, the tokenizer and both vocabularies; training builds one (``recipe``),
``files`` writes and reads it, ``export``/``quantize`` give other runtimes of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from seq2labels.data.dataset import EncodedDataset, SeqBatch, batch_indices, collate, encode_dataset
from seq2labels.data.labels import LabelVocab
from seq2labels.data.readers import Example
from seq2labels.data.tokenizer import RegexTokenizer
from seq2labels.data.validation import check_examples, check_texts
from seq2labels.data.vocab import Vocab
from seq2labels.decoding import decode
from seq2labels.errors import ConfigError
from seq2labels.evaluation.metrics import evaluate_label_lists
from seq2labels.models.encoders import INPUT_ENCODERS
from seq2labels.models.sgm import SGM
from seq2labels.pipeline.config import RunConfig


@dataclass
class Prediction:
    """One text's labels in generated order, each with its step probability."""

    labels: list[str]
    probabilities: list[float]
    score: float                          # log-probability of the whole sequence
    attention: np.ndarray | None = None   # (labels, tokens) decoder attention when each label was emitted
    tokens: list[str] | None = None       # the tokens the attention refers to

    def to_json(self) -> dict:
        return {"labels": self.labels, "probabilities": [round(p, 6) for p in self.probabilities],
                "score": round(self.score, 6)}


class LabelDecoding:
    """What every trained label generator offers on top of ``encode_texts``/``encode_examples``/
    ``decode_encoded``: predict, label scores and evaluation, with the per-label thresholds
    (``thresholds``, see seq2labels.pipeline.thresholds) applied after decoding when present
    and ``use_thresholds`` is on. LabelGenerator and EnsembleGenerator share it."""

    thresholds = None                     # LabelThresholds, or None
    use_thresholds = True
    data_summary: dict | None = None

    @property
    def label_counts(self) -> dict[str, int] | None:
        """Training documents per label, when the model folder recorded them (rare_macro_f1 needs them)."""
        counts = (self.data_summary or {}).get("label_counts")
        return counts if isinstance(counts, dict) else None

    def active_thresholds(self):
        return self.thresholds if self.use_thresholds else None

    def predict(self, texts: Sequence[str], *, beam_size: int | None = None, max_labels: int | None = None,
                min_labels: int | None = None, batch_size: int = 256,
                return_attention: bool = False, precision: str | None = None) -> list[Prediction]:
        texts = _check_texts(texts)
        encoded = self.encode_texts(texts)
        rows = self.decide_encoded(encoded, beam_size=beam_size, max_labels=max_labels, min_labels=min_labels,
                                   batch_size=batch_size, return_attention=return_attention, precision=precision)
        predictions = []
        for i, row in enumerate(rows):
            pred = Prediction(labels=self.label_vocab.decode(row["ids"]), probabilities=row["probs"],
                              score=row["score"])
            if return_attention:
                pred.attention = row["attention"]
                pred.tokens = self.tokenizer(texts[i], max_tokens=self.config.text.max_len) or ["<empty>"]
            predictions.append(pred)
        return predictions

    def label_scores(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(n_texts, n_labels) scores: the highest probability each label got along the greedy path."""
        rows = self.decode_encoded(self.encode_texts(texts), beam_size=1, batch_size=batch_size)
        return np.stack([row["label_scores"] for row in rows]) if rows else np.zeros((0, self.label_vocab.num_labels))

    def decide_encoded(self, encoded, *, beam_size: int | None = None, max_labels: int | None = None,
                       min_labels: int | None = None, **kwargs) -> list[dict]:
        """``decode_encoded``, then the thresholds when they are on: the rows predict and evaluate use."""
        rows = self.decode_encoded(encoded, beam_size=beam_size, max_labels=max_labels, min_labels=min_labels,
                                   **kwargs)
        thresholds = self.active_thresholds()
        if thresholds is None:
            return rows
        from seq2labels.pipeline.thresholds import threshold_rows
        dec = self.config.decode
        return threshold_rows(rows, thresholds, dec.max_labels if max_labels is None else max_labels,
                              dec.min_labels if min_labels is None else min_labels)

    def evaluate(self, examples: Sequence[Example], *, beam_size: int | None = None,
                 max_labels: int | None = None, min_labels: int | None = None,
                 batch_size: int = 256, precision: str | None = None) -> dict[str, float]:
        """All metrics on labelled examples; labels unseen in training count as misses. With the
        training label counts known, also ``rare_macro_f1`` (labels with < 50 training documents)."""
        examples = check_examples(examples)
        encoded = self.encode_examples(examples)
        gold = [_gold_in_training_order(ex.labels, self.label_vocab) for ex in examples]
        return self.evaluate_encoded(encoded, gold, beam_size=beam_size, max_labels=max_labels,
                                     min_labels=min_labels, batch_size=batch_size, precision=precision,
                                     label_counts=self.label_counts)

    def evaluate_encoded(self, encoded, gold: Sequence[Sequence[str]], *,
                         beam_size: int | None = None, max_labels: int | None = None,
                         min_labels: int | None = None, batch_size: int = 256,
                         precision: str | None = None, label_counts: dict[str, int] | None = None
                         ) -> dict[str, float]:
        rows = self.decide_encoded(encoded, beam_size=beam_size, max_labels=max_labels, min_labels=min_labels,
                                   batch_size=batch_size, precision=precision)
        predicted = [self.label_vocab.decode(row["ids"]) for row in rows]
        # Unseen gold labels get their columns here, as evaluate_label_lists would add them, but
        # without its warning: encode_dataset already warned once, naming them (the validation
        # set is scored every epoch).
        known = set(self.label_vocab.labels)
        unseen = sorted({label for labels in gold for label in labels if label not in known})
        return evaluate_label_lists(gold, predicted, [*self.label_vocab.labels, *unseen], train_counts=label_counts)


class LabelGenerator(LabelDecoding):
    """A trained SGM with everything needed to go from raw text to ordered labels."""

    def __init__(self, model: SGM, tokenizer: RegexTokenizer, vocab: Vocab, label_vocab: LabelVocab,
                 config: RunConfig):
        self.model = model
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.label_vocab = label_vocab
        self.config = config
        self.step_model = None               # what decoding runs instead of ``model`` (see with_backend)
        self.backend = "torch"
        self.quantized: str | None = None    # "int8" for a copy made by quantize()
        self.precision = config.decode.precision  # autocast while decoding (see with_precision)
        self.data_summary: dict | None = None  # training data counts and checksums, for the model card
        self.thresholds = None                 # per-label LabelThresholds (thresholds.json), or None
        self.use_thresholds = config.decode.thresholds

    @property
    def device(self) -> torch.device:
        if self.step_model is not None or self.quantized:
            return torch.device("cpu")       # ONNX Runtime sessions and int8 kernels run on the CPU
        return next(self.model.parameters()).device

    def with_backend(self, backend: str = "torch", *, onnx_dir: str | Path | None = None,
                     threads: int | None = None) -> "LabelGenerator":
        """Decode with ``"torch"`` or ``"onnxruntime"`` (the exported encoder and decoder step,
        read from ``onnx_dir`` or exported in memory); search code is the same. See seq2labels.pipeline.export."""
        from seq2labels.pipeline.export import backend_step_model
        if backend != "torch" and self.uses_inputs:
            raise ConfigError(f"the {backend} backend exports text encoders only; a {self.model.config.encoder} "
                              "model runs on the torch backend")
        self.step_model = backend_step_model(self, backend, onnx_dir=onnx_dir, threads=threads)
        self.backend = backend
        if self.step_model is not None:
            self.precision = "fp32"          # ONNX Runtime runs the exported float32 graphs
        return self

    def quantize(self, dtype: str = "int8") -> "LabelGenerator":
        """A copy with dynamically quantized LSTM/GRU/Linear layers, for CPU inference (see seq2labels.pipeline.quantize)."""
        from seq2labels.pipeline.quantize import quantize_model
        if self.step_model is not None:
            raise ConfigError(f"quantization applies to the torch backend, not {self.backend}")
        if self.quantized:
            raise ConfigError(f"the model is already {self.quantized}-quantized")
        quantized = LabelGenerator(quantize_model(self.model, dtype), self.tokenizer, self.vocab,
                                   self.label_vocab, self.config)
        quantized.quantized = dtype
        quantized.data_summary, quantized.thresholds = self.data_summary, self.thresholds
        quantized.use_thresholds = self.use_thresholds
        quantized.precision = "fp32"         # int8 kernels take float32 activations
        return quantized

    def with_precision(self, precision: str) -> "LabelGenerator":
        """Decode under ``"bf16"``/``"fp16"`` autocast, or ``"fp32"``; torch backend, float model only."""
        self.precision = self._checked_precision(precision)
        return self

    def _checked_precision(self, precision: str) -> str:
        from seq2labels.training.precision import check_precision
        check_precision(precision, self.device)
        if precision != "fp32" and (self.step_model is not None or self.quantized):
            what = f"the {self.backend} backend" if self.step_model is not None else f"an {self.quantized} model"
            raise ConfigError(f"precision {precision!r} needs the torch backend and a float model, not {what}")
        return precision

    def to(self, device: str | torch.device) -> "LabelGenerator":
        if self.quantized and torch.device(device).type != "cpu":
            raise ConfigError(f"an {self.quantized}-quantized model runs on the CPU only, not on {device}")
        self.model.to(device)
        return self

    @property
    def uses_inputs(self) -> bool:
        """Whether the model reads images / features / fused inputs (examples), not only texts."""
        return self.model.config.encoder in INPUT_ENCODERS

    def encode_examples(self, examples: Sequence[Example], name: str = "examples"):
        """Examples as the model's encoder reads them (token ids, or Inputs for image / fused models)."""
        if self.uses_inputs:
            from seq2labels.pipeline.multimodal import encode_inputs
            return encode_inputs(examples, self.model, self.tokenizer, self.vocab, self.label_vocab, self.config, name)
        return encode_dataset(examples, self.tokenizer, self.vocab, self.label_vocab, self.config.text.max_len)

    def encode_texts(self, texts: Sequence[str]) -> EncodedDataset:
        examples = [Example(text=t, labels=()) for t in _check_texts(texts)]
        return self.encode_examples(examples, "texts")

    def predict_examples(self, examples: Sequence[Example], *, beam_size: int | None = None,
                         max_labels: int | None = None, min_labels: int | None = None, batch_size: int = 256,
                         return_attention: bool = False, precision: str | None = None) -> list[Prediction]:
        """Labels of examples that may carry an image and features besides text (labels ignored).
        With ``return_attention`` each prediction's ``tokens`` name the memory positions: image
        cells ``cell r,c``, feature slots ``slot k``, then the text's tokens."""
        examples = [ex if isinstance(ex, Example) else Example(text=ex, labels=()) for ex in _check_list(examples)]
        encoded = self.encode_examples(examples)
        rows = self.decide_encoded(encoded, beam_size=beam_size, max_labels=max_labels, min_labels=min_labels,
                                   batch_size=batch_size, return_attention=return_attention, precision=precision)
        predictions = []
        for ex, row in zip(examples, rows):
            pred = Prediction(labels=self.label_vocab.decode(row["ids"]), probabilities=row["probs"],
                              score=row["score"])
            if return_attention:
                pred.attention = row["attention"]
                pred.tokens = self.position_names(ex)[:row["attention"].shape[1]]
            predictions.append(pred)
        return predictions

    def position_names(self, example: Example) -> list[str]:
        """What each memory position of ``example`` is (the columns of its attention)."""
        if not self.uses_inputs:
            return self.tokenizer(example.text, max_tokens=self.config.text.max_len) or ["<empty>"]
        names: list[str] = []
        encoder = self.model.encoder
        grid = getattr(encoder, "grid", None)
        for modality, _, count in encoder.layout():
            if modality == "image":
                names += [f"cell {r},{c}" for r in range(grid[0]) for c in range(grid[1])]
            else:
                names += [f"slot {k}" for k in range(count)]
        reads_text = "text" in self.model.config.encoder_options.get("modalities", ())
        if reads_text and example.text:
            names += self.tokenizer(example.text, max_tokens=self.config.text.max_len)
        return names or ["<empty>"]

    def predict(self, texts: Sequence[str], **kwargs) -> list[Prediction]:
        """Labels of texts (see LabelDecoding.predict); a model over images / features / fused inputs
        reads each text as an example's text."""
        if self.uses_inputs:
            return self.predict_examples([Example(text=t, labels=()) for t in _check_texts(texts)], **kwargs)
        return super().predict(texts, **kwargs)

    def label_scores(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(n_texts, n_labels) scores: the highest probability each label got along the greedy path.
        ``texts`` may also be Examples (with images / features, for such a model)."""
        items = list(texts) if not isinstance(texts, (str, bytes)) else texts
        examples = isinstance(items, list) and items and all(isinstance(t, Example) for t in items)
        encoded = self.encode_examples(items) if examples else self.encode_texts(texts)
        rows = self.decode_encoded(encoded, beam_size=1, batch_size=batch_size)
        return np.stack([row["label_scores"] for row in rows]) if rows else np.zeros((0, self.label_vocab.num_labels))

    @torch.inference_mode()
    def decode_encoded(self, encoded: EncodedDataset, *, beam_size: int | None = None,
                       max_labels: int | None = None, min_labels: int | None = None, batch_size: int = 256,
                       return_attention: bool = False, precision: str | None = None) -> list[dict]:
        """Decode a whole encoded data set in length-sorted batches; rows come back in input order.

        ``precision`` (default: ``self.precision``) autocasts encoding and decoding to bf16/fp16."""
        from seq2labels.training.allocator import keep_freed_memory
        from seq2labels.training.precision import autocast

        keep_freed_memory()
        beam_size, max_labels, min_labels = resolve_decoding(self.config.decode, beam_size, max_labels, min_labels)
        precision = self._checked_precision(self.precision if precision is None else precision)
        was_training = self.model.training
        self.model.eval()
        rows: list[dict | None] = [None] * len(encoded)
        lengths = [len(t) for t in encoded.token_ids]
        try:
            for idx in batch_indices(lengths, batch_size, shuffle=False, bucket=True):
                batch = collate(encoded, idx).to(self.device)
                step_model = self.model if self.step_model is None else self.step_model
                with autocast(self.device, precision):
                    out = decode(step_model, batch.src, batch.src_lengths, beam_size=beam_size,
                                 max_labels=max_labels, min_labels=min_labels, return_attention=return_attention)
                for r, row in enumerate(_split_rows(out, batch, return_attention)):
                    rows[int(batch.index[r])] = row
        finally:
            self.model.train(was_training)
        return rows  # type: ignore[return-value]

    def save(self, path: str | Path, metrics: dict | None = None) -> Path:
        from seq2labels.pipeline.files import save_model
        if self.quantized:
            raise ConfigError(f"an {self.quantized}-quantized model cannot be saved; save the float model "
                              "and quantize it after loading")
        return save_model(self, path, metrics=metrics)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "LabelGenerator":
        """Load a model folder; reads only its JSON and safetensors files."""
        from seq2labels.pipeline.files import read_model_parts
        parts = read_model_parts(path, device=device)
        generator = cls(parts["model"], parts["tokenizer"], parts["vocab"], parts["label_vocab"], parts["config"])
        generator.data_summary = parts["data_summary"]  # so saving it again keeps the model card's data section
        generator.thresholds = parts.get("thresholds")
        return generator



def resolve_decoding(dec, beam_size: int | None, max_labels: int | None,
                     min_labels: int | None) -> tuple[int, int, int]:
    """The decoding settings a call uses: its own where given, else the model's ``decode`` config; checked."""
    beam_size = dec.beam_size if beam_size is None else beam_size
    max_labels = dec.max_labels if max_labels is None else max_labels
    min_labels = dec.min_labels if min_labels is None else min_labels
    if beam_size < 1 or max_labels < 1 or not 0 <= min_labels <= max_labels:
        raise ConfigError(f"decoding needs beam_size >= 1, max_labels >= 1 and 0 <= min_labels <= max_labels; "
                          f"got beam_size={beam_size}, max_labels={max_labels}, min_labels={min_labels}")
    return beam_size, max_labels, min_labels

def _gold_in_training_order(labels: Sequence[str], label_vocab: LabelVocab) -> list[str]:
    """Gold labels ordered as the model was taught (known ones first, unseen ones after)."""
    known = label_vocab.decode(label_vocab.encode_targets(labels))
    seen = set(known)
    return known + [lab for lab in labels if lab not in seen]


def _split_rows(out, batch: SeqBatch, with_attention: bool) -> list[dict]:
    """Turn one batched DecodeOutput into per-example Python rows (ids, probs, score, ...)."""
    lengths = out.lengths.tolist()
    seqs = out.sequences.cpu()
    probs = out.step_probs.float().cpu()
    scores = out.scores.float().cpu().tolist()
    label_scores = out.label_scores.float().cpu().numpy()[:, 3:] if out.label_scores is not None else None
    src_lengths = batch.src_lengths.tolist()
    rows = []
    for r, n in enumerate(lengths):
        row = {"ids": seqs[r, :n].tolist(), "probs": probs[r, :n].tolist(), "score": scores[r]}
        if label_scores is not None:
            row["label_scores"] = label_scores[r]
        if with_attention and out.attention is not None:
            row["attention"] = out.attention[r, :n, : src_lengths[r]].float().cpu().numpy()
        rows.append(_first_occurrences(row))
    return rows


def _first_occurrences(row: dict) -> dict:
    """Keep each label's first emission. Only a model trained without the repeat mask (the
    ablation) can emit a label twice; the others pass through unchanged."""
    ids = row["ids"]
    if len(set(ids)) == len(ids):
        return row
    keep = [i for i, label in enumerate(ids) if label not in ids[:i]]
    row = {**row, "ids": [ids[i] for i in keep], "probs": [row["probs"][i] for i in keep]}
    if "attention" in row:
        row["attention"] = row["attention"][keep]
    return row


def _check_list(items) -> list:
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise TypeError(f"expected a list of examples, got {type(items).__name__}")
    return list(items)


def _check_texts(texts: Sequence[str]) -> list[str]:
    return check_texts(texts)


def load_model(path: str | Path, device: str = "cpu") -> LabelGenerator:
    """Load a model folder written by :func:`seq2labels.pipeline.files.save_model`. Runs no code from the folder."""
    return LabelGenerator.load(path, device=device)
