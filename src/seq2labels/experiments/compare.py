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
import csv
import importlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seq2labels.errors import ConfigError, Seq2LabelsError
from seq2labels.utils.provenance import provenance

__all__ = ["run_comparison", "ComparisonTable", "COLUMNS", "METHODS", "validate_config", "provenance"]

# (key, header) of the table, in the SGM paper's Table 2 order, then extras.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("hamming_loss", "HL(-)"),
    ("micro_precision", "micro-P(+)"),
    ("micro_recall", "micro-R(+)"),
    ("micro_f1", "micro-F1(+)"),
    ("macro_f1", "macro-F1(+)"),
    ("subset_accuracy", "subset acc.(+)"),
    ("example_f1", "example-F1(+)"),
    ("fit_seconds", "train s"),
    ("predict_docs_per_s", "predict docs/s"),
)
METRIC_KEYS = tuple(k for k, _ in COLUMNS)

# name -> (module, class); looked up lazily so a method whose module is missing gives a clear error.
METHODS: dict[str, tuple[str, str]] = {
    "br": ("seq2labels.baselines", "BinaryRelevance"),
    "cc": ("seq2labels.baselines", "ClassifierChain"),
    "ecc": ("seq2labels.baselines", "EnsembleClassifierChains"),
    "lp": ("seq2labels.baselines", "LabelPowerset"),
    "rakel": ("seq2labels.baselines", "RAkEL"),
    "mlknn": ("seq2labels.baselines", "MLkNN"),
    "brknn": ("seq2labels.baselines", "BRkNN"),
    # neural baselines: the MLPs read TF-IDF features like the others; the CNNs take raw texts
    "mlp": ("seq2labels.baselines.neural", "MLPClassifier"),
    "cnn": ("seq2labels.baselines.neural", "KimCNNClassifier"),
    "cnn_rnn": ("seq2labels.baselines.neural", "CNNRNNClassifier"),
}
RAW_TEXT_METHODS = frozenset({"cnn", "cnn_rnn"})
CLASSIFIER_METHODS = frozenset({"br", "cc", "ecc", "lp", "rakel"})

BASE_CLASSIFIERS: dict[str, tuple[str, str]] = {
    "linear_svc": ("sklearn.svm", "LinearSVC"),
    "logistic_regression": ("sklearn.linear_model", "LogisticRegression"),
    "logreg": ("sklearn.linear_model", "LogisticRegression"),
    "ridge": ("sklearn.linear_model", "RidgeClassifier"),
    "decision_tree": ("sklearn.tree", "DecisionTreeClassifier"),
    "svc": ("sklearn.svm", "SVC"),
}

TOP_KEYS = {"name", "data", "datasets", "split", "cv", "tfidf", "fallback_top1", "methods", "include_results",
            "sgm_decode", "scale", "published", "include_tables"}
TEXT_DATA_KEYS = {"train", "test", "format", "encoding_errors"}
TABULAR_DATA_KEYS = {"arff", "train_arff", "test_arff", "xml", "n_labels"}
METHOD_KEYS = {"name", "label", "params", "tfidf"}
CV_KEYS = {"n_splits", "n_repeats", "random_state"}
TFIDF_DEFAULTS = {"sublinear_tf": True, "min_df": 2, "ngram_range": (1, 1)}


# --------------------------------------------------------------------------- table


