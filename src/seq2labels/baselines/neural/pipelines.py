"""TF-IDF + MLP text pipelines saved without pickle: ``save_text_pipeline`` writes the vectorizer as
``tfidf.json`` (settings, ``vocabulary_``, ``idf_``) beside the MLP's folder; ``load_text_pipeline`` reads it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from seq2labels.utils.atomic import atomic_write_json

from seq2labels.baselines.neural.common import (
    _format_error,
    _json_value,
    _read_baseline_config,
    _read_json,
    _write_folder,
)
from seq2labels.baselines.neural.mlp import MLPClassifier
from seq2labels.baselines.tfidf import TextTfidfVectorizer

__all__ = ["save_text_pipeline", "load_text_pipeline"]

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

    return {"TfidfVectorizer": TfidfVectorizer, "TextTfidfVectorizer": TextTfidfVectorizer}


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
