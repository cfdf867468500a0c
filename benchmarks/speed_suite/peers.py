"""Peers in the same run: fastText (one-vs-all loss) and BR (LinearSVC) on TF-IDF."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .harness import Runs, data_files, median_of, micro_f1, timed

FASTTEXT_PARAMS = {"loss": "ova", "epoch": 25, "lr": 0.5, "wordNgrams": 2, "dim": 100, "minCount": 1,
                   "bucket": 2_000_000}
FASTTEXT_THRESHOLD = 0.5
SVC_SPEC = {"name": "br", "label": "BR (LinearSVC)", "params": {"classifier": {"name": "linear_svc", "C": 1.0}}}
SVC_TFIDF = {"sublinear_tf": True, "min_df": 2, "ngram_range": [1, 2]}   # as configs/<dataset>/compare.yaml


def peer_data(spec: dict):
    from seq2labels.data.readers import read_examples

    files = data_files(spec["dataset"])
    train = read_examples(files["train"])
    test = read_examples(files["test"])
    if spec.get("train_docs"):
        train = train[: spec["train_docs"]]
    if spec.get("test_docs"):
        test = test[: spec["test_docs"]]
    names = sorted({lab for ex in train for lab in ex.labels} | {lab for ex in test for lab in ex.labels})
    return train, test, names


def measure_fasttext(spec: dict) -> dict:
    """fastText, one-vs-all loss, labels with probability >= 0.5, on the package tokenizer's words."""
    try:
        import fasttext
    except ImportError as exc:
        raise SystemExit(f"fastText is not installed ({exc}); pip install fasttext-wheel") from None
    from seq2labels.data.tokenizer import RegexTokenizer

    train, test, names = peer_data(spec)
    tokenizer = RegexTokenizer(lowercase=True)
    label_id = {name: f"__label__{i}" for i, name in enumerate(names)}
    id_label = {v: k for k, v in label_id.items()}
    params = {**FASTTEXT_PARAMS, **spec.get("fasttext", {}), "thread": spec["threads"], "verbose": 0}

    def line(text: str) -> str:
        return " ".join(tokenizer(text))

    with tempfile.TemporaryDirectory(prefix="speed-fasttext-") as tmp:
        path = Path(tmp) / "train.txt"

        def prepare():
            with path.open("w", encoding="utf-8") as f:
                for ex in train:
                    f.write(" ".join(label_id[lab] for lab in ex.labels) + " " + line(ex.text) + "\n")

        prep = timed(prepare, 1)
        fit = timed(lambda: fasttext.train_supervised(input=str(path), **params), spec["repeats"])
    model = fit.result

    texts = [ex.text for ex in test]

    def predict():
        out = []
        for start in range(0, len(texts), 256):
            chunk = [line(t) for t in texts[start:start + 256]]
            labels, _ = model.predict(chunk, k=-1, threshold=FASTTEXT_THRESHOLD)
            out.extend([id_label[lab] for lab in row] for row in labels)
        return out

    return peer_record("fastText (ova)", params, prep, fit, timed(predict, spec["repeats"]), test, names)


def measure_svc(spec: dict) -> dict:
    """BR (LinearSVC) on TF-IDF, built by seq2labels.experiments.compare as in the compare tables."""
    import numpy as np

    from seq2labels.experiments.compare import build_estimator

    train, test, names = peer_data(spec)
    col = {name: j for j, name in enumerate(names)}
    Y = np.zeros((len(train), len(names)), dtype=np.uint8)
    for i, ex in enumerate(train):
        for lab in ex.labels:
            Y[i, col[lab]] = 1
    train_texts, texts = [ex.text for ex in train], [ex.text for ex in test]

    def fit():
        return build_estimator(SVC_SPEC, text=True, tfidf=SVC_TFIDF).fit(train_texts, Y)

    fitted = timed(fit, spec["repeats"])
    est = fitted.result

    def predict():
        out = []
        for start in range(0, len(texts), 256):
            Z = est.predict(texts[start:start + 256])
            out.extend([names[j] for j in np.flatnonzero(row)] for row in Z)
        return out

    params = {"classifier": "LinearSVC(C=1.0)", "tfidf": SVC_TFIDF}
    return peer_record("BR (LinearSVC, TF-IDF)", params, None, fitted, timed(predict, spec["repeats"]), test, names)


def peer_record(method: str, params: dict, prep: Runs | None, fit: Runs, predict: Runs, test, names) -> dict:
    """Train seconds = preparing the input file (fastText) + the median fit; predict rates per doc."""
    prep_wall, prep_cpu = (prep.wall[0], prep.cpu[0]) if prep else (0.0, 0.0)
    gold = [list(ex.labels) for ex in test]
    return {"method": method, "params": params, "prepare_seconds": round(prep_wall, 3),
            "prepare_cpu_seconds": round(prep_cpu, 3),
            "fit": fit.record(1), "train_seconds": round(prep_wall + median_of(fit.wall), 3),
            "train_cpu_seconds": round(prep_cpu + median_of(fit.cpu), 3),
            "predict": predict.record(len(test), "docs_"), "predict_docs": len(test),
            "micro_f1": round(micro_f1(gold, predict.result, names), 6)}
