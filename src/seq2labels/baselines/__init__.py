"""Classic multi-label baselines with a scikit-learn API, to compare SGM against.

Problem transformation: :class:`BinaryRelevance`, :class:`ClassifierChain`,
:class:`EnsembleClassifierChains`, :class:`LabelPowerset`, :class:`RAkEL`.
Nearest neighbours: :class:`MLkNN`, :class:`BRkNN`.
Neural: :class:`MLPClassifier` (numeric X), :class:`KimCNNClassifier`, :class:`CNNRNNClassifier` (raw texts).

All take ``fit(X, Y)`` with ``Y`` an (n_samples, n_labels) 0/1 matrix and return 0/1
matrices from ``predict`` and per-label scores from ``predict_proba``; see
:mod:`seq2labels.baselines.problem_transformation` for the 1-D ``y`` convention. For raw
texts wrap an estimator with :func:`text_pipeline`.
"""

from __future__ import annotations

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_pipeline

from seq2labels.data.validation import check_texts

from seq2labels.baselines.knn import BRkNN, MLkNN
from seq2labels.baselines.neural import CNNRNNClassifier, KimCNNClassifier, MLPClassifier
from seq2labels.baselines.problem_transformation import (
    BinaryRelevance,
    ClassifierChain,
    EnsembleClassifierChains,
    LabelPowerset,
    MultiLabelClassifierBase,
    RAkEL,
)

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


class TextTfidfVectorizer(TfidfVectorizer):
    """``TfidfVectorizer`` that first checks its input is a list of str, so a None or a number among
    the texts is a TypeError naming its index instead of an AttributeError from inside the analyzer."""

    def fit(self, raw_documents, y=None):
        return super().fit(_fit_texts(raw_documents), y)

    def fit_transform(self, raw_documents, y=None):
        return super().fit_transform(_fit_texts(raw_documents), y)

    def transform(self, raw_documents):
        return super().transform(check_texts(raw_documents, "X"))


def _fit_texts(raw_documents) -> list[str]:
    texts = check_texts(raw_documents, "X")
    if not texts:
        raise ValueError("X is empty: fitting TF-IDF features needs at least one text")
    return texts


def text_pipeline(estimator, **tfidf_kw) -> Pipeline:
    """TF-IDF features (:class:`TextTfidfVectorizer`, ``**tfidf_kw``) then ``estimator``: fit and
    predict on raw texts.

    Example: ``text_pipeline(BinaryRelevance(), sublinear_tf=True, min_df=2).fit(texts, Y)``.
    """
    return make_pipeline(TextTfidfVectorizer(**tfidf_kw), estimator)
