"""seq2labels.experiments.compare: config validation, text and tabular comparisons, the CLI subcommand."""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from seq2labels.apps.cli import main
from seq2labels.experiments.compare import COLUMNS, METRIC_KEYS, build_estimator, run_comparison, validate_config
from seq2labels.errors import ConfigError
from seq2labels.evaluation.metrics import multilabel_metrics


def _sample(name: str) -> str:
    return str(resources.files("seq2labels") / "samples" / name)


def _text_config() -> dict:
    return {
        "name": "tiny",
        "data": {"train": _sample("goemotions_train.jsonl.gz"), "test": _sample("goemotions_test.jsonl.gz")},
        "tfidf": {"min_df": 2, "max_features": 2000},
        "methods": [
            {"name": "br", "label": "BR (LinearSVC)", "params": {"classifier": {"name": "linear_svc", "C": 0.5}}},
            {"name": "brknn", "params": {"k": 5}},
        ],
    }


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("mutate, needle", [
    (lambda c: c.update(bogus=1), "'bogus'"),
    (lambda c: c["data"].update(trian="x"), "'trian'"),
    (lambda c: c["methods"][0].update(parms={}), "'parms'"),
    (lambda c: c["methods"].append({"name": "svmlight"}), "'svmlight'"),
    (lambda c: c.update(cv={"folds": 3}), "'folds'"),
    (lambda c: c.pop("methods"), "methods"),
    (lambda c: c.update(split="cv"), "cv"),
    (lambda c: c.update(scale="zscore"), "scale"),
])
def test_validation_errors_name_the_key(mutate, needle):
    config = _text_config()
    mutate(config)
    with pytest.raises(ConfigError, match=needle):
        validate_config(config)


def test_bad_params_and_classifier_are_config_errors():
    _, methods = validate_config({**_text_config(), "methods": [{"name": "br", "params": {"nope": 1}}]})
    with pytest.raises(ConfigError, match="nope"):
        build_estimator(methods[0], text=True)
    _, methods = validate_config({**_text_config(), "methods": [{"name": "br", "params": {"classifier": "xgb"}}]})
    with pytest.raises(ConfigError, match="xgb"):
        build_estimator(methods[0], text=True)


def test_missing_estimator_module_is_a_clear_error(monkeypatch):
    import seq2labels.experiments.compare as cmp

    monkeypatch.setitem(cmp.METHODS, "mlp", ("seq2labels.baselines.no_such_module", "MLPBaseline"))
    _, methods = validate_config({**_text_config(), "methods": [{"name": "mlp"}]})
    with pytest.raises(ConfigError, match="mlp.*not available"):
        build_estimator(methods[0], text=True)


# --------------------------------------------------------------------------- text comparison


@pytest.fixture(scope="module")
def tiny_table():
    return run_comparison(_text_config())


def test_text_comparison_writes_all_columns(tiny_table, tmp_path):
    paths = tiny_table.write(tmp_path, "cmp")
    assert [r["method"] for r in tiny_table.rows] == ["BR (LinearSVC)", "brknn"]
    md = paths["md"].read_text()
    for _, header in COLUMNS:
        assert header in md
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 2 and all(k in rows[0] for k in METRIC_KEYS)
    data = json.loads(paths["json"].read_text())
    assert {"command", "git_commit", "machine", "data"} <= set(data["provenance"])
    assert len(data["provenance"]["data"]) == 2
    assert all(len(h) == 64 for h in data["provenance"]["data"].values())
    for row in data["rows"]:
        assert all(isinstance(row[k], float) for k in METRIC_KEYS)
        assert 0 < row["micro_f1"] <= 1


def test_table_metrics_equal_seq2labels_metrics(tiny_table):
    from seq2labels.experiments.compare import _load_text

    config = _text_config()
    Xtr, Ytr, Xte, Yte, _, _ = _load_text(dict(config["data"], name="tiny"), None)
    _, methods = validate_config(config)
    est = build_estimator(methods[0], text=True, tfidf=config["tfidf"]).fit(Xtr, Ytr)
    expected = multilabel_metrics(Yte, est.predict(Xte))
    row = tiny_table.rows[0]
    for k in METRIC_KEYS:
        if k in expected:
            assert row[k] == pytest.approx(expected[k], abs=1e-12), k


