"""scikit-learn facing estimators.

``SGMClassifier`` follows scikit-learn's conventions: hyper-parameters are plain
``__init__`` arguments (so ``clone``, ``get_params`` and grid search work), learned
state ends in ``_``, ``fit`` returns ``self``, and ``predict`` returns an
(n_samples, n_classes) indicator matrix in ``classes_`` order, so every
``sklearn.metrics`` function applies directly. ``predict_labels`` keeps what
scikit-learn cannot express: each text's labels in generated order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from seq2labels.pipeline.config import (DataConfig, DecodeConfig, ImageConfig, LabelConfig, ModelConfig, RunConfig,
                                        TextConfig, TrainConfig)
from seq2labels.data.readers import Example
from seq2labels.errors import ConfigError, DataFormatError


# SGMClassifier parameters that are model.* keys of the same name (the encoder choice)
ENCODER_PARAMS = ("encoder", "pretrained", "encoder_mode", "finetune_layers", "encoder_lr", "long_text",
                  "head_tokens", "pooling", "encoder_precision", "label_init", "label_descriptions", "fusion",
                  "feature_slots")
# SGMClassifier parameters that are image.* keys (image_size -> image.size ...)
IMAGE_PARAMS = ("image_size", "image_color", "image_channels")
INPUT_ENCODERS = ("cnn", "features", "fusion")


class SGMClassifier(ClassifierMixin, BaseEstimator):
    """Sequence generation model (SGM) with a scikit-learn API.

    ``fit(X, y)``: X is a list of texts; y is either a list of label lists (each in
    any order) or a 0/1 indicator matrix (then ``classes_`` are its column indices
    unless ``classes`` is given). With ``encoder`` cnn / features / fusion an item of X may be an
    image (a numpy array, encoded bytes, a PIL image or a file path), a dict with ``text``,
    ``image`` and/or ``features`` keys, or a seq2labels Example.
    """

    def __init__(self, *, embedding_dim: int = 128, encoder_hidden: int = 256, encoder_layers: int = 1,
                 rnn_type: str = "lstm", self_attention: bool = False, attention: bool = True,
                 decoder_hidden: int = 256, label_embedding_dim: int = 128, global_embedding: bool = False,
                 bag_of_words: bool = False,
                 dropout: float = 0.3, max_len: int = 300, min_count: int = 2, max_vocab: int | None = 50000,
                 lowercase: bool = True, label_order: str = "frequency", max_labels_per_text: int = 100,
                 epochs: int = 20, batch_size: int = 32,
                 lr: float = 1e-3, patience: int = 4, loss: str = "ce", valid_fraction: float = 0.1,
                 beam_size: int = 5, max_labels: int = 10, min_labels: int = 0, seed: int = 0,
                 device: str = "cpu", precision: str = "fp32", verbose: bool = False,
                 classes: Sequence | None = None, lr_schedule: str = "plateau", warmup_steps: int = 0,
                 encoder: str = "rnn", pretrained: str | None = None, encoder_mode: str = "frozen",
                 finetune_layers: int | None = None, encoder_lr: float = 5e-5, long_text: str = "head",
                 head_tokens: int = 128, pooling: str = "mean", encoder_precision: str = "fp32",
                 label_init: str = "random", label_descriptions: str | None = None, fusion: str = "embedding",
                 feature_slots: int = 8, image_size: int = 32, image_color: str = "rgb",
                 image_channels: str = "32,64,128", n_models: int = 1):
        self.embedding_dim = embedding_dim
        self.encoder_hidden = encoder_hidden
        self.encoder_layers = encoder_layers
        self.rnn_type = rnn_type
        self.self_attention = self_attention
        self.attention = attention
        self.decoder_hidden = decoder_hidden
        self.label_embedding_dim = label_embedding_dim
        self.global_embedding = global_embedding
        self.bag_of_words = bag_of_words
        self.dropout = dropout
        self.max_len = max_len
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.lowercase = lowercase
        self.label_order = label_order
        self.max_labels_per_text = max_labels_per_text
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.loss = loss
        self.valid_fraction = valid_fraction
        self.beam_size = beam_size
        self.max_labels = max_labels
        self.min_labels = min_labels
        self.seed = seed
        self.device = device
        self.precision = precision
        self.verbose = verbose
        self.classes = classes
        self.lr_schedule = lr_schedule
        self.warmup_steps = warmup_steps
        self.encoder = encoder                   # "transformer": a pretrained model (model.encoder)
        self.pretrained = pretrained
        self.encoder_mode = encoder_mode
        self.finetune_layers = finetune_layers
        self.encoder_lr = encoder_lr
        self.long_text = long_text
        self.head_tokens = head_tokens
        self.pooling = pooling
        self.encoder_precision = encoder_precision
        self.label_init = label_init
        self.label_descriptions = label_descriptions
        self.fusion = fusion                     # image / features / fusion inputs (encoder cnn | features | fusion)
        self.feature_slots = feature_slots
        self.image_size = image_size
        self.image_color = image_color
        self.image_channels = image_channels
        self.n_models = n_models                 # > 1: train seeds seed, seed+1, ... and decode them as one ensemble

    # ---- configuration -----------------------------------------------------------------
    def _run_config(self) -> RunConfig:
        return RunConfig(
            data=DataConfig(valid_fraction=self.valid_fraction),
            text=TextConfig(lowercase=self.lowercase, min_count=self.min_count, max_vocab=self.max_vocab,
                            max_len=self.max_len),
            labels=LabelConfig(order=self.label_order, max_per_text=self.max_labels_per_text),
            model=ModelConfig(embedding_dim=self.embedding_dim, encoder_hidden=self.encoder_hidden,
                              encoder_layers=self.encoder_layers, rnn_type=self.rnn_type,
                              self_attention=self.self_attention, attention=self.attention,
                              label_embedding_dim=self.label_embedding_dim, decoder_hidden=self.decoder_hidden,
                              global_embedding=self.global_embedding, bag_of_words=self.bag_of_words,
                              dropout=self.dropout, **self._encoder_params()),
            train=TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, patience=self.patience,
                              loss=self.loss, seed=self.seed, device=self.device, precision=self.precision,
                              progress=self.verbose, lr_schedule=self.lr_schedule, warmup_steps=self.warmup_steps),
            decode=DecodeConfig(beam_size=self.beam_size, max_labels=self.max_labels, min_labels=self.min_labels,
                                precision=self.precision),
            image=ImageConfig(size=self.image_size, color=self.image_color, channels=self.image_channels),
        )

    def _encoder_params(self) -> dict:
        """The model.* keys of the encoder choice (named as in the YAML config)."""
        return {name: getattr(self, name) for name in ENCODER_PARAMS}

    def _checked_config(self) -> RunConfig:
        """The run config after the checks a YAML config gets, so a bad parameter (batch_size=0,
        min_labels > max_labels) fails at the start of fit, not mid-training or at predict time."""
        from seq2labels.pipeline.config import config_from_dict

        try:
            sections = self._run_config().to_dict()
            plain = {name: {k: v.item() if isinstance(v, np.generic) else v for k, v in section.items()}
                     for name, section in sections.items()}  # numpy scalars from a grid are fine
            return config_from_dict(plain)
        except ConfigError as exc:
            raise ConfigError(f"{type(self).__name__}: invalid parameter: {exc}") from None

    # ---- fitting -----------------------------------------------------------------------
    def fit(self, X: Sequence[str], y) -> "SGMClassifier":
        cfg = self._checked_config()
        texts = self._inputs(X)
        if not texts:
            raise DataFormatError("X is empty: fit needs at least 2 texts (one for the validation split)")
        label_lists, classes, indicator = _normalise_targets(y, len(texts), self.classes)
        examples = [_with_labels(t, labels) for t, labels in zip(texts, label_lists)]
        generator, result, members = self._train_members(cfg, examples)
        if classes is None:
            # labels that fell into the validation split only are still classes of y (never predicted)
            known = generator.label_vocab.labels
            seen = set(known)
            classes = [*known, *(lab for lab in dict.fromkeys(x for row in label_lists for x in row) if lab not in seen)]
        self.generator_ = generator
        self.members_ = members
        self.classes_ = np.asarray(classes, dtype=object)
        self._fit_with_indicator = indicator
        self.n_features_in_ = 1
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        return self

    def _train_members(self, cfg: RunConfig, examples: list[Example]):
        """One model, or ``n_models`` (seeds ``seed``, ``seed + 1``, ...: each its own validation split
        and initial weights) decoded together as an EnsembleGenerator. Returns (generator, first
        member's TrainResult, members)."""
        import dataclasses

        from seq2labels.pipeline.recipe import train

        if isinstance(self.n_models, bool) or not isinstance(self.n_models, (int, np.integer)) or self.n_models < 1:
            raise ConfigError(f"{type(self).__name__}: invalid parameter: n_models must be an integer >= 1, "
                              f"got {self.n_models!r}")
        members, results = [], []
        for k in range(int(self.n_models)):
            member_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=cfg.train.seed + k))
            generator, result = train(member_cfg, None, train_examples=examples)
            members.append(generator)
            results.append(result)
        if len(members) == 1:
            return members[0], results[0], members
        from seq2labels.pipeline.ensemble import EnsembleGenerator
        return EnsembleGenerator(members), results[0], members

    def _inputs(self, X) -> list:
        """X as texts, or as Examples for an image / features / fused encoder."""
        if self.encoder not in INPUT_ENCODERS:
            return _check_texts(X)
        if isinstance(X, (str, bytes)):
            raise TypeError("X must be a list of inputs, got a single string or bytes; wrap it in a list")
        return [_as_example(x, i) for i, x in enumerate(X)]

    def _predict_items(self, X, beam_size: int | None):
        items = self._inputs(X)
        if self.encoder in INPUT_ENCODERS:
            return self.generator_.predict_examples(items, beam_size=beam_size or self.beam_size)
        return self.generator_.predict(items, beam_size=beam_size or self.beam_size)

    def _check_fitted(self) -> None:
        if not hasattr(self, "generator_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. "
                                 "Call 'fit' with appropriate arguments before using this estimator.")

    # ---- prediction --------------------------------------------------------------------
    def predict_labels(self, X: Sequence[str], beam_size: int | None = None) -> list[list[str]]:
        """Each text's labels in generated order."""
        self._check_fitted()
        return [p.labels for p in self._predict_items(X, beam_size)]

    def predict_sequences(self, X: Sequence[str], beam_size: int | None = None):
        """Full predictions: ordered labels, step probabilities, sequence score."""
        self._check_fitted()
        return self._predict_items(X, beam_size)

    def predict(self, X: Sequence[str]) -> np.ndarray:
        """(n_samples, n_classes) 0/1 matrix in ``classes_`` order."""
        return self._binarize(self.predict_labels(X))

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """(n_samples, n_classes) per-label scores: the highest probability each label got along the
        greedy decoding path. A ranking score, not a calibrated probability."""
        self._check_fitted()
        scores = self.generator_.label_scores(self._inputs(X))           # (n, labels) in label-vocab order
        out = np.zeros((scores.shape[0], len(self.classes_)), dtype=np.float64)
        column = self._column_of_class()
        for j, label in enumerate(self.generator_.label_vocab.labels):
            if label in column:
                out[:, column[label]] = scores[:, j]
        return out

    def decision_function(self, X: Sequence[str]) -> np.ndarray:
        return self.predict_proba(X)

    def score(self, X: Sequence[str], y, sample_weight=None) -> float:
        """Micro-F1 (the SGM papers' headline metric), not subset accuracy.

        Gold labels outside ``classes_`` get columns of their own, so they count as misses.
        """
        from sklearn.metrics import f1_score

        from seq2labels.evaluation.metrics import binarize
        self._check_fitted()
        X = self._inputs(X)
        if not X:
            raise DataFormatError("X is empty: score needs at least one text")
        gold, _, _ = _normalise_targets(y, len(X), list(self.classes_))
        known = [str(c) for c in self.classes_]
        columns = known + sorted({lab for labels in gold for lab in labels} - set(known))
        predicted = self.predict(X)
        predicted = np.hstack([predicted, np.zeros((predicted.shape[0], len(columns) - len(known)), dtype=int)])
        return float(f1_score(binarize(gold, columns), predicted, average="micro",
                              zero_division=0, sample_weight=sample_weight))

    def _column_of_class(self) -> dict:
        return {str(c): i for i, c in enumerate(self.classes_)}

    def _binarize(self, label_lists: Sequence[Sequence[str]]) -> np.ndarray:
        column = self._column_of_class()
        out = np.zeros((len(label_lists), len(self.classes_)), dtype=np.int64)
        for i, labels in enumerate(label_lists):
            for label in labels:
                j = column.get(str(label))
                if j is not None:
                    out[i, j] = 1
        return out

    # ---- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """A model folder (see :mod:`seq2labels.pipeline.files`); ``classes_`` are kept in its config.json."""
        from seq2labels.pipeline.files import save_model

        self._check_fitted()
        if len(getattr(self, "members_", ())) > 1:
            raise ConfigError(f"an ensemble of {len(self.members_)} models has no single model folder; save its "
                              "members (members_[i].save(folder)) and decode them with "
                              "`seq2labels predict FOLDER1 FOLDER2 ... INPUT`")
        return save_model(self.generator_, path, estimator={
            "classes": [str(c) for c in self.classes_], "fit_with_indicator": bool(self._fit_with_indicator)})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "SGMClassifier":
        from seq2labels.pipeline.generator import load_model
        from seq2labels.pipeline.files import read_model_config

        generator = load_model(path, device=device)
        saved = read_model_config(path).get("estimator") or {}
        cfg = generator.config
        est = cls(embedding_dim=cfg.model.embedding_dim, encoder_hidden=cfg.model.encoder_hidden,
                  encoder_layers=cfg.model.encoder_layers, rnn_type=cfg.model.rnn_type,
                  self_attention=cfg.model.self_attention, attention=cfg.model.attention,
                  decoder_hidden=cfg.model.decoder_hidden, label_embedding_dim=cfg.model.label_embedding_dim,
                  global_embedding=cfg.model.global_embedding, bag_of_words=cfg.model.bag_of_words,
                  dropout=cfg.model.dropout, max_len=cfg.text.max_len,
                  min_count=cfg.text.min_count, max_vocab=cfg.text.max_vocab, lowercase=cfg.text.lowercase,
                  label_order=cfg.labels.order, epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
                  lr=cfg.train.lr, patience=cfg.train.patience, loss=cfg.train.loss,
                  valid_fraction=cfg.data.valid_fraction, beam_size=cfg.decode.beam_size,
                  max_labels=cfg.decode.max_labels, min_labels=cfg.decode.min_labels, seed=cfg.train.seed,
                  device=device, lr_schedule=cfg.train.lr_schedule, warmup_steps=cfg.train.warmup_steps,
                  image_size=cfg.image.size, image_color=cfg.image.color, image_channels=cfg.image.channels,
                  **{name: getattr(cfg.model, name) for name in ENCODER_PARAMS})
        est.generator_ = generator
        est.classes_ = np.asarray(saved.get("classes", generator.label_vocab.labels), dtype=object)
        est._fit_with_indicator = bool(saved.get("fit_with_indicator", False))
        est.n_features_in_ = 1
        return est

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags


