"""save/load of the neural baselines: identical predictions, JSON + safetensors only, clear errors."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

from seq2labels.baselines import CNNRNNClassifier, KimCNNClassifier, MLPClassifier, text_pipeline
from seq2labels.baselines.neural import load_text_pipeline, save_text_pipeline
from seq2labels.baselines.neural.common import BASELINE_FORMAT_VERSION
from seq2labels.apps.cli import sample_path
from seq2labels.data.readers import read_examples
from seq2labels.errors import ModelFormatError

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT_KW = dict(embedding_dim=16, filter_sizes=(2, 3), num_filters=8, epochs=2, batch_size=32, max_len=40)


@pytest.fixture(scope="module")
def texts_and_Y():
    examples = read_examples(sample_path("goemotions_train.jsonl.gz"))[:240]
    names = sorted({label for ex in examples for label in ex.labels})
    Y = np.array([[int(n in ex.labels) for n in names] for ex in examples], dtype=np.int64)
    return [ex.text for ex in examples], Y


@pytest.fixture(scope="module")
def held_out():
    return [ex.text for ex in read_examples(sample_path("goemotions_test.jsonl.gz"))[:50]] + ["", "zzqx"]


def _numeric(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    return X, (X[:, :3] > 0).astype(np.int64)


@pytest.fixture(scope="module")
def fitted(texts_and_Y, single_thread):
    """One fitted estimator of each kind (module scope: fitting is the slow part)."""
    X, Y = _numeric()
    texts, TY = texts_and_Y
    with single_thread():
        return {
            "mlp": (MLPClassifier(hidden=(16,), epochs=3, random_state=0).fit(X, Y), X),
            "mlp_heads": (MLPClassifier(hidden=(), per_label_heads=True, epochs=2).fit(X, Y), sp.csr_matrix(X)),
            "cnn": (KimCNNClassifier(**TEXT_KW).fit(texts, TY), None),
            "cnn_rnn": (CNNRNNClassifier(**TEXT_KW, label_embedding_dim=8, decoder_hidden=16, beam_size=2)
                        .fit(texts, TY), None),
        }


def _inputs(kind, X, held_out):
    return X if X is not None else held_out


@pytest.mark.parametrize("kind", ["mlp", "mlp_heads", "cnn", "cnn_rnn"])
def test_save_load_gives_identical_predictions(fitted, held_out, tmp_path, kind):
    est, X = fitted[kind]
    X = _inputs(kind, X, held_out)
    folder = est.save(tmp_path / "est")
    expected_files = {"config.json", "model.safetensors"} | ({"vocab.json"} if kind.startswith("cnn") else set()) \
        | ({"labels.json"} if kind == "cnn_rnn" else set())
    assert set(os.listdir(folder)) == expected_files
    assert os.listdir(tmp_path) == ["est"]                          # no staging folder left behind
    loaded = type(est).load(folder)
    assert loaded is not est and loaded.get_params() == est.get_params()
    assert np.array_equal(loaded.predict_proba(X), est.predict_proba(X))
    assert np.array_equal(loaded.predict(X), est.predict(X))
    assert loaded.history_ == est.history_ and loaded.best_epoch_ == est.best_epoch_
    assert np.array_equal(loaded.classes_, est.classes_) and loaded.classes_.dtype == est.classes_.dtype


def test_fresh_process_reproduces_predict_proba(fitted, held_out, tmp_path):
    est, _ = fitted["cnn_rnn"]
    folder = est.save(tmp_path / "est")
    (tmp_path / "texts.json").write_text(json.dumps(held_out), encoding="utf-8")
    script = textwrap.dedent(f"""
        import json, torch
        torch.set_num_threads(1)
        from seq2labels.baselines import CNNRNNClassifier
        est = CNNRNNClassifier.load({str(folder)!r})
        texts = json.load(open({str(tmp_path / 'texts.json')!r}, encoding="utf-8"))
        print(json.dumps(est.predict_proba(texts).tolist()))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == est.predict_proba(held_out).tolist()


def test_one_d_string_targets_keep_their_classes(tmp_path):
    X, Y = _numeric()
    y = np.array(["neg", "pos"])[Y[:, 0]]
    est = MLPClassifier(hidden=(8,), epochs=2).fit(X, y)
    loaded = MLPClassifier.load(est.save(tmp_path / "est"))
    assert loaded.classes_.tolist() == ["neg", "pos"] and loaded.target_type_ == "binary"
    assert np.array_equal(loaded.predict(X), est.predict(X))


def test_saving_again_replaces_the_folder(fitted, tmp_path):
    est, X = fitted["mlp"]
    folder = est.save(tmp_path / "est")
    other, _ = fitted["mlp_heads"]
    other.save(folder)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "per_label_mlp"
    assert os.listdir(tmp_path) == ["est"]


# ---- TF-IDF text pipeline ------------------------------------------------------------------