def test_include_results_adds_marked_rows(tmp_path):
    result = {"dataset": "tiny", "model": "sgm", "tag": "ge", "test_docs": 10, "train_seconds": 12.5,
              "test": {"beam1": {"micro_f1": 0.5, "docs_per_second": 3.0},
                       "beam5": {**{k: 0.25 for k in METRIC_KEYS}, "docs_per_second": 7.0}}}
    path = tmp_path / "sgm_tiny.json"
    path.write_text(json.dumps(result))
    config = {**_text_config(), "methods": [{"name": "br"}], "include_results": [str(path)]}
    table = run_comparison(config)
    row = table.rows[-1]
    assert row["source"] == str(path) and "sgm-ge" in row["method"] and "beam5" in row["method"]
    assert row["micro_f1"] == 0.25 and row["fit_seconds"] == 12.5 and row["predict_docs_per_s"] == 7.0
    assert str(path) in table.to_markdown()


# --------------------------------------------------------------------------- CLI


def test_cli_compare_end_to_end(tmp_path, capsys):
    import yaml

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(_text_config()))
    out = tmp_path / "out"
    assert main(["compare", str(cfg), "--out", str(out), "-q"]) == 0
    assert {p.name for p in out.iterdir()} == {"compare_tiny.md", "compare_tiny.csv", "compare_tiny.json"}
    assert "micro-F1" in capsys.readouterr().out


