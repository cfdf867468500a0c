"""What a comparison config may say, checked before anything runs, and the estimators it names.

The method and base-classifier registries are looked up lazily, so a method whose module is
missing is a clear ConfigError, not an ImportError at import time.
"""

from __future__ import annotations

import importlib
from typing import Any


from seq2labels.errors import ConfigError
from seq2labels.evaluation.thresholds import OBJECTIVES


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
METHOD_KEYS = {"name", "label", "params", "tfidf", "thresholds"}  # thresholds: per-label, tuned on 10% of train
CV_KEYS = {"n_splits", "n_repeats", "random_state"}
TFIDF_DEFAULTS = {"sublinear_tf": True, "min_df": 2, "ngram_range": (1, 1)}


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
        thresholds = m.get("thresholds", False)
        if not (isinstance(thresholds, bool) or thresholds in OBJECTIVES):  # true = macro_f1
            raise ConfigError(f"methods[{i}].thresholds: must be true, false, macro_f1 or micro_f1 (the "
                              f"objective; true = macro_f1), got {thresholds!r}")
        specs.append({"name": m["name"], "label": str(m.get("label") or m["name"]), "params": dict(params),
                      "tfidf": dict(tfidf), "thresholds": thresholds})
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
    if spec.get("thresholds"):  # per-label thresholds tuned on a seeded 10% of the training rows, as SGM's
        from seq2labels.baselines.thresholded import ValidationThresholds

        objective = spec["thresholds"] if isinstance(spec["thresholds"], str) else "macro_f1"
        est = ValidationThresholds(est, objective=objective)
    return est