@dataclass
class ComparisonTable:
    """Rows of ``{dataset, method, source, protocol, <METRIC_KEYS>}`` (+ ``*_std`` for CV)."""

    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def _fmt(self, key: str, value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if key == "predict_docs_per_s":
            return f"{value:.0f}"
        if key == "fit_seconds":
            return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
        return f"{value:.4f}"

    def to_markdown(self) -> str:
        lines = [f"# Comparison: {self.name}", ""]
        head = ["data set", "method", *[h for _, h in COLUMNS], "protocol", "source"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * len(COLUMNS) + "---|---|"]
        for r in self.rows:
            cells = [r["dataset"], r["method"]]
            for k, _ in COLUMNS:
                cell = self._fmt(k, r.get(k))
                std = r.get(k + "_std")
                if cell and std is not None and k not in ("fit_seconds", "predict_docs_per_s"):
                    cell += f" ± {std:.4f}"
                cells.append(cell)
            cells += [r.get("protocol", ""), r.get("source", "")]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines += ["", "(-) lower is better, (+) higher is better. Rows with a source file are read from "
                  "that result file, not re-run.", ""]
        return "\n".join(lines)

    def to_csv(self) -> str:
        buf = io.StringIO()
        keys = ["dataset", "method", *METRIC_KEYS, *(k + "_std" for k in METRIC_KEYS), "protocol", "source"]
        writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: r.get(k, "") for k in keys})
        return buf.getvalue()

    def to_dict(self) -> dict:
        return {"name": self.name, "columns": dict(COLUMNS), "rows": self.rows, "config": self.config,
                "provenance": self.provenance}

    def write(self, folder: str | Path, stem: str) -> dict[str, Path]:
        """Write ``stem.md``, ``stem.csv`` and ``stem.json`` into ``folder``; return their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"md": folder / f"{stem}.md", "csv": folder / f"{stem}.csv", "json": folder / f"{stem}.json"}
        paths["md"].write_text(self.to_markdown(), encoding="utf-8")
        paths["csv"].write_text(self.to_csv(), encoding="utf-8")
        paths["json"].write_text(json.dumps(self.to_dict(), indent=1, default=_json_default) + "\n",
                                 encoding="utf-8")
        return paths


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    return str(obj)


# --------------------------------------------------------------------------- validation


def _unknown(keys, allowed, where: str) -> None:
    extra = sorted(set(keys) - set(allowed))
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, extra))}; allowed: "
                          f"{', '.join(sorted(allowed))}")


def _datasets(config: dict) -> list[dict]:
    if ("data" in config) == ("datasets" in config):
        raise ConfigError("config: give exactly one of 'data' (one data set) or 'datasets' (a list)")
    if "data" in config:
        items = [{"name": config.get("name", "data"), **config["data"]}] \
            if isinstance(config["data"], dict) else None
        where = "data"
    else:
        items = config["datasets"] if isinstance(config["datasets"], list) else None
        where = "datasets"
    if not items:
        raise ConfigError(f"{where}: must be a mapping ('data') or a non-empty list of mappings ('datasets')")
    out = []
    for i, d in enumerate(items):
        w = where if where == "data" else f"datasets[{i}]"
        if not isinstance(d, dict):
            raise ConfigError(f"{w}: must be a mapping")
        _unknown(d, TEXT_DATA_KEYS | TABULAR_DATA_KEYS | {"name", "split"}, w)
        is_text = bool(set(d) & {"train", "test"})
        is_tab = bool(set(d) & {"arff", "train_arff", "test_arff"})
        if is_text == is_tab:
            raise ConfigError(f"{w}: give text files ('train' and 'test') or tabular ones ('arff', or "
                              "'train_arff' and 'test_arff'), not both or neither")
        d = dict(d)
        d.setdefault("name", f"data{i}")
        d["kind"] = "text" if is_text else "tabular"
        split = d.get("split", config.get("split", "train_test" if is_text or "arff" not in d else "cv"))
        if split not in ("cv", "train_test"):
            raise ConfigError(f"split: must be 'cv' or 'train_test'; got {split!r}")
        if is_text:
            if split == "cv":
                raise ConfigError(f"{w}: split 'cv' is for tabular (ARFF) data; text data use train/test")
            for k in ("train", "test"):
                if k not in d:
                    raise ConfigError(f"{w}: missing key '{k}'")
        elif split == "cv" and "arff" not in d:
            raise ConfigError(f"{w}: split 'cv' needs key 'arff'")
        elif split == "train_test" and not ("train_arff" in d and "test_arff" in d):
            raise ConfigError(f"{w}: split 'train_test' needs keys 'train_arff' and 'test_arff'")
        d["split"] = split
        out.append(d)
    return out


def _method_specs(config: dict) -> list[dict]:
    methods = config.get("methods")
    if not isinstance(methods, list) or not methods:
        raise ConfigError("methods: must be a non-empty list of {name: ..., params: {...}}")
    specs = []
    for i, m in enumerate(methods):
        if isinstance(m, str):
            m = {"name": m}
        if not isinstance(m, dict) or "name" not in m:
            raise ConfigError(f"methods[{i}]: must be a mapping with a 'name'")
        _unknown(m, METHOD_KEYS, f"methods[{i}]")
        if m["name"] not in METHODS:
            raise ConfigError(f"methods[{i}]: unknown method {m['name']!r}; known: {', '.join(METHODS)}")
        params = m.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"methods[{i}].params: must be a mapping")
        tfidf = m.get("tfidf") or {}
        if not isinstance(tfidf, dict):
            raise ConfigError(f"methods[{i}].tfidf: must be a mapping of TfidfVectorizer options")
        specs.append({"name": m["name"], "label": str(m.get("label") or m["name"]), "params": dict(params),
                      "tfidf": dict(tfidf)})
    return specs


def validate_config(config: Any) -> tuple[list[dict], list[dict]]:
    """Check keys and values; return (data set specs, method specs) or raise ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError("config: must be a mapping")
    _unknown(config, TOP_KEYS, "config")
    cv = config.get("cv") or {}
    if not isinstance(cv, dict):
        raise ConfigError("cv: must be a mapping")
    _unknown(cv, CV_KEYS, "cv")
    tfidf = config.get("tfidf") or {}
    if not isinstance(tfidf, dict):
        raise ConfigError("tfidf: must be a mapping of TfidfVectorizer options")
    if config.get("scale") not in (None, "maxabs", "standard"):
        raise ConfigError(f"scale: must be null, 'maxabs' or 'standard'; got {config.get('scale')!r}")
    for key, what in (("include_results", "result JSON files"), ("include_tables", "comparison JSON files")):
        if not isinstance(config.get(key) or [], list):
            raise ConfigError(f"{key}: must be a list of {what}")
    published = config.get("published")
    if published is not None and not (isinstance(published, str) or (
            isinstance(published, list) and all(isinstance(p, str) for p in published))):
        raise ConfigError("published: must be a YAML file of published results (or a list of them)")
    return _datasets(config), _method_specs(config)


