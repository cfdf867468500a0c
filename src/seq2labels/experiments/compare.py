"""Compare multi-label methods on one or more data sets and write a table (Markdown, CSV, JSON).

A comparison is described by a mapping (usually read from YAML)::

    name: reuters21578                  # optional; names the table
    data:                               # one data set, or `datasets: [{name: .., <data keys>}, ...]`
      train: ../shared/data/reuters21578/train.jsonl.gz   # text: train/test files (JSONL, TSV, fastText)
      test: ../shared/data/reuters21578/test.jsonl.gz
      # tabular instead: arff: FILE or [FILE, ...] (split: cv) or train_arff/test_arff (split: train_test); xml: FILE
    split: train_test                   # or cv (tabular only); text data sets are always train/test
    cv: {n_splits: 10, n_repeats: 3, random_state: 0}
    tfidf: {sublinear_tf: true, min_df: 2, ngram_range: [1, 2]}   # text only
    fallback_top1: false
    scale: maxabs                       # tabular only: put a MaxAbsScaler before every method (or null)
    methods:
      - name: br                        # br | cc | ecc | lp | rakel | mlknn | brknn | mlp | cnn | cnn_rnn
        label: BR (LinearSVC)           # optional row label
        params: {classifier: linear_svc, classifier_params: {C: 1.0}}
    include_results: [benchmarks/results/sgm_reuters21578-sgm.json]   # optional SGM rows
    sgm_decode: beam5                   # which decode of those files to show (default beam5)
    published: benchmarks/published/mulan.yaml   # optional: published numbers, rows marked "published (...)"

Relative paths are looked up from the current directory first, then from the config file's
folder. Text methods run inside :func:`seq2labels.baselines.text_pipeline`; the metrics are
:func:`seq2labels.evaluation.metrics.multilabel_metrics`, the same code that scores SGM.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from seq2labels.errors import ConfigError, Seq2LabelsError
from seq2labels.experiments.compare_inputs import (  # noqa: F401  (re-exported)
    _data_paths,
    _load_arff,
    _load_text,
    _resolve,
    _result_rows,
    _table_rows,
    published_rows,
)
from seq2labels.experiments.compare_spec import (  # noqa: F401  (re-exported: the config schema)
    COLUMNS,
    METHODS,
    METRIC_KEYS,
    build_estimator,
    validate_config,
)
from seq2labels.experiments.compare_table import ComparisonTable
from seq2labels.utils.provenance import provenance

__all__ = ["run_comparison", "ComparisonTable", "COLUMNS", "METHODS", "validate_config", "provenance"]


# --------------------------------------------------------------------------- running

def _metrics_row(metrics: dict) -> dict:
    return {k: float(metrics[k]) for k in METRIC_KEYS}


@contextlib.contextmanager
def _method_errors(dataset: str, method: str):
    """A method refusing its parameters or this data (k larger than the data set, ...) raises
    ValueError inside fit; the CLI shows it as one line naming the data set and the method."""
    try:
        yield
    except Seq2LabelsError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{dataset}: method {method!r}: {exc}") from exc


def run_comparison(config: dict, *, config_path: str | Path | None = None, log=None,
                   on_row=None) -> ComparisonTable:
    """Run every method of ``config`` on every data set; return the table (see the module docstring).

    ``on_row(table)`` is called after each measured row, so a long comparison can save what it has
    (the table then lists only the finished methods)."""
    from seq2labels.evaluation.protocols import cross_validate, train_test_evaluate

    datasets, methods = validate_config(config)
    base = Path(config_path).resolve().parent if config_path else None
    tfidf = config.get("tfidf") or {}
    cv = {"n_splits": 10, "n_repeats": 3, "random_state": 0, **(config.get("cv") or {})}
    fallback = bool(config.get("fallback_top1", False))
    table = ComparisonTable(name=str(config.get("name") or datasets[0]["name"]), config=config)
    data_files: list[Path] = []
    for d in datasets:
        _data_paths(d, base)
    for d in datasets:
        text = d["kind"] == "text"
        if text:
            Xtr, Ytr, Xte, Yte, names, files = _load_text(d, base)
        elif d["split"] == "cv":
            data, files = _load_arff(d, "arff", base)
            X, Y, names = data.X, data.Y, data.label_names
        else:
            tr, files = _load_arff(d, "train_arff", base)
            te, files2 = _load_arff(d, "test_arff", base)
            Xtr, Ytr, Xte, Yte, names = tr.X, tr.Y, te.X, te.Y, tr.label_names
            files += [f for f in files2 if f not in files]
        data_files += [f for f in files if f not in data_files]
        for spec in methods:
            est = build_estimator(spec, text, {**tfidf, **spec.get("tfidf", {})}, config.get("scale"))
            if log:
                log(f"{d['name']}: {spec['label']} ...")
            start = time.perf_counter()
            row = {"dataset": d["name"], "method": spec["label"], "source": ""}
            if d["split"] == "cv":
                with _method_errors(d["name"], spec["label"]):
                    res = cross_validate(est, X, Y, fallback_top1=fallback, **cv)
                summary = res.summary()
                for k in METRIC_KEYS:
                    row[k], row[k + "_std"] = summary[k]
                row["protocol"] = f"{cv['n_repeats']}x{cv['n_splits']}-fold CV"
            else:
                with _method_errors(d["name"], spec["label"]):
                    res = train_test_evaluate(est, Xtr, Ytr, Xte, Yte, label_names=names, fallback_top1=fallback)
                row.update(_metrics_row(res.metrics))
                row["protocol"] = f"train/test ({len(Yte)} test docs)"
            row["wall_seconds"] = time.perf_counter() - start
            if log:
                log(f"{d['name']}: {spec['label']}: micro-F1 {row['micro_f1']:.4f} ({row['wall_seconds']:.1f}s)")
            table.rows.append(row)
            if on_row is not None:
                table.provenance = provenance(data_files)
                on_row(table)
    decode = str(config.get("sgm_decode", "beam5"))
    for p in config.get("include_results") or []:
        table.rows.extend(_result_rows(_resolve(p, base, "include_results"), decode))
    for p in config.get("include_tables") or []:
        table.rows.extend(_table_rows(_resolve(p, base, "include_tables"), [d["name"] for d in datasets]))
    published = config.get("published") or []
    for p in [published] if isinstance(published, str) else published:
        table.rows.extend(published_rows(_resolve(p, base, "published"), [d["name"] for d in datasets]))
    table.provenance = provenance(data_files)
    return table


def compare_to_files(config_path: str | Path, out: str | Path, *, stem: str | None = None, quiet: bool = False):
    """``seq2labels compare``: run the comparison YAML and write ``<stem>.md/.csv/.json`` under ``out``.

    ``<stem>.partial.*`` is rewritten after every finished method, so a long run can be watched
    and its finished rows survive a crash; it is removed once the table is complete."""
    import logging

    from seq2labels.pipeline.config import read_yaml

    config = read_yaml(config_path)
    default_stem = f"compare_{config.get('name') or 'table'}"
    partial = f"{stem or default_stem}.partial"
    table = run_comparison(config, config_path=config_path, log=None if quiet else logging.getLogger("seq2labels").info,
                           on_row=lambda t: t.write(out, partial))
    paths = table.write(out, stem or f"compare_{table.name}")
    for suffix in (".md", ".csv", ".json"):
        (Path(out) / f"{partial}{suffix}").unlink(missing_ok=True)
    return table, paths
