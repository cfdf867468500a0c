"""Neural multi-label baselines with a scikit-learn API, trained with the shared
:class:`~seq2labels.training.Trainer`.

* :class:`MLPClassifier`: a feed-forward network on numeric features (dense or sparse;
  scaling/TF-IDF is the user's pipeline step), sigmoid outputs and binary cross-entropy,
  either one linear output layer or one output head per label (``per_label_heads``).
* :class:`KimCNNClassifier`: Kim's CNN on raw texts, sigmoid outputs.
* :class:`CNNRNNClassifier`: the CNN-RNN label-sequence decoder on raw texts, decoded with
  :func:`seq2labels.decoding.decode` like SGM.

They follow :class:`~seq2labels.baselines.problem_transformation.MultiLabelClassifierBase`:
``fit(X, Y)`` with a 0/1 indicator matrix (or a 1-D single-output y), ``predict`` returns
an (n, L) 0/1 matrix, ``predict_proba`` (n, L) scores, ``fallback_top1`` fills empty rows.
Training holds out a seeded ``validation_fraction`` of the rows and keeps the weights of
the epoch with the best validation micro-F1 (early stopping after ``patience`` epochs
without improvement); with too few rows to hold any out, the training rows are scored.
``random_state`` (an int) makes fitting deterministic on CPU; training seeds torch's,
NumPy's and Python's global generators, as :class:`Trainer` does.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import warnings
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from seq2labels._version import __version__
from seq2labels.utils.atomic import _process_umask, atomic_write_json, fsync_dir
from seq2labels.data.dataset import EncodedDataset, batch_indices, collate
from seq2labels.data.labels import LabelVocab
from seq2labels.data.tokenizer import RegexTokenizer
from seq2labels.data.vocab import Vocab
from seq2labels.decoding import decode
from seq2labels.training.losses import sequence_loss
from seq2labels.models.cnn import KimCNN, KimCNNConfig
from seq2labels.models.cnn_rnn import CNNRNN, CNNRNNConfig
from seq2labels.models.mlp import MLPConfig, PerLabelMLP, SigmoidMLP
from seq2labels.training import Trainer, TrainerConfig
from seq2labels.training.seeding import seed_everything

from seq2labels.baselines.problem_transformation import MultiLabelClassifierBase

__all__ = ["MLPClassifier", "KimCNNClassifier", "CNNRNNClassifier", "save_text_pipeline", "load_text_pipeline"]

_FIRST_LABEL_ID = 3  # label column j of a text model is label vocabulary id j + 3 when present
_PREDICT_BATCH = 512


# --------------------------------------------------------------------------- shared helpers


def _check_int(name: str, value, minimum: int) -> None:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")


def _check_real(name: str, value, low: float, high: float, *, high_open: bool = False,
                low_open: bool = False) -> None:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be a number in {lo}{low}, {high}{hi}; got {value!r}")


def _seed_of(random_state) -> int:
    """An int seed for the Trainer: the int itself, else one drawn from ``random_state``."""
    if isinstance(random_state, Integral) and not isinstance(random_state, bool) and 0 <= random_state < 2**32:
        return int(random_state)
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


def _split_rows(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows), seeded; no validation rows when there are too few rows."""
    n_valid = int(round(n * fraction))
    if fraction <= 0 or n_valid < 1 or n - n_valid < 1:
        rows = np.arange(n)
        return rows, rows
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def _micro_f1(Y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Validation micro-F1 (as :func:`seq2labels.evaluation.metrics.multilabel_metrics` computes it, with
    zero_division=0), counted directly: it runs every epoch and the full metric set is slow."""
    tp = int(np.sum((Y == 1) & (pred == 1)))
    wrong = int(np.sum(Y != pred))
    return {"micro_f1": 2.0 * tp / (2 * tp + wrong) if tp else 0.0}


def _trainer_config(est, seed: int) -> TrainerConfig:
    return TrainerConfig(max_epochs=int(est.epochs), patience=int(est.patience), lr=float(est.lr),
                         lr_schedule="none", monitor="micro_f1", mode="max", seed=seed,
                         device=est.device, progress=False)


def _check_common(est) -> None:
    _check_int("epochs", est.epochs, 1)
    _check_int("batch_size", est.batch_size, 1)
    _check_int("patience", est.patience, 1)
    _check_real("lr", est.lr, 0.0, math.inf, low_open=True, high_open=True)
    _check_real("dropout", est.dropout, 0.0, 1.0, high_open=True)
    _check_real("validation_fraction", est.validation_fraction, 0.0, 1.0, high_open=True)


# --------------------------------------------------------------------------- saving and loading
#
# A saved estimator is a folder of JSON and safetensors files only (no pickle, nothing that can
# run code when read), written to a sibling staging folder and swapped in like a model folder
# (seq2labels.pipeline.files), so a crash mid-save leaves the previous folder intact:
#
#   config.json        format name and version, estimator class, its parameters, fitted attributes
#                      (classes_, n_labels_, history_ ...), the network's config; written last
#   model.safetensors  the network's weights
#   vocab.json         text models: tokenizer settings and word vocabulary
#   labels.json        CNNRNNClassifier: label vocabulary and its label -> column map
#   tfidf.json         save_text_pipeline only: TfidfVectorizer settings, vocabulary_ and idf_

BASELINE_FORMAT = "seq2labels-baseline"
BASELINE_FORMAT_VERSION = 1
_TUPLE_PARAMS = ("hidden", "filter_sizes")


def _json_value(value):
    """numpy scalars and tuples as plain JSON values (for params and history rows)."""
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def _params_to_json(est) -> dict:
    """``get_params`` as JSON; a non-int ``random_state`` (a RandomState) is stored as None."""
    params = {}
    for name, value in est.get_params(deep=False).items():
        if name == "random_state" and not (value is None or isinstance(value, Integral)):
            warnings.warn(f"{type(est).__name__}.save: random_state {value!r} is not an int; saved as None "
                          "(it only matters for refitting)", UserWarning, stacklevel=3)
            value = None
        params[name] = _json_value(value)
    return params


def _classes_to_json(classes: np.ndarray) -> dict:
    classes = np.asarray(classes)
    if classes.dtype.kind not in "biufU" and not (
            classes.dtype == object and all(isinstance(c, str) for c in classes)):
        raise ValueError(f"cannot save classes_ of dtype {classes.dtype} without pickle "
                         "(only numbers, booleans and strings can be saved)")
    return {"dtype": classes.dtype.str if classes.dtype != object else "object",
            "values": [_json_value(c) for c in classes.tolist()]}


def _classes_from_json(d: dict) -> np.ndarray:
    dtype = d["dtype"]
    if not isinstance(dtype, str) or (dtype != "object" and np.dtype(dtype).kind not in "biufU"):
        raise ValueError(f"unsupported classes_ dtype {dtype!r}")
    return np.array(d["values"], dtype=object if dtype == "object" else np.dtype(dtype))


def _write_folder(path: str | Path, write_files) -> Path:
    """Call ``write_files(staging)`` on a fresh sibling folder, then swap it in at ``path``."""
    from seq2labels.pipeline.files import _swap_in

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(staging, 0o777 & ~_process_umask())
        write_files(staging)
        fsync_dir(staging)
        _swap_in(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _read_json(path: Path):
    from seq2labels.errors import ModelFormatError

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ModelFormatError(f"{path.parent}: not a saved seq2labels baseline ({path.name} is missing)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: not valid JSON ({exc})") from None


def _read_baseline_config(path: Path) -> dict:
    """config.json of a saved baseline after checking its format name and version."""
    from seq2labels.errors import ModelFormatError

    if not path.is_dir():
        raise ModelFormatError(f"{path}: saved estimator folder not found")
    meta = _read_json(path / "config.json")
    where = path / "config.json"
    if not isinstance(meta, dict) or meta.get("format") != BASELINE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ModelFormatError(f"{where}: not a saved seq2labels baseline (format={found!r})")
    version = meta.get("format_version")
    if version != BASELINE_FORMAT_VERSION:
        raise ModelFormatError(f"{where}: baseline format version {version!r} is not supported by seq2labels "
                               f"{__version__} (it reads version {BASELINE_FORMAT_VERSION})")
    return meta


class _SaveLoadMixin:
    """``save(path)`` / ``load(path)`` for the neural baselines (see the section comment above).

    Subclasses name their network classes in ``_NETWORKS`` (model_type -> (module class, config
    class)) and add their own files through ``_extra_files`` / ``_restore_extra``.
    """

    _NETWORKS: dict = {}

    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to the folder ``path`` (replaced only once complete)."""
        check_is_fitted(self)
        return _write_folder(path, self._write_files)

    def _config_json(self) -> dict:
        model_type = next((name for name, (cls, _) in self._NETWORKS.items() if type(self.model_) is cls), None)
        if model_type is None:
            raise ValueError(f"cannot save a {type(self.model_).__name__} network")
        fitted = {"classes_": _classes_to_json(self.classes_), "target_type_": self.target_type_,
                  "n_labels_": int(self.n_labels_), "best_epoch_": int(self.best_epoch_),
                  "history_": _json_value(list(self.history_))}
        if hasattr(self, "n_features_in_"):
            fitted["n_features_in_"] = int(self.n_features_in_)
        if hasattr(self, "feature_names_in_"):
            fitted["feature_names_in_"] = [str(n) for n in self.feature_names_in_]
        return {"format": BASELINE_FORMAT, "format_version": BASELINE_FORMAT_VERSION,
                "estimator": type(self).__name__, "seq2labels_version": __version__,
                "params": _params_to_json(self), "fitted": fitted, "model_type": model_type,
                "model": _json_value(self.model_.config.to_dict())}

    def _write_files(self, folder: Path, extra_config: dict | None = None) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().to("cpu").contiguous() for k, v in self.model_.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": BASELINE_FORMAT})
        for name, content in self._extra_files().items():
            atomic_write_json(folder / name, content)
        # config.json last: a folder without it is never mistaken for a saved estimator
        atomic_write_json(folder / "config.json", {**self._config_json(), **(extra_config or {})})

    def _extra_files(self) -> dict[str, dict]:
        return {}

    def _restore_extra(self, folder: Path, meta: dict) -> None:
        """Read this class's extra files (vocabularies) back into the fitted attributes."""

    @classmethod
    def load(cls, path: str | Path, device: str | None = None):
        """Read a folder written by :meth:`save`; runs no code from it. ``device`` overrides the
        saved ``device`` parameter (the weights are loaded on it)."""
        path = Path(path)
        meta = _read_baseline_config(path)
        if "pipeline" in meta:
            raise _format_error(path, "holds a TF-IDF text pipeline; read it with "
                                      "seq2labels.baselines.neural.load_text_pipeline")
        return cls._from_folder(path, meta, device)

    @classmethod
    def _from_folder(cls, path: Path, meta: dict, device: str | None):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from seq2labels.errors import ModelFormatError

        if meta.get("estimator") != cls.__name__:
            raise _format_error(path, f"holds a {meta.get('estimator')!r}, not a {cls.__name__}; "
                                      f"load it with {meta.get('estimator')}.load")
        try:
            est = cls(**cls._params_from_json(meta["params"]))
            if device is not None:
                est.device = device
            fitted = meta["fitted"]
            est.classes_ = _classes_from_json(fitted["classes_"])
            est.target_type_ = str(fitted["target_type_"])
            est.n_labels_ = int(fitted["n_labels_"])
            est.best_epoch_ = int(fitted["best_epoch_"])
            est.history_ = [dict(row) for row in fitted["history_"]]
            if "n_features_in_" in fitted:
                est.n_features_in_ = int(fitted["n_features_in_"])
            if "feature_names_in_" in fitted:
                est.feature_names_in_ = np.array(fitted["feature_names_in_"], dtype=object)
            network, config_cls = cls._NETWORKS[meta["model_type"]]
            model = network(config_cls(**meta["model"]))
            est._restore_extra(path, meta)
        except ModelFormatError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise _format_error(path, f"inconsistent files ({exc})") from None
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise _format_error(path, "model.safetensors is missing")
        try:
            state = load_file(str(weights), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise _format_error(weights, f"cannot read weights ({exc})") from None
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise _format_error(weights, f"weights do not fit the model config ({exc})") from None
        est.model_ = model.eval().to(est.device)
        return est

    @classmethod
    def _params_from_json(cls, params: dict) -> dict:
        if not isinstance(params, dict):
            raise ValueError("params must be a JSON object")
        known = set(cls().get_params(deep=False))
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} parameter(s) {', '.join(unknown)}")
        return {k: tuple(v) if k in _TUPLE_PARAMS and isinstance(v, list) else v for k, v in params.items()}


def _format_error(path: Path, message: str):
    from seq2labels.errors import ModelFormatError

    return ModelFormatError(f"{path}: {message}")


# --------------------------------------------------------------------------- MLP


class MLPClassifier(_SaveLoadMixin, MultiLabelClassifierBase):
    """A sigmoid-output MLP trained with binary cross-entropy.

    ``hidden``: sizes of the shared hidden layers (``()`` gives a linear model).
    ``per_label_heads``: one ``Linear(hidden[-1], 1)`` output head per label instead of one
    ``Linear(hidden[-1], L)`` layer (same function class, different parameter layout).
    A label is predicted when its sigmoid exceeds ``threshold`` (strictly).

    Attributes: ``model_`` (the trained module, eval mode), ``history_`` (per-epoch metrics),
    ``best_epoch_``, ``classes_``, ``n_labels_``, ``n_features_in_``.

    ``save(path)`` / ``MLPClassifier.load(path)`` keep the fitted estimator (numeric input); for
    a TF-IDF text pipeline use :func:`save_text_pipeline` / :func:`load_text_pipeline`.
    """

    _NETWORKS = {"sigmoid_mlp": (SigmoidMLP, MLPConfig), "per_label_mlp": (PerLabelMLP, MLPConfig)}

    def __init__(self, hidden=(256,), dropout: float = 0.2, epochs: int = 30, batch_size: int = 64,
                 lr: float = 1e-3, per_label_heads: bool = False, threshold: float = 0.5,
                 validation_fraction: float = 0.1, patience: int = 5, random_state=0,
                 fallback_top1: bool = False, device: str = "cpu"):
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.per_label_heads = per_label_heads
        self.threshold = threshold
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.fallback_top1 = fallback_top1
        self.device = device

    def _tag_classifier(self):
        return None  # accepts sparse X; no NaN

    def _check_params(self) -> None:
        super()._check_params()
        _check_common(self)
        _check_real("threshold", self.threshold, 0.0, 1.0)
        hidden = tuple(self.hidden) if not isinstance(self.hidden, Integral) else (self.hidden,)
        for h in hidden:
            _check_int("hidden sizes", h, 1)

    def _features(self, X, rows) -> torch.Tensor:
        part = X[rows]
        part = part.toarray() if sp.issparse(part) else part
        return torch.from_numpy(np.array(part, dtype=np.float32))        # (rows, features), a copy

    def _fit(self, X, Y):
        seed = _seed_of(self.random_state)
        seed_everything(seed)
        hidden = (self.hidden,) if isinstance(self.hidden, Integral) else tuple(self.hidden)
        cfg = MLPConfig(input_dim=X.shape[1], num_labels=Y.shape[1], hidden=hidden, dropout=float(self.dropout))
        model = PerLabelMLP(cfg) if self.per_label_heads else SigmoidMLP(cfg)
        train_rows, valid_rows = _split_rows(X.shape[0], self.validation_fraction, seed)
        targets = torch.from_numpy(Y.astype(np.float32))                 # (n, labels)

        def make_batches(epoch: int):
            for idx in batch_indices([0] * len(train_rows), self.batch_size, shuffle=True,
                                     seed=seed * 1000 + epoch, bucket=False):
                rows = train_rows[idx]
                yield self._features(X, rows), targets[rows]

        def loss_fn(net, batch):
            x, y = batch
            return F.binary_cross_entropy_with_logits(net(x), y)

        def evaluate_fn(net):
            scores = self._scores(net, X[valid_rows])
            return _micro_f1(Y[valid_rows], (scores > self.threshold).astype(np.int64))

        trainer = Trainer(model, _trainer_config(self, seed), loss_fn=loss_fn, evaluate_fn=evaluate_fn,
                          make_batches=make_batches, steps_per_epoch=math.ceil(len(train_rows) / self.batch_size))
        result = trainer.fit()
        model.eval()
        self.model_ = model
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch

    @torch.no_grad()
    def _scores(self, net, X) -> np.ndarray:
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        out = []
        try:
            for start in range(0, X.shape[0], _PREDICT_BATCH):
                x = self._features(X, slice(start, start + _PREDICT_BATCH)).to(device)
                out.append(torch.sigmoid(net(x)).double().cpu().numpy())  # (batch, labels)
        finally:
            net.train(was_training)
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.n_labels_))

    def _predict_scores(self, X):
        scores = self._scores(self.model_, X)
        return (scores > self.threshold).astype(np.int64), scores