# --------------------------------------------------------------------------- building estimators


def _import(module: str, attr: str, what: str):
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{what}: not available ({module} cannot be imported: {exc})") from None
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise ConfigError(f"{what}: not available ({module} has no {attr})") from None


def _base_classifier(spec: Any, where: str):
    if isinstance(spec, str):
        name, kw = spec, {}
    elif isinstance(spec, dict) and "name" in spec:
        kw = {k: v for k, v in spec.items() if k != "name"}
        name = spec["name"]
    else:
        raise ConfigError(f"{where}: must be a classifier name or {{name: ..., <options>}}")
    if name not in BASE_CLASSIFIERS:
        raise ConfigError(f"{where}: unknown classifier {name!r}; known: {', '.join(BASE_CLASSIFIERS)}")
    cls = _import(*BASE_CLASSIFIERS[name], f"{where} {name!r}")
    try:
        return cls(**kw)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def build_estimator(spec: dict, text: bool, tfidf: dict | None = None, scale: str | None = None):
    """The estimator of one method spec; a TF-IDF pipeline around it for text data (not for the
    neural methods, which take raw texts); for tabular data a scaler before it if ``scale``."""
    where = f"method {spec['label']!r}"
    cls = _import(*METHODS[spec["name"]], f"method {spec['name']!r}")
    params = dict(spec["params"])
    if "classifier" in params:
        if spec["name"] not in CLASSIFIER_METHODS:
            raise ConfigError(f"{where}: params key 'classifier' is only for {', '.join(sorted(CLASSIFIER_METHODS))}")
        params["classifier"] = _base_classifier(params["classifier"], f"{where}: params.classifier")
    try:
        est = cls(**params)
    except TypeError as exc:
        raise ConfigError(f"{where}: bad params: {exc}") from None
    if text and spec["name"] not in RAW_TEXT_METHODS:
        from seq2labels.baselines import text_pipeline

        kw = dict(TFIDF_DEFAULTS)
        kw.update(tfidf or {})
        if "ngram_range" in kw:
            kw["ngram_range"] = tuple(kw["ngram_range"])
        try:
            from sklearn.feature_extraction.text import TfidfVectorizer

            TfidfVectorizer(**kw)
        except TypeError as exc:
            raise ConfigError(f"tfidf: {exc}") from None
        est = text_pipeline(est, **kw)
    elif not text and scale:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import MaxAbsScaler, StandardScaler

        est = make_pipeline(MaxAbsScaler() if scale == "maxabs" else StandardScaler(with_mean=False), est)
    return est


