"""Shared pieces of the neural baselines: argument checks, seeds, validation splits, the
model-folder save/load mixin (JSON + safetensors, no pickle) and its JSON helpers.

The estimators (:mod:`.mlp`, :mod:`.text`) follow :class:`~seq2labels.baselines.base.MultiLabelClassifierBase`:
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
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from seq2labels._version import __version__
from seq2labels.utils.atomic import _process_umask, atomic_write_json, fsync_dir, swap_in_folder
from seq2labels.training import Trainer, TrainerConfig

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


def _bce_loss(net, batch):
    """Binary cross-entropy of a sigmoid-head network on a batch (inputs..., 0/1 targets)."""
    import torch.nn.functional as F

    *inputs, y = batch
    return F.binary_cross_entropy_with_logits(net(*inputs), y)


def _fit_network(est, model, seed: int, *, loss_fn, evaluate_fn, make_batches, steps_per_epoch: int) -> None:
    """Train ``model`` early-stopped on validation micro-F1 (``evaluate_fn``); the best weights
    become ``est.model_``, with ``history_`` and ``best_epoch_``."""
    trainer = Trainer(model, _trainer_config(est, seed), loss_fn=loss_fn, evaluate_fn=evaluate_fn,
                      make_batches=make_batches, steps_per_epoch=steps_per_epoch)
    result = trainer.fit()
    model.eval()
    est.model_ = model
    est.history_ = result.history
    est.best_epoch_ = result.best_epoch


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(staging, 0o777 & ~_process_umask())
        write_files(staging)
        fsync_dir(staging)
        swap_in_folder(staging, path)
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
