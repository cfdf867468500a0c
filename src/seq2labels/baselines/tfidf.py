"""TF-IDF features for raw texts: :class:`TextTfidfVectorizer` (checks its texts first) and
:func:`text_pipeline` (TF-IDF then any multi-label estimator). May import data and below."""

from __future__ import annotations

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_pipeline

from seq2labels.data.validation import check_texts

__all__ = ["TextTfidfVectorizer", "text_pipeline"]


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