# --------------------------------------------------------------------------- data


def _resolve(path: Any, base: Path | None, where: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"{where}: must be a file path")
    p = Path(path)
    if p.is_absolute() or p.exists() or base is None:
        return p
    alt = base / p
    return alt if alt.exists() else p


def _load_text(d: dict, base: Path | None):
    from seq2labels.data.readers import read_examples

    paths = {k: _resolve(d[k], base, f"{d['name']}.{k}") for k in ("train", "test")}
    kw = {"encoding_errors": d.get("encoding_errors", "strict")}
    train = read_examples(paths["train"], d.get("format"), **kw)
    test = read_examples(paths["test"], d.get("format"), **kw)
    names = sorted({lab for ex in train for lab in ex.labels} | {lab for ex in test for lab in ex.labels})
    col = {n: j for j, n in enumerate(names)}

    def matrix(examples):
        Y = np.zeros((len(examples), len(names)), dtype=np.uint8)
        for i, ex in enumerate(examples):
            for lab in ex.labels:
                Y[i, col[lab]] = 1
        return Y

    return ([ex.text for ex in train], matrix(train), [ex.text for ex in test], matrix(test), names,
            [paths["train"], paths["test"]])


def _data_paths(d: dict, base: Path | None) -> list[Path]:
    """Every file a data set spec names (resolved), so missing ones fail before any method runs."""
    paths = []
    for key in ("train", "test", "arff", "train_arff", "test_arff", "xml"):
        if d.get(key) is None:
            continue
        for i, item in enumerate(d[key] if isinstance(d[key], list) else [d[key]]):
            p = _resolve(item, base, f"{d['name']}.{key}")
            if not p.is_file():
                raise ConfigError(f"{d['name']}.{key}: file not found: {p}")
            paths.append(p)
    return paths


def _load_arff(d: dict, key: str, base: Path | None):
    """Read ``d[key]`` (one ARFF file, or a list of them stacked row-wise, e.g. Mulan's train +
    test files for cross-validation)."""
    import scipy.sparse as sp

    from seq2labels.data.tabular import read_arff
    from seq2labels.data.validation import check_finite_features

    items = d[key] if isinstance(d[key], list) else [d[key]]
    paths = [_resolve(p, base, f"{d['name']}.{key}") for p in items]
    xml = _resolve(d["xml"], base, f"{d['name']}.xml") if d.get("xml") else None
    parts = [read_arff(p, n_labels=d.get("n_labels"), xml=xml) for p in paths]
    for part, p in zip(parts, paths):
        check_finite_features(part.X, str(p), part.feature_names)
    data = parts[0]
    if len(parts) > 1:
        if any(p.label_names != data.label_names or p.feature_names != data.feature_names for p in parts):
            raise ConfigError(f"{d['name']}.{key}: the ARFF files differ in their features or labels")
        Xs = [p.X for p in parts]
        X = sp.vstack([sp.csr_matrix(x) for x in Xs]).tocsr() if any(sp.issparse(x) for x in Xs) \
            else np.vstack(Xs)
        data.X, data.Y = X, np.vstack([p.Y for p in parts])
    return data, paths + ([xml] if xml else [])


# --------------------------------------------------------------------------- SGM rows


def _result_rows(path: Path, decode: str) -> list[dict]:
    from seq2labels.errors import DataFormatError

    try:
        res = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"cannot read result file: {exc}", path=path) from None
    test = res.get("test") if isinstance(res, dict) else None
    if not isinstance(test, dict) or not test:
        raise DataFormatError("result file has no 'test' metrics", path=path)
    key = decode if decode in test else next(iter(test))
    m = test[key]
    tag = res.get("tag") or ""
    row = {"dataset": res.get("dataset", "?"), "method": f"{res.get('model', 'sgm')}{'-' + tag if tag else ''} "
           f"[{key}]", "protocol": f"train/test ({res.get('test_docs', '?')} test docs)", "source": str(path)}
    for k in METRIC_KEYS:
        row[k] = m.get(k)
    row["fit_seconds"] = res.get("train_seconds")
    row["predict_docs_per_s"] = m.get("docs_per_second")
    return [row]