def _as_example(x, i: int) -> Example:
    """One input of an image / features / fused model as an Example (labels filled in by fit)."""
    if isinstance(x, Example):
        return x
    if isinstance(x, str):
        return Example(text=x, labels=())
    if isinstance(x, dict):
        unknown = sorted(set(x) - {"text", "image", "features"})
        if unknown:
            raise DataFormatError(f"X[{i}]: unknown key {unknown[0]!r}; use text, image, features")
        features = x.get("features")
        text = x.get("text") or ""
        if not isinstance(text, str):
            raise DataFormatError(f"X[{i}]: field 'text' must be a string, got {type(text).__name__}")
        return Example(text=text, labels=(), image=x.get("image"),
                       features=None if features is None else tuple(float(v) for v in np.asarray(features).ravel()))
    return Example(text="", labels=(), image=x)          # an image: array, bytes, PIL image or path


def _with_labels(item, labels) -> Example:
    if isinstance(item, Example):
        from dataclasses import replace
        return replace(item, labels=tuple(labels))
    return Example(text=item, labels=tuple(labels))


def _check_texts(X) -> list[str]:
    if isinstance(X, str):
        raise TypeError("X must be a list of texts, got a single string; wrap it in a list")
    texts = list(X)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"X[{i}] is {type(t).__name__}, expected a text (str)")
    return texts


