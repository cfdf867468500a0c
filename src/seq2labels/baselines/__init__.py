"""Classic multi-label baselines with a scikit-learn API, to compare SGM against.

Problem transformation: :class:`BinaryRelevance`, :class:`ClassifierChain`,
:class:`EnsembleClassifierChains`, :class:`LabelPowerset`, :class:`RAkEL`.
Nearest neighbours: :class:`MLkNN`, :class:`BRkNN`.
Neural: :class:`MLPClassifier` (numeric X), :class:`KimCNNClassifier`, :class:`CNNRNNClassifier` (raw texts).

All take ``fit(X, Y)`` with ``Y`` an (n_samples, n_labels) 0/1 matrix and return 0/1
matrices from ``predict`` and per-label scores from ``predict_proba``; see
:mod:`seq2labels.baselines.problem_transformation` for the 1-D ``y`` convention. For raw
texts wrap an estimator with :func:`text_pipeline`.

May import training, models, decoding, evaluation, data and utils; never pipeline, experiments or apps.
"""

from __future__ import annotations

from seq2labels.baselines.base import MultiLabelClassifierBase
from seq2labels.baselines.knn import BRkNN, MLkNN
from seq2labels.baselines.neural import CNNRNNClassifier, KimCNNClassifier, MLPClassifier
from seq2labels.baselines.problem_transformation import (
    BinaryRelevance,
    ClassifierChain,
    EnsembleClassifierChains,
    LabelPowerset,
    RAkEL,
)
from seq2labels.baselines.tfidf import TextTfidfVectorizer, _fit_texts, text_pipeline  # noqa: F401

__all__ = [
    "BinaryRelevance",
    "ClassifierChain",
    "EnsembleClassifierChains",
    "LabelPowerset",
    "RAkEL",
    "MLkNN",
    "BRkNN",
    "MLPClassifier",
    "KimCNNClassifier",
    "CNNRNNClassifier",
    "MultiLabelClassifierBase",
    "text_pipeline",
]
