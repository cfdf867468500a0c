"""Neural baselines: common (checks, seeds, splits, save/load, JSON), mlp (MLPClassifier), text (KimCNNClassifier,
CNNRNNClassifier), pipelines (TF-IDF + MLP files). May import baselines.base, baselines.tfidf, training and below."""

from __future__ import annotations

from seq2labels.baselines.neural.common import BASELINE_FORMAT, BASELINE_FORMAT_VERSION  # noqa: F401 (public)
from seq2labels.baselines.neural.mlp import MLPClassifier
from seq2labels.baselines.neural.pipelines import load_text_pipeline, save_text_pipeline
from seq2labels.baselines.neural.text import CNNRNNClassifier, KimCNNClassifier

__all__ = ["MLPClassifier", "KimCNNClassifier", "CNNRNNClassifier", "save_text_pipeline", "load_text_pipeline"]
