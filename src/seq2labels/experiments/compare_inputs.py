"""What a comparison reads: the data sets (text files or ARFF), SGM result files, earlier tables and
published numbers, each turned into table rows or arrays, with errors that name the file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from seq2labels.errors import ConfigError

from seq2labels.experiments.compare_spec import METRIC_KEYS, _unknown

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