def _normalise_targets(y, n_samples: int, classes: Sequence | None):
    """Label lists or an indicator matrix -> (label lists of str, classes or None, was_indicator)."""
    if y is None or isinstance(y, (str, bytes)) or not hasattr(y, "__iter__"):
        raise DataFormatError(f"y must be label lists or a 0/1 indicator matrix, got {type(y).__name__}")
    if classes is not None:
        _check_classes(classes)
    if hasattr(y, "toarray"):
        y = y.toarray()
    if isinstance(y, np.ndarray) and y.ndim == 2:
        if y.shape[0] != n_samples:
            raise DataFormatError(f"X has {n_samples} texts but y has {y.shape[0]} rows")
        if not np.isin(y, (0, 1)).all():
            raise DataFormatError("an indicator matrix y must hold only 0 and 1")
        names = [str(c) for c in (classes if classes is not None else range(y.shape[1]))]
        if len(names) != y.shape[1]:
            raise DataFormatError(f"classes has {len(names)} names but y has {y.shape[1]} columns")
        return [[names[j] for j in np.flatnonzero(row)] for row in y], names, True
    label_lists = list(y)
    if len(label_lists) != n_samples:
        raise DataFormatError(f"X has {n_samples} texts but y has {len(label_lists)} label lists")
    out = []
    for i, labels in enumerate(label_lists):
        if isinstance(labels, str) or not hasattr(labels, "__iter__"):
            raise DataFormatError(f"y[{i}] must be a list of labels, got {type(labels).__name__}")
        row = []
        for label in labels:
            if not isinstance(label, str) or not label.strip():
                raise DataFormatError(f"y[{i}] holds {label!r}; labels must be non-empty strings")
            if label not in row:
                row.append(label)
        out.append(row)
    return out, (list(map(str, classes)) if classes is not None else None), False


def _check_classes(classes) -> None:
    """``classes`` names the columns of y: distinct names, or two columns would be one class."""
    if isinstance(classes, (str, bytes)):
        raise DataFormatError("classes must be a list of names, got a single string")
    names = [str(c) for c in classes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataFormatError(f"classes lists {repeated[0]!r} more than once; class names must be distinct")