# --------------------------------------------------------------------------- text models


def _check_texts(X) -> list[str]:
    if isinstance(X, str):
        raise TypeError("X must be a list of texts, got a single string; wrap it in a list")
    if hasattr(X, "ndim") and getattr(X, "ndim") != 1:
        raise ValueError(f"X must be a 1-D sequence of texts; got an array of shape {X.shape}")
    texts = list(X)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"X[{i}] is {type(t).__name__}, expected a text (str)")
    return texts


class _TextClassifierBase(_SaveLoadMixin, MultiLabelClassifierBase):
    """Raw texts in; tokenizer and vocabulary are built on the training rows at fit time."""

    def _tag_classifier(self):
        return None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.input_tags.sparse = False
        return tags

    def _validate_X(self, X, reset: bool):
        texts = _check_texts(X)
        if reset and not texts:
            raise ValueError(f"X is empty: {type(self).__name__}.fit needs at least one text")
        return texts

    def _check_params(self) -> None:
        super()._check_params()
        _check_common(self)
        _check_int("embedding_dim", self.embedding_dim, 1)
        _check_int("num_filters", self.num_filters, 1)
        _check_int("max_len", self.max_len, 1)
        _check_int("min_count", self.min_count, 1)
        sizes = tuple(self.filter_sizes)
        if not sizes:
            raise ValueError("filter_sizes must name at least one width")
        for k in sizes:
            _check_int("filter_sizes", k, 1)

    def _extra_files(self) -> dict[str, dict]:
        return {"vocab.json": {"tokenizer": self.tokenizer_.to_dict(), "vocab": self.vocab_.to_dict()}}

    def _restore_extra(self, folder: Path, meta: dict) -> None:
        data = _read_json(folder / "vocab.json")
        self.tokenizer_ = RegexTokenizer.from_dict(data["tokenizer"])
        self.vocab_ = Vocab.from_dict(data["vocab"])
        if len(self.vocab_) != meta["model"]["vocab_size"]:
            raise ValueError(f"vocab.json holds {len(self.vocab_)} words but the model was built for "
                             f"{meta['model']['vocab_size']}")

    def _build_text_vocab(self, texts: list[str]) -> None:
        self.tokenizer_ = RegexTokenizer(lowercase=bool(self.lowercase))
        self.vocab_ = Vocab.build((self.tokenizer_(t, max_tokens=int(self.max_len)) for t in texts),
                                  min_count=int(self.min_count), max_size=self.max_vocab)

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        return [self.vocab_.encode(self.tokenizer_(t, max_tokens=int(self.max_len)), max_len=int(self.max_len))
                for t in texts]

    def _batches(self, token_ids: list[list[int]], batch_size: int):
        """Length-sorted evaluation batches of the texts (collated, PAD for empty texts)."""
        data = EncodedDataset(token_ids=token_ids, target_ids=[[] for _ in token_ids])
        for idx in batch_indices(data.lengths(), batch_size, shuffle=False, bucket=True):
            yield collate(data, idx)


