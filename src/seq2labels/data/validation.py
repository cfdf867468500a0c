"""Input checks shared by the entry points (Python API, estimators, CLI, compare).

Each check runs where user data first enters, so a bad input stops with one message that names
the argument, the item and the field, instead of a TypeError from deep inside the tokenizer or
an empty-array error from the metrics after a whole epoch of training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from seq2labels.data.readers import Example
from seq2labels.errors import ConfigError, DataFormatError


def check_texts(texts: Any, name: str = "texts") -> list[str]:
    """``texts`` as a list of str; a single string or a non-str item is a TypeError naming it.

    Returns a list, so a generator is consumed once here and never read twice (a second pass
    over a spent generator would silently predict nothing).
    """
    if isinstance(texts, (str, bytes)):
        kind = "string" if isinstance(texts, str) else "bytes object"
        raise TypeError(f"expected a list of texts, got a single {kind}; wrap it in a list")
    if not isinstance(texts, Iterable):
        raise TypeError(f"{name} must be a list of texts, got {type(texts).__name__}")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"text #{i} is {type(text).__name__}, expected str")
    return out


def check_label_list(labels: Any, where: str) -> tuple[str, ...]:
    """One example's labels: a list/tuple of non-empty strings; a repeated label is kept once.

    A bare string is refused (it would be read as one label per character).
    """
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Iterable):
        raise DataFormatError(f"{where}: field 'labels' must be a list of strings, got {type(labels).__name__}")
    out: list[str] = []
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise DataFormatError(f"{where}: field 'labels': each label must be a non-empty string, got {label!r}")
        out.append(label)
    return tuple(dict.fromkeys(out))


def check_examples(examples: Any, name: str = "examples") -> list[Example]:
    """A non-empty list of :class:`Example` with str texts and valid label lists.

    Duplicate labels are dropped (first occurrence kept), as the file readers do.
    """
    if isinstance(examples, (str, bytes)) or not isinstance(examples, Iterable):
        raise TypeError(f"{name} must be a list of seq2labels Example objects, got {type(examples).__name__}")
    out = list(examples)
    if not out:
        raise DataFormatError(f"no examples: {name} is empty")
    checked = []
    for i, ex in enumerate(out):
        if not isinstance(ex, Example):
            raise TypeError(f"{name}[{i}] is {type(ex).__name__}, expected seq2labels.data.readers.Example"
                            "(text=..., labels=(...))")
        if not isinstance(ex.text, str):
            raise DataFormatError(f"{name}[{i}]: field 'text' must be a string, got {type(ex.text).__name__}")
        labels = check_label_list(ex.labels, f"{name}[{i}]")
        checked.append(ex if labels == ex.labels else dataclasses.replace(ex, labels=labels))
    return checked


def check_label_counts(examples: Sequence[Example], limit: int, source: str) -> None:
    """Refuse a training text with more than ``limit`` labels (``labels.max_per_text``).

    Teacher forcing keeps one (batch, label count) distribution per target step, so one text
    with 10,000 labels asks for gigabytes; such a line is almost always a data bug.
    """
    for ex in examples:
        if len(ex.labels) > limit:
            shown = ", ".join(repr(label) for label in ex.labels[:3])
            raise DataFormatError(
                f"a training text has {len(ex.labels)} labels ({shown}, ...; text {ex.text[:40]!r}), more than "
                f"labels.max_per_text = {limit}; training memory grows with labels per text times the number of "
                "labels: fix the data or raise labels.max_per_text", path=source)


def check_positive_int(value: Any, name: str) -> int:
    """A count option (batch size, chunk size) must be an int >= 1: a ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_finite_features(X: Any, source: str, feature_names: Sequence[str] | None = None) -> None:
    """Refuse NaN/inf in a feature matrix before any estimator sees it, naming the first one.

    ARFF's missing value ``?`` is read as NaN; the baselines cannot use it.
    """
    import scipy.sparse as sp

    values = X.data if sp.issparse(X) else np.asarray(X)
    if values.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    if sp.issparse(X):
        coo = X.tocoo()
        first = int(np.flatnonzero(~np.isfinite(coo.data))[0])
        row, col = int(coo.row[first]), int(coo.col[first])
    else:
        row, col = (int(v) for v in np.argwhere(bad)[0])
    column = feature_names[col] if feature_names is not None and col < len(feature_names) else f"#{col}"
    raise DataFormatError(f"{int(bad.sum())} feature value(s) are missing ('?') or not finite (first: data row "
                          f"{row + 1}, feature {column!r}); the methods do not accept them: impute or drop them "
                          "first", path=source)