def test_cli_compare_config_error_exits_2(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("data: {train: a, test: b}\nmethods: [{name: nosuch}]\n")
    assert main(["compare", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- tabular CV


def _write_arff(path: Path, n: int = 60, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0.3, (X[:, 2] + X[:, 3]) > 0]).astype(int)
    lines = ["@relation synthetic"] + [f"@attribute f{j} numeric" for j in range(4)]
    lines += [f"@attribute lab{j} {{0,1}}" for j in range(3)] + ["@data"]
    lines += [",".join([f"{v:.4f}" for v in x] + [str(v) for v in y]) for x, y in zip(X, Y)]
    path.write_text("\n".join(lines) + "\n")


def test_tabular_cv_comparison(tmp_path):
    arff = tmp_path / "syn.arff"
    _write_arff(arff)
    config = {"name": "syn", "split": "cv", "scale": "maxabs", "cv": {"n_splits": 3, "n_repeats": 2, "random_state": 0},
              "datasets": [{"name": "syn", "arff": str(arff), "n_labels": 3}],
              "methods": [{"name": "br", "params": {"classifier": "logistic_regression"}},
                          {"name": "mlknn", "params": {"k": 5}}]}
    table = run_comparison(config)
    assert [r["dataset"] for r in table.rows] == ["syn", "syn"]
    for row in table.rows:
        assert row["protocol"] == "2x3-fold CV"
        assert all(k + "_std" in row for k in METRIC_KEYS)
    assert table.rows[0]["micro_f1"] > 0.7  # the labels are (near-)linear in X
    assert "±" in table.to_markdown()
    assert list(table.provenance["data"]) == [str(arff)]


def test_tabular_train_test_split(tmp_path):
    _write_arff(tmp_path / "tr.arff", seed=1)
    _write_arff(tmp_path / "te.arff", n=20, seed=2)
    config = {"datasets": [{"name": "syn", "train_arff": str(tmp_path / "tr.arff"),
                            "test_arff": str(tmp_path / "te.arff"), "n_labels": 3}],
              "methods": ["br"]}
    table = run_comparison(config)
    assert table.rows[0]["protocol"] == "train/test (20 test docs)"


def test_arff_list_is_stacked_and_missing_files_fail_first(tmp_path):
    _write_arff(tmp_path / "a.arff", n=30, seed=3)
    _write_arff(tmp_path / "b.arff", n=30, seed=4)
    config = {"split": "cv", "cv": {"n_splits": 3, "n_repeats": 1},
              "datasets": [{"name": "ab", "arff": [str(tmp_path / "a.arff"), str(tmp_path / "b.arff")],
                            "n_labels": 3}],
              "methods": [{"name": "mlknn", "params": {"k": 3}}]}
    table = run_comparison(config)
    assert len(table.provenance["data"]) == 2
    config["datasets"].append({"name": "gone", "arff": str(tmp_path / "missing.arff"), "n_labels": 3})
    with pytest.raises(ConfigError, match="gone.arff: file not found"):
        run_comparison(config)


def test_neural_baselines_run_through_compare():
    """The MLP reads the TF-IDF features like the other methods; the CNNs read the raw texts."""
    from seq2labels.experiments.compare import run_comparison

    config = _text_config()
    config["methods"] = [
        {"name": "mlp", "params": {"hidden": [16], "epochs": 1, "batch_size": 64}},
        {"name": "cnn", "params": {"embedding_dim": 16, "num_filters": 8, "epochs": 1, "max_len": 32}},
        {"name": "cnn_rnn", "params": {"embedding_dim": 16, "num_filters": 8, "decoder_hidden": 16,
                                       "label_embedding_dim": 8, "epochs": 1, "max_len": 32}},
    ]
    table = run_comparison(config)
    assert len(table.rows) == 3
    assert all(0.0 <= row["micro_f1"] <= 1.0 for row in table.rows)


# --------------------------------------------------------------------------- published rows


PUBLISHED_YAML = """
sources:
  paper_a: {cite: "A et al. 2001", reference: "A, B. A paper. Journal 1(1), 2001.", protocol: "10-fold CV"}
entries:
  - {source: paper_a, table: "Table 3", dataset: tiny, method: "BR (J48)", metric: hamming_loss, value: 0.25}
  - {source: paper_a, table: "Table 3", dataset: tiny, method: "BR (J48)", metric: micro_f1, value: 0.5, std: 0.01}
  - {source: paper_a, table: "Table 3", dataset: tiny, method: "ML-kNN", metric: micro_f1, value: 0.75}
  - {source: paper_a, table: "Table 3", dataset: other_set, method: "ML-kNN", metric: micro_f1, value: 0.1}
"""


def test_published_rows_are_appended_and_marked(tmp_path):
    path = tmp_path / "published.yaml"
    path.write_text(PUBLISHED_YAML)
    _write_arff(tmp_path / "tiny.arff", n=30)
    config = {"split": "cv", "cv": {"n_splits": 3, "n_repeats": 1},
              "datasets": [{"name": "tiny", "arff": str(tmp_path / "tiny.arff"), "n_labels": 3}],
              "methods": [{"name": "mlknn", "params": {"k": 3}}], "published": str(path)}
    table = run_comparison(config)
    measured, *published = table.rows
    assert measured["source"] == "" and len(published) == 2          # other_set is not in this table
    br, knn = published
    assert br["method"] == "BR (J48)" and br["source"] == "published (A et al. 2001, Table 3)"
    assert br["protocol"] == "10-fold CV" and br["hamming_loss"] == 0.25
    assert br["micro_f1"] == 0.5 and br["micro_f1_std"] == 0.01 and "macro_f1" not in br
    assert knn["micro_f1"] == 0.75
    md = table.to_markdown()
    assert "published (A et al. 2001, Table 3)" in md and "0.5000 ± 0.0100" in md


@pytest.mark.parametrize("mutate, needle", [
    (lambda t: t.replace("metric: micro_f1, value: 0.75", "metric: one_error, value: 0.75"),
     r"entries\[2\]: metric 'one_error' is not a table metric"),
    (lambda t: t.replace("value: 0.25", "value: 25"), r"entries\[0\]: value must be a number in \[0, 1\]"),
    (lambda t: t.replace("source: paper_a, table: \"Table 3\", dataset: tiny, method: \"ML-kNN\"",
                         "source: paper_b, table: \"Table 3\", dataset: tiny, method: \"ML-kNN\""),
     r"entries\[2\]: unknown source 'paper_b'"),
    (lambda t: t.replace("protocol: \"10-fold CV\"", "year: 2001"), r"sources.paper_a: needs 'cite' and 'protocol'"),
    (lambda t: t.replace("metric: hamming_loss", "metric: micro_f1"), r"entries\[1\]: micro_f1 given twice"),
])
def test_published_file_errors_name_file_and_entry(tmp_path, mutate, needle):
    from seq2labels.experiments.compare import published_rows

    path = tmp_path / "published.yaml"
    path.write_text(mutate(PUBLISHED_YAML))
    with pytest.raises(ConfigError, match=needle) as err:
        published_rows(path, ["tiny"])
    assert str(path) in str(err.value)


def test_published_key_must_name_files():
    with pytest.raises(ConfigError, match="published"):
        validate_config({**_text_config(), "published": {"file": "x"}})


def test_include_tables_reads_only_measured_rows_of_the_tables_data_sets(tmp_path):
    import json as _json

    from seq2labels.experiments.compare import _table_rows

    earlier = {"rows": [{"dataset": "a", "method": "BR", "source": "", "micro_f1": 0.5},
                        {"dataset": "a", "method": "sgm [beam5]", "source": "sgm_a.json", "micro_f1": 0.6},
                        {"dataset": "b", "method": "BR", "source": "", "micro_f1": 0.4}],
               "provenance": {"git_commit": "0123456789abcdef"}}
    path = tmp_path / "compare_a.json"
    path.write_text(_json.dumps(earlier), encoding="utf-8")
    rows = _table_rows(path, ["a"])
    assert [(r["dataset"], r["method"], r["micro_f1"]) for r in rows] == [("a", "BR", 0.5)]
    assert rows[0]["source"] == "compare_a.json (commit 0123456)"
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    with pytest.raises(Exception, match="no 'rows'"):
        _table_rows(tmp_path / "bad.json", ["a"])


def test_a_method_can_override_the_tfidf_options():
    from seq2labels.experiments.compare import build_estimator, validate_config

    config = {"data": {"train": "t.jsonl", "test": "s.jsonl"}, "tfidf": {"ngram_range": [1, 2], "min_df": 2},
              "methods": [{"name": "br"}, {"name": "mlp", "tfidf": {"ngram_range": [1, 1], "max_features": 50}}]}
    _, methods = validate_config(config)
    vectorizers = [build_estimator(m, True, {**config["tfidf"], **m["tfidf"]}).steps[0][1] for m in methods]
    assert vectorizers[0].ngram_range == (1, 2) and vectorizers[0].max_features is None
    assert vectorizers[1].ngram_range == (1, 1) and vectorizers[1].max_features == 50 and vectorizers[1].min_df == 2
    with pytest.raises(ConfigError, match=r"methods\[0\].tfidf"):
        validate_config({**config, "methods": [{"name": "br", "tfidf": [1]}]})


def test_a_partial_table_is_handed_over_after_every_method():
    seen = []
    table = run_comparison(_text_config(), on_row=lambda t: seen.append([r["method"] for r in t.rows]))
    measured = [r["method"] for r in table.rows if not r.get("source")]
    assert seen == [measured[: i + 1] for i in range(len(measured))]


def test_thresholds_option_wraps_the_method_and_is_checked():
    from seq2labels.baselines.thresholded import ValidationThresholds

    config = _text_config()
    config["methods"][0]["thresholds"] = True
    _, methods = validate_config(config)
    assert methods[0]["thresholds"] is True and methods[1]["thresholds"] is False
    assert isinstance(build_estimator(methods[0], text=True, tfidf=config["tfidf"]), ValidationThresholds)
    assert not isinstance(build_estimator(methods[1], text=True, tfidf=config["tfidf"]), ValidationThresholds)
    assert build_estimator(methods[0], text=True, tfidf=config["tfidf"]).objective == "macro_f1"
    config["methods"][0]["thresholds"] = "micro_f1"
    _, methods = validate_config(config)
    assert build_estimator(methods[0], text=True, tfidf=config["tfidf"]).objective == "micro_f1"
    for bad in ("yes", 1):
        config["methods"][0]["thresholds"] = bad
        with pytest.raises(ConfigError, match=r"methods\[0\].thresholds: must be true, false, macro_f1 or micro_f1"):
            validate_config(config)


def test_thresholded_baseline_fits_and_predicts_on_texts():
    from seq2labels.experiments.compare import _load_text

    config = _text_config()
    config["methods"][0]["thresholds"] = True
    Xtr, Ytr, Xte, Yte, _, _ = _load_text(dict(config["data"], name="tiny"), None)
    _, methods = validate_config(config)
    est = build_estimator(methods[0], text=True, tfidf=config["tfidf"]).fit(Xtr[:600], Ytr[:600])
    pred = est.predict(Xte[:100])
    assert pred.shape == (100, Ytr.shape[1]) and set(np.unique(pred)) <= {0, 1}
    assert est.thresholds_.shape == (Ytr.shape[1],)