class KimCNNClassifier(_TextClassifierBase):
    """Kim's CNN on raw texts with sigmoid outputs and binary cross-entropy.

    A label is predicted when its sigmoid exceeds ``threshold`` (strictly).
    Attributes: ``model_``, ``tokenizer_``, ``vocab_``, ``history_``, ``best_epoch_``,
    ``classes_``, ``n_labels_``. ``save(path)`` / ``KimCNNClassifier.load(path)`` keep it.
    """

    _NETWORKS = {"kim_cnn": (KimCNN, KimCNNConfig)}

    def __init__(self, embedding_dim: int = 128, filter_sizes=(3, 4, 5), num_filters: int = 100,
                 dropout: float = 0.5, max_len: int = 300, min_count: int = 1, max_vocab: int | None = 50000,
                 lowercase: bool = True, epochs: int = 20, batch_size: int = 64, lr: float = 1e-3,
                 threshold: float = 0.5, validation_fraction: float = 0.1, patience: int = 5,
                 random_state=0, fallback_top1: bool = False, device: str = "cpu"):
        self.embedding_dim = embedding_dim
        self.filter_sizes = filter_sizes
        self.num_filters = num_filters
        self.dropout = dropout
        self.max_len = max_len
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.lowercase = lowercase
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.threshold = threshold
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.fallback_top1 = fallback_top1
        self.device = device

    def _check_params(self) -> None:
        super()._check_params()
        _check_real("threshold", self.threshold, 0.0, 1.0)

    def _fit(self, X, Y):
        seed = _seed_of(self.random_state)
        seed_everything(seed)
        train_rows, valid_rows = _split_rows(len(X), self.validation_fraction, seed)
        self._build_text_vocab([X[i] for i in train_rows])
        cfg = KimCNNConfig(vocab_size=len(self.vocab_), num_labels=Y.shape[1],
                           embedding_dim=int(self.embedding_dim), filter_sizes=tuple(self.filter_sizes),
                           num_filters=int(self.num_filters), dropout=float(self.dropout))
        model = KimCNN(cfg)
        ids = self._token_ids(X)
        train_set = EncodedDataset([ids[i] for i in train_rows], [[] for _ in train_rows])
        targets = torch.from_numpy(Y[train_rows].astype(np.float32))     # (n_train, labels)
        valid_ids = [ids[i] for i in valid_rows]

        def make_batches(epoch: int):
            for idx in batch_indices(train_set.lengths(), self.batch_size, shuffle=True, seed=seed * 1000 + epoch):
                batch = collate(train_set, idx)
                yield batch.src, batch.src_lengths, targets[batch.index]

        def loss_fn(net, batch):
            src, lengths, y = batch
            return F.binary_cross_entropy_with_logits(net(src, lengths), y)

        def evaluate_fn(net):
            scores = self._scores(net, valid_ids)
            return _micro_f1(Y[valid_rows], (scores > self.threshold).astype(np.int64))

        trainer = Trainer(model, _trainer_config(self, seed), loss_fn=loss_fn, evaluate_fn=evaluate_fn,
                          make_batches=make_batches, steps_per_epoch=math.ceil(len(train_set) / self.batch_size))
        result = trainer.fit()
        model.eval()
        self.model_ = model
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch

    @torch.no_grad()
    def _scores(self, net, token_ids: list[list[int]]) -> np.ndarray:
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        out = np.zeros((len(token_ids), net.config.num_labels))
        try:
            for batch in self._batches(token_ids, _PREDICT_BATCH):
                batch = batch.to(device)
                probs = torch.sigmoid(net(batch.src, batch.src_lengths))  # (batch, labels)
                out[batch.index.cpu().numpy()] = probs.double().cpu().numpy()
        finally:
            net.train(was_training)
        return out

    def _predict_scores(self, X):
        scores = self._scores(self.model_, self._token_ids(X))
        return (scores > self.threshold).astype(np.int64), scores