def _table_rows(path: Path, dataset_names: list[str]) -> list[dict]:
    """The measured rows of an earlier comparison (its JSON) for these data sets, so that slow methods
    need not be re-run; each keeps the earlier run's protocol and names that file and commit as source."""
    from seq2labels.errors import DataFormatError

    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"cannot read comparison file: {exc}", path=path) from None
    rows = table.get("rows") if isinstance(table, dict) else None
    if not isinstance(rows, list):
        raise DataFormatError("comparison file has no 'rows'", path=path)
    commit = str((table.get("provenance") or {}).get("git_commit", "?"))[:7]
    return [{**row, "source": f"{path.name} (commit {commit})"} for row in rows
            if isinstance(row, dict) and not row.get("source") and row.get("dataset") in dataset_names]


# --------------------------------------------------------------------------- published rows

PUBLISHED_ENTRY_KEYS = {"source", "table", "dataset", "method", "metric", "metric_in_source", "value", "std",
                        "protocol", "note"}
PUBLISHED_SOURCE_KEYS = {"cite", "reference", "url", "protocol", "note"}


def published_rows(path: Path, dataset_names: list[str]) -> list[dict]:
    """Rows of published numbers (see benchmarks/published/mulan.yaml) for the table's data sets.

    One row per (source, table, data set, method), holding every metric given for it; the row's
    source reads ``published (<cite>, <table>)`` so it is never mistaken for a measured row.
    Entries for data sets not in the table are skipped.
    """
    from seq2labels.pipeline.config import read_yaml

    doc = read_yaml(path)
    where = str(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), dict) or not isinstance(doc.get("entries"), list):
        raise ConfigError(f"{where}: expected a mapping with 'sources' (a mapping) and 'entries' (a list)")
    _unknown(doc, {"sources", "entries", "note"}, where)
    for key, src in doc["sources"].items():
        if not isinstance(src, dict) or not src.get("cite") or not src.get("protocol"):
            raise ConfigError(f"{where}: sources.{key}: needs 'cite' and 'protocol'")
        _unknown(src, PUBLISHED_SOURCE_KEYS, f"{where}: sources.{key}")
    rows: dict[tuple, dict] = {}
    for i, e in enumerate(doc["entries"]):
        w = f"{where}: entries[{i}]"
        if not isinstance(e, dict):
            raise ConfigError(f"{w}: must be a mapping")
        _unknown(e, PUBLISHED_ENTRY_KEYS, w)
        missing = [k for k in ("source", "table", "dataset", "method", "metric", "value") if k not in e]
        if missing:
            raise ConfigError(f"{w}: missing key(s) {', '.join(missing)}")
        if e["source"] not in doc["sources"]:
            raise ConfigError(f"{w}: unknown source {e['source']!r}; sources: {', '.join(doc['sources'])}")
        if e["metric"] not in METRIC_KEYS or e["metric"] in ("fit_seconds", "predict_docs_per_s"):
            raise ConfigError(f"{w}: metric {e['metric']!r} is not a table metric; one of "
                              f"{', '.join(k for k in METRIC_KEYS if k not in ('fit_seconds', 'predict_docs_per_s'))}")
        for k in ("value", "std"):
            v = e.get(k)
            if k in e and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1):
                raise ConfigError(f"{w}: {k} must be a number in [0, 1]; got {v!r}")
        if e["dataset"] not in dataset_names:
            continue
        src = doc["sources"][e["source"]]
        key = (e["source"], str(e["table"]), e["dataset"], str(e["method"]))
        row = rows.setdefault(key, {"dataset": e["dataset"], "method": str(e["method"]),
                                    "protocol": str(e.get("protocol") or src["protocol"]),
                                    "source": f"published ({src['cite']}, {e['table']})"})
        if e["metric"] in row:
            raise ConfigError(f"{w}: {e['metric']} given twice for {e['method']!r} on {e['dataset']!r}")
        row[e["metric"]] = float(e["value"])
        if "std" in e:
            row[e["metric"] + "_std"] = float(e["std"])
    return list(rows.values())


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