def test_text_pipeline_round_trip(texts_and_Y, held_out, tmp_path):
    texts, Y = texts_and_Y
    pipe = text_pipeline(MLPClassifier(hidden=(16,), epochs=2), sublinear_tf=True, min_df=2,
                         ngram_range=(1, 2), stop_words=["the", "a"]).fit(texts, Y)
    folder = save_text_pipeline(pipe, tmp_path / "pipe")
    assert set(os.listdir(folder)) == {"config.json", "model.safetensors", "tfidf.json"}
    loaded = load_text_pipeline(folder)
    assert type(loaded[0]) is type(pipe[0]) and loaded[0].get_params() == pipe[0].get_params()
    assert (loaded[0].transform(held_out) != pipe[0].transform(held_out)).nnz == 0
    assert np.array_equal(loaded.predict_proba(held_out), pipe.predict_proba(held_out))
    with pytest.raises(ModelFormatError, match="load_text_pipeline"):
        MLPClassifier.load(folder)


def test_text_pipeline_limits_are_clear(texts_and_Y, fitted, tmp_path):
    texts, Y = texts_and_Y
    pipe = text_pipeline(MLPClassifier(hidden=(4,), epochs=1), tokenizer=str.split, token_pattern=None).fit(texts, Y)
    with pytest.raises(ValueError, match="tokenizer is a function"):
        save_text_pipeline(pipe, tmp_path / "pipe")
    assert not (tmp_path / "pipe").exists()
    with pytest.raises(ValueError, match="exactly"):
        save_text_pipeline(text_pipeline(KimCNNClassifier()), tmp_path / "pipe")
    folder = save_text_pipeline(text_pipeline(MLPClassifier(hidden=(4,), epochs=1)).fit(texts, Y), tmp_path / "ok")
    tfidf = json.loads((folder / "tfidf.json").read_text())
    (folder / "tfidf.json").write_text(json.dumps({**tfidf, "class": "os.system"}))
    with pytest.raises(ModelFormatError, match="unknown vectorizer class 'os.system'"):
        load_text_pipeline(folder)
    est, _ = fitted["mlp"]
    with pytest.raises(ModelFormatError, match="not a text pipeline"):
        load_text_pipeline(est.save(tmp_path / "est"))


# ---- never run code, clear errors ------------------------------------------------------------


class _Canary:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("name", ["model.pkl", "estimator.pickle", "model.pt", "joblib.dump"])
def test_pickle_files_in_the_folder_are_never_executed(fitted, held_out, tmp_path, name):
    control = tmp_path / "control-canary"
    pickle.loads(pickle.dumps(_Canary(control)))
    assert control.exists()                                        # the payload works when unpickled
    est, _ = fitted["cnn"]
    folder = est.save(tmp_path / "est")
    canary = tmp_path / "canary"
    (folder / name).write_bytes(pickle.dumps(_Canary(canary)))
    KimCNNClassifier.load(folder).predict(held_out)
    assert not canary.exists()


def _rewrite(folder, **changes):
    path = folder / "config.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.update(changes)
    path.write_text(json.dumps(meta), encoding="utf-8")


def test_unknown_format_version_is_refused(fitted, tmp_path):
    est, _ = fitted["mlp"]
    folder = est.save(tmp_path / "est")
    _rewrite(folder, format_version=BASELINE_FORMAT_VERSION + 1)
    with pytest.raises(ModelFormatError, match=r"config.json: baseline format version 2 is not supported.*reads "
                                               r"version 1"):
        MLPClassifier.load(folder)


@pytest.mark.parametrize("change, needle", [
    ({"format": "seq2labels"}, "not a saved seq2labels baseline"),
    ({"estimator": "KimCNNClassifier"}, "holds a 'KimCNNClassifier', not a MLPClassifier"),
    ({"params": {"hiden": [16]}}, "unknown MLPClassifier parameter"),
    ({"model": {"input_dim": 9, "num_labels": 3, "hidden": [16], "dropout": 0.2}}, "weights do not fit"),
    ({"fitted": {"classes_": {"dtype": "object", "values": [0, 1, 2]}}}, "inconsistent files"),
])
def test_inconsistent_folders_are_clear_errors(fitted, tmp_path, change, needle):
    est, _ = fitted["mlp"]
    folder = est.save(tmp_path / "est")
    _rewrite(folder, **change)
    with pytest.raises(ModelFormatError, match=needle):
        MLPClassifier.load(folder)


def test_missing_files_are_named(fitted, tmp_path):
    est, _ = fitted["cnn_rnn"]
    folder = est.save(tmp_path / "est")
    (folder / "labels.json").unlink()
    with pytest.raises(ModelFormatError, match=r"est: not a saved seq2labels baseline \(labels.json is missing\)$"):
        CNNRNNClassifier.load(folder)
    with pytest.raises(ModelFormatError, match="folder not found"):
        CNNRNNClassifier.load(tmp_path / "nothing")


def test_unfitted_estimator_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MLPClassifier().save(tmp_path / "est")
    assert not (tmp_path / "est").exists()