class CNNRNNClassifier(_TextClassifierBase):
    """CNN-RNN: a CNN text vector initialises an LSTM that emits labels until EOS.

    Targets are taught in descending training-frequency order (as in SGM) with the sequence
    cross-entropy; prediction decodes with :func:`seq2labels.decoding.decode` (``beam_size``,
    ``max_labels``). ``predict_proba`` is each label's highest probability along the greedy
    decoding path (a ranking score, as in ``SGMClassifier``), 0 for labels never seen positive
    in training.

    Attributes: ``model_``, ``tokenizer_``, ``vocab_``, ``label_vocab_`` (label names are the
    column indices as strings), ``history_``, ``best_epoch_``, ``classes_``, ``n_labels_``.
    ``save(path)`` / ``CNNRNNClassifier.load(path)`` keep it.
    """

    _NETWORKS = {"cnn_rnn": (CNNRNN, CNNRNNConfig)}

    def _extra_files(self) -> dict[str, dict]:
        return {**super()._extra_files(),
                "labels.json": {"label_vocab": self.label_vocab_.to_dict(),
                                "label_columns": [int(c) for c in self.label_columns_]}}

    def _restore_extra(self, folder: Path, meta: dict) -> None:
        super()._restore_extra(folder, meta)
        data = _read_json(folder / "labels.json")
        self.label_vocab_ = LabelVocab.from_dict(data["label_vocab"])
        self.label_columns_ = np.array([int(c) for c in data["label_columns"]], dtype=np.int64)
        if self.label_vocab_.size != meta["model"]["num_outputs"] or \
                len(self.label_columns_) != self.label_vocab_.num_labels:
            raise ValueError("labels.json does not match the model's output size")
        if np.any(self.label_columns_ < 0) or np.any(self.label_columns_ >= self.n_labels_):
            raise ValueError("labels.json maps a label outside the estimator's label columns")

    def __init__(self, embedding_dim: int = 128, filter_sizes=(3, 4, 5), num_filters: int = 100,
                 label_embedding_dim: int = 64, decoder_hidden: int = 256, dropout: float = 0.3,
                 max_len: int = 300, min_count: int = 1, max_vocab: int | None = 50000, lowercase: bool = True,
                 epochs: int = 20, batch_size: int = 64, lr: float = 1e-3, beam_size: int = 1,
                 max_labels: int = 10, validation_fraction: float = 0.1, patience: int = 5,
                 random_state=0, fallback_top1: bool = False, device: str = "cpu"):
        self.embedding_dim = embedding_dim
        self.filter_sizes = filter_sizes
        self.num_filters = num_filters
        self.label_embedding_dim = label_embedding_dim
        self.decoder_hidden = decoder_hidden
        self.dropout = dropout
        self.max_len = max_len
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.lowercase = lowercase
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.beam_size = beam_size
        self.max_labels = max_labels
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.fallback_top1 = fallback_top1
        self.device = device

    def _check_params(self) -> None:
        super()._check_params()
        _check_int("label_embedding_dim", self.label_embedding_dim, 1)
        _check_int("decoder_hidden", self.decoder_hidden, 1)
        _check_int("beam_size", self.beam_size, 1)
        _check_int("max_labels", self.max_labels, 1)

    def _target_ids(self, Y: np.ndarray) -> list[list[int]]:
        return [self.label_vocab_.encode_targets([str(j) for j in np.flatnonzero(row)]) for row in Y]

    def _fit(self, X, Y):
        seed = _seed_of(self.random_state)
        seed_everything(seed)
        train_rows, valid_rows = _split_rows(len(X), self.validation_fraction, seed)
        self._build_text_vocab([X[i] for i in train_rows])
        label_lists = [[str(j) for j in np.flatnonzero(Y[i])] for i in train_rows]
        if not any(label_lists):  # no positive label at all: a vocabulary of every column, never emitted
            label_lists = [[str(j) for j in range(Y.shape[1])]]
        self.label_vocab_ = LabelVocab.build(label_lists, order="frequency")
        # label vocabulary position -> column of Y
        self.label_columns_ = np.array([int(name) for name in self.label_vocab_.labels], dtype=np.int64)
        cfg = CNNRNNConfig(vocab_size=len(self.vocab_), num_outputs=self.label_vocab_.size,
                           embedding_dim=int(self.embedding_dim), filter_sizes=tuple(self.filter_sizes),
                           num_filters=int(self.num_filters), label_embedding_dim=int(self.label_embedding_dim),
                           decoder_hidden=int(self.decoder_hidden), dropout=float(self.dropout))
        model = CNNRNN(cfg)
        ids = self._token_ids(X)
        train_set = EncodedDataset([ids[i] for i in train_rows], self._target_ids(Y[train_rows]))
        valid_ids = [ids[i] for i in valid_rows]

        def make_batches(epoch: int):
            for idx in batch_indices(train_set.lengths(), self.batch_size, shuffle=True, seed=seed * 1000 + epoch):
                yield collate(train_set, idx)

        def loss_fn(net, batch):
            return sequence_loss(net(batch.src, batch.src_lengths, batch.targets), batch.targets, "ce")

        def evaluate_fn(net):
            pred, _ = self._decode(net, valid_ids, Y.shape[1], beam_size=1)
            return _micro_f1(Y[valid_rows], pred)

        trainer = Trainer(model, _trainer_config(self, seed), loss_fn=loss_fn, evaluate_fn=evaluate_fn,
                          make_batches=make_batches, steps_per_epoch=math.ceil(len(train_set) / self.batch_size))
        result = trainer.fit()
        model.eval()
        self.model_ = model
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch

    @torch.no_grad()
    def _decode(self, net, token_ids: list[list[int]], n_labels: int, beam_size: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """(n, L) 0/1 decisions of a ``beam_size`` search and (n, L) greedy-path label scores."""
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        pred = np.zeros((len(token_ids), n_labels), dtype=np.int64)
        scores = np.zeros((len(token_ids), n_labels))
        try:
            for batch in self._batches(token_ids, _PREDICT_BATCH):
                batch = batch.to(device)
                rows = batch.index.cpu().numpy()
                out = decode(net, batch.src, batch.src_lengths, beam_size=beam_size, max_labels=int(self.max_labels))
                if beam_size != 1:
                    greedy = decode(net, batch.src, batch.src_lengths, beam_size=1, max_labels=int(self.max_labels))
                else:
                    greedy = out
                label_scores = greedy.label_scores[:, _FIRST_LABEL_ID:].double().cpu().numpy()  # (batch, vocab labels)
                scores[rows[:, None], self.label_columns_[None, :]] = label_scores
                seqs = out.sequences.cpu().numpy()                       # (batch, steps)
                for r, seq in enumerate(seqs):
                    ids = seq[seq >= _FIRST_LABEL_ID] - _FIRST_LABEL_ID
                    pred[rows[r], self.label_columns_[ids]] = 1
        finally:
            net.train(was_training)
        return pred, scores

    def _predict_scores(self, X):
        return self._decode(self.model_, self._token_ids(X), self.n_labels_, beam_size=int(self.beam_size))


# --------------------------------------------------------------------------- TF-IDF text pipelines

# TfidfVectorizer settings that are code (callables) cannot be saved without pickle.
_TFIDF_CALLABLE_PARAMS = ("preprocessor", "tokenizer", "analyzer", "strip_accents")


def _tfidf_to_json(vectorizer) -> dict:
    """Settings, ``vocabulary_`` (terms in column order) and ``idf_`` of a fitted TfidfVectorizer."""
    params = vectorizer.get_params(deep=False)
    for name in _TFIDF_CALLABLE_PARAMS:
        if callable(params.get(name)):
            raise ValueError(f"cannot save a TfidfVectorizer whose {name} is a function without pickle; "
                             "use the built-in settings (strings) instead")
    params["dtype"] = np.dtype(params["dtype"]).name
    if isinstance(params.get("stop_words"), (set, frozenset)):
        params["stop_words"] = sorted(params["stop_words"])
    vocabulary = vectorizer.vocabulary_
    terms = [""] * len(vocabulary)
    for term, column in vocabulary.items():
        terms[int(column)] = term
    out = {"class": type(vectorizer).__name__, "params": _json_value(params), "terms": terms}
    if vectorizer.use_idf:
        out["idf"] = [float(x) for x in vectorizer.idf_]
    return out


def _vectorizer_classes() -> dict:
    """The vectorizer classes a tfidf.json may name (looked up by name, never imported from the file)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from seq2labels import baselines

    classes = {"TfidfVectorizer": TfidfVectorizer}
    if hasattr(baselines, "TextTfidfVectorizer"):
        classes["TextTfidfVectorizer"] = baselines.TextTfidfVectorizer
    return classes


def _tfidf_from_json(data: dict):
    classes = _vectorizer_classes()
    name = data.get("class", "TfidfVectorizer")
    if name not in classes:
        raise ValueError(f"tfidf.json: unknown vectorizer class {name!r}; known: {', '.join(classes)}")
    params = dict(data["params"])
    params["dtype"] = np.dtype(params["dtype"]).type
    if params.get("ngram_range") is not None:
        params["ngram_range"] = tuple(params["ngram_range"])
    vectorizer = classes[name](**params)
    terms = data["terms"]
    if not all(isinstance(t, str) for t in terms) or len(set(terms)) != len(terms):
        raise ValueError("tfidf.json: terms must be distinct strings")
    vectorizer.vocabulary_ = {term: column for column, term in enumerate(terms)}
    if vectorizer.use_idf:
        idf = np.asarray(data["idf"], dtype=np.float64)
        if idf.shape != (len(terms),):
            raise ValueError(f"tfidf.json: {idf.shape[0]} idf values for {len(terms)} terms")
        vectorizer.idf_ = idf
    return vectorizer


def _pipeline_steps(pipeline):
    from sklearn.pipeline import Pipeline

    steps = pipeline.steps if isinstance(pipeline, Pipeline) else None
    if not steps or len(steps) != 2 or type(steps[0][1]) not in _vectorizer_classes().values() \
            or not isinstance(steps[1][1], MLPClassifier):
        raise ValueError("save_text_pipeline saves a Pipeline of exactly (TfidfVectorizer, MLPClassifier), "
                         "as text_pipeline(MLPClassifier(...)) makes")
    return steps


def save_text_pipeline(pipeline, path: str | Path) -> Path:
    """Save ``text_pipeline(MLPClassifier(...))`` after fitting, without pickle.

    The vectorizer is kept as its settings, ``vocabulary_`` and ``idf_`` (``tfidf.json``) and
    rebuilt on load, so it transforms texts exactly as before; a vectorizer whose tokenizer,
    preprocessor or analyzer is a Python function cannot be saved.
    """
    (vec_name, vectorizer), (est_name, estimator) = _pipeline_steps(pipeline)
    check_is_fitted(estimator)
    tfidf = _tfidf_to_json(vectorizer)                      # fails before anything is written

    def write(folder: Path) -> None:
        atomic_write_json(folder / "tfidf.json", tfidf)
        estimator._write_files(folder, extra_config={"pipeline": [vec_name, est_name]})

    return _write_folder(path, write)


def load_text_pipeline(path: str | Path, device: str | None = None):
    """Read a folder written by :func:`save_text_pipeline` into a fitted Pipeline."""
    from sklearn.pipeline import Pipeline

    path = Path(path)
    meta = _read_baseline_config(path)
    names = meta.get("pipeline")
    if not (isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names)):
        raise _format_error(path, "holds an estimator, not a text pipeline; read it with "
                                  f"{meta.get('estimator')}.load")
    estimator = MLPClassifier._from_folder(path, meta, device)
    data = _read_json(path / "tfidf.json")
    try:
        vectorizer = _tfidf_from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise _format_error(path, f"inconsistent files ({exc})") from None
    if len(vectorizer.vocabulary_) != estimator.n_features_in_:
        raise _format_error(path, f"tfidf.json has {len(vectorizer.vocabulary_)} terms but the MLP reads "
                                  f"{estimator.n_features_in_} features")
    return Pipeline([(names[0], vectorizer), (names[1], estimator)])
