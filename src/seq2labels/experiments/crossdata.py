"""Cross-data-set evaluation: score a model trained on data set A on data set B.

The two label sets rarely agree. Labels are matched into one *shared* label space, named
after data set B's labels:

* by name (``match="name"``), by name ignoring case (``"casefold"``), or not at all (``"none"``);
* and through a mapping file (``model_label -> data_label``, many-to-one allowed, e.g.
  ``wheat -> grain`` and ``corn -> grain``). A mapping row takes precedence over name matching
  for the model label it names.

Then, per document:

* predicted labels outside the shared set are dropped; mapped ones are renamed (a label emitted
  twice after renaming keeps its first position);
* gold labels outside the shared set are dropped;
* documents left with no gold label are dropped (``keep_unlabelled=True`` keeps them; they
  then score as documents whose every predicted label is a false positive).

Metrics come from :func:`seq2labels.evaluation.metrics.evaluate_label_lists` over the shared labels only,
and the report says how many labels (model-only, data-only, shared) and documents were dropped.
For a LabelGenerator the gold lists are put in the model's training order first (a merged label
takes the earliest rank of the model labels mapped to it), as ``seq2labels evaluate`` does, so
with every label shared the numbers, label position deviation included, equal plain evaluation.

Mapping file formats (chosen by extension: ``.json`` is JSON, anything else is TSV)::

    # TSV: one "model_label<TAB>data_label" row per line; blank lines and lines starting
    # with '#' are ignored; an optional first line "model_label<TAB>data_label" is a header.
    wheat	grain
    corn	grain

    {"wheat": "grain", "corn": "grain"}          # JSON: one object, model label -> data label

Every mapping row must name a label the model knows and a label the data holds; a row that
does not, a malformed row, or a model label mapped twice is an error naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seq2labels.errors import ConfigError, DataFormatError
from seq2labels.evaluation.metrics import evaluate_label_lists

__all__ = [
    "MATCH_MODES",
    "LabelMapping",
    "LabelAlignment",
    "CrossDataReport",
    "read_label_map",
    "align_labels",
    "restrict_to_shared",
    "cross_evaluate",
    "evaluate_generator",
    "evaluate_estimator",
    "indicator_to_label_lists",
]

MATCH_MODES = ("name", "casefold", "none")
_TSV_HEADER = ("model_label", "data_label")
# How many dropped label names the report spells out per side before it only counts them.
_MAX_LISTED = 50


# --------------------------------------------------------------------------- mapping files


@dataclass(frozen=True)
class LabelMapping:
    """``model label -> data label`` rows of a mapping file, each with the line it came from."""

    pairs: dict[str, str]
    lines: dict[str, int] = field(default_factory=dict)
    path: str | None = None

    @classmethod
    def from_dict(cls, pairs: Mapping[str, str]) -> LabelMapping:
        """A mapping given in Python; labels must be strings."""
        for k, v in pairs.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ConfigError(f"label mapping: {k!r} -> {v!r}: labels must be strings")
        return cls(dict(pairs))

    def where(self, model_label: str) -> str:
        """``FILE:LINE`` of a row (or 'label mapping' for an in-memory one), for messages."""
        if self.path is None:
            return "label mapping"
        line = self.lines.get(model_label)
        return f"{self.path}:{line}" if line is not None else self.path


def read_label_map(path: str | Path) -> LabelMapping:
    """Read a TSV or JSON mapping file (see the module docstring); errors name file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: label mapping file not found") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"not valid UTF-8 ({exc.reason})", path=path) from None
    if path.suffix.lower() == ".json":
        rows = _json_rows(text, path)
    else:
        rows = _tsv_rows(text, path)
    pairs: dict[str, str] = {}
    lines: dict[str, int] = {}
    for line, model_label, data_label in rows:
        if model_label in pairs:
            raise DataFormatError(f"model label {model_label!r} is mapped twice (first at line "
                                  f"{lines[model_label]}); a model label maps to one data label",
                                  path=path, line=line)
        pairs[model_label] = data_label
        lines[model_label] = line
    if not pairs:
        raise DataFormatError("the label mapping has no rows", path=path)
    return LabelMapping(pairs, lines, str(path))


def _tsv_rows(text: str, path: Path) -> list[tuple[int, str, str]]:
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = line.split("\t")
        if len(cells) != 2 or not cells[0].strip() or not cells[1].strip():
            raise DataFormatError(f"expected 'model_label<TAB>data_label', got {raw!r}", path=path, line=number)
        model_label, data_label = cells[0].strip(), cells[1].strip()
        if not rows and (model_label, data_label) == _TSV_HEADER:
            continue
        rows.append((number, model_label, data_label))
    return rows


def _json_rows(text: str, path: Path) -> list[tuple[int, str, str]]:
    """Key/value rows of one JSON object, each with the line its key starts on.

    ``json.loads`` forgets positions (and silently keeps the last of two equal keys), so the
    object is walked here with the standard decoder's own pieces.
    """
    decoder = json.JSONDecoder()

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def fail(message: str, pos: int):
        raise DataFormatError(message, path=path, line=line_of(pos))

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip(0)
    if pos >= len(text) or text[pos] != "{":
        fail('expected one JSON object {"model_label": "data_label", ...}', pos)
    rows: list[tuple[int, str, str]] = []
    pos = skip(pos + 1)
    if pos < len(text) and text[pos] == "}":
        pos += 1
    else:
        while True:
            if pos >= len(text) or text[pos] != '"':
                fail("expected a model label (a JSON string key)", pos)
            key_pos = pos
            try:
                key, pos = json.decoder.scanstring(text, pos + 1)
                pos = skip(pos)
                if pos >= len(text) or text[pos] != ":":
                    fail("expected ':' after the model label", pos)
                value, pos = decoder.raw_decode(text, skip(pos + 1))
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"invalid JSON ({exc.msg})", path=path, line=exc.lineno) from None
            if not isinstance(value, str) or not value.strip() or not key.strip():
                fail(f"{key!r}: the mapping needs a non-empty data label string, got {value!r}", key_pos)
            rows.append((line_of(key_pos), key.strip(), value.strip()))
            pos = skip(pos)
            if pos < len(text) and text[pos] == ",":
                pos = skip(pos + 1)
                continue
            if pos < len(text) and text[pos] == "}":
                pos += 1
                break
            fail("expected ',' or '}'", pos)
    if skip(pos) != len(text):
        fail("extra data after the JSON object", skip(pos))
    return rows


# --------------------------------------------------------------------------- label alignment


@dataclass(frozen=True)
class LabelAlignment:
    """How model labels map into the shared label space (named after the data's labels)."""

    model_to_shared: dict[str, str]   # model label -> shared (data) label; unmatched model labels absent
    shared: list[str]                 # data labels some model label maps to, in data label order
    model_only: list[str]             # model labels with no data counterpart: their predictions are dropped
    data_only: list[str]              # data labels no model label maps to: their gold labels are dropped
    mapped: dict[str, str]            # the rows of the mapping file that were used (model -> data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_shared": len(self.shared), "n_model_only": len(self.model_only),
            "n_data_only": len(self.data_only), "n_mapped": len(self.mapped),
            "shared": list(self.shared), "model_only": self.model_only[:_MAX_LISTED],
            "data_only": self.data_only[:_MAX_LISTED], "mapped": dict(self.mapped),
        }


def _unique(labels: Iterable[str], what: str) -> list[str]:
    out = list(dict.fromkeys(labels))
    for label in out:
        if not isinstance(label, str):
            raise ConfigError(f"{what}: labels must be strings, got {label!r}")
    return out


def _name_matches(model_labels: list[str], data_labels: list[str], match: str) -> dict[str, str]:
    if match == "none":
        return {}
    if match == "name":
        data = set(data_labels)
        return {m: m for m in model_labels if m in data}
    by_fold: dict[str, list[str]] = {}
    for d in data_labels:
        by_fold.setdefault(d.casefold(), []).append(d)
    out = {}
    for m in model_labels:
        candidates = by_fold.get(m.casefold(), [])
        if len(candidates) > 1:
            exact = [d for d in candidates if d == m]
            if not exact:
                raise ConfigError(f"--match-labels casefold: model label {m!r} matches several data labels "
                                  f"({', '.join(map(repr, candidates))}); map it with a label mapping file")
            candidates = exact
        if candidates:
            out[m] = candidates[0]
    return out


def align_labels(model_labels: Sequence[str], data_labels: Sequence[str], *, match: str = "name",
                 mapping: LabelMapping | Mapping[str, str] | None = None) -> LabelAlignment:
    """Match the model's labels to the data's (see the module docstring).

    ``data_labels`` order fixes the order of the shared labels (the metric columns).
    """
    if match not in MATCH_MODES:
        raise ConfigError(f"match must be one of {', '.join(MATCH_MODES)}; got {match!r}")
    model = _unique(model_labels, "model labels")
    data = _unique(data_labels, "data labels")
    if mapping is not None and not isinstance(mapping, LabelMapping):
        mapping = LabelMapping.from_dict(mapping)
    model_set, data_set = set(model), set(data)
    model_to_shared = _name_matches(model, data, match)
    used: dict[str, str] = {}
    if mapping is not None:
        for m, d in mapping.pairs.items():
            if m not in model_set:
                raise ConfigError(f"{mapping.where(m)}: model label {m!r} is not one of the model's "
                                  f"{len(model)} labels" + (" (it is a data label: the columns are "
                                                             "model_label, data_label)" if m in data_set else ""))
            if d not in data_set:
                raise ConfigError(f"{mapping.where(m)}: data label {d!r} does not occur in the data "
                                  f"({len(data)} labels)" + (" (it is a model label: the columns are "
                                                             "model_label, data_label)" if d in model_set else ""))
            model_to_shared[m] = d
            used[m] = d
    targets = set(model_to_shared.values())
    shared = [d for d in data if d in targets]
    if not shared:
        raise ConfigError(f"the model's {len(model)} labels and the data's {len(data)} labels share none "
                          f"(matching: {match}); give a label mapping file (--label-map)")
    return LabelAlignment(
        model_to_shared={m: model_to_shared[m] for m in model if m in model_to_shared},
        shared=shared,
        model_only=[m for m in model if m not in model_to_shared],
        data_only=[d for d in data if d not in targets],
        mapped=used,
    )


# --------------------------------------------------------------------------- restricting documents


@dataclass
class Restricted:
    """Gold and predicted label lists over the shared labels, and what was dropped to get there."""

    gold: list[list[str]]
    pred: list[list[str]]
    kept_rows: list[int]              # indices of the input documents that were scored
    gold_labels_dropped: int          # gold label occurrences outside the shared labels
    pred_labels_dropped: int          # predicted label occurrences with no shared counterpart
    pred_labels_merged: int           # predicted labels that became a repeat after mapping
    docs_dropped: int                 # documents left with no gold label (0 with keep_unlabelled)


def restrict_to_shared(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                       alignment: LabelAlignment, *, keep_unlabelled: bool = False) -> Restricted:
    """Drop (and rename) labels outside the shared space; drop documents left without gold labels."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} documents but pred has {len(pred)}")
    shared = set(alignment.shared)
    to_shared = alignment.model_to_shared
    out = Restricted([], [], [], 0, 0, 0, 0)
    for i, (g, p) in enumerate(zip(gold, pred)):
        for labels, name in ((g, "gold"), (p, "pred")):
            if isinstance(labels, str):
                raise ValueError(f"document {i}: expected a list of {name} labels, got the string {labels!r}")
        g_kept = list(dict.fromkeys(lab for lab in g if lab in shared))
        out.gold_labels_dropped += len(set(g)) - len(g_kept)
        mapped = [to_shared[lab] for lab in p if lab in to_shared]
        out.pred_labels_dropped += len(p) - len(mapped)
        p_kept = list(dict.fromkeys(mapped))
        out.pred_labels_merged += len(mapped) - len(p_kept)
        if not g_kept and not keep_unlabelled:
            out.docs_dropped += 1
            continue
        out.gold.append(g_kept)
        out.pred.append(p_kept)
        out.kept_rows.append(i)
    return out


# --------------------------------------------------------------------------- evaluation


@dataclass
class CrossDataReport:
    """Metrics on the shared labels plus every count of what was dropped."""

    metrics: dict[str, float]
    alignment: LabelAlignment
    n_docs_in: int
    docs_dropped: int
    gold_labels_dropped: int
    pred_labels_dropped: int
    pred_labels_merged: int
    match: str
    keep_unlabelled: bool
    label_map: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Flat metrics first (as ``seq2labels evaluate`` prints them), then a ``crossdata`` block."""
        return {**self.metrics, "crossdata": self.summary()}

    def summary(self) -> dict[str, Any]:
        a = self.alignment
        return {
            "match": self.match, "label_map": self.label_map, "keep_unlabelled": self.keep_unlabelled,
            "n_model_labels": len(a.model_to_shared) + len(a.model_only),
            "n_data_labels": len(a.shared) + len(a.data_only),
            "labels": a.to_dict(),
            "n_docs_in": self.n_docs_in, "n_docs_evaluated": self.n_docs_in - self.docs_dropped,
            "docs_dropped_no_shared_gold": self.docs_dropped,
            "gold_labels_dropped": self.gold_labels_dropped,
            "pred_labels_dropped": self.pred_labels_dropped,
            "pred_labels_merged": self.pred_labels_merged,
        }

    def counts(self) -> dict[str, int]:
        """The drop counts as flat integers (for the CLI's metric table)."""
        a = self.alignment
        return {"shared_labels": len(a.shared), "model_only_labels": len(a.model_only),
                "data_only_labels": len(a.data_only), "docs_in": self.n_docs_in,
                "docs_dropped": self.docs_dropped, "gold_labels_dropped": self.gold_labels_dropped,
                "pred_labels_dropped": self.pred_labels_dropped}


def cross_evaluate(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], model_labels: Sequence[str],
                   data_labels: Sequence[str] | None = None, *, match: str = "name",
                   mapping: LabelMapping | Mapping[str, str] | None = None,
                   keep_unlabelled: bool = False, model_rank: Mapping[str, int] | None = None) -> CrossDataReport:
    """Score predicted label lists (model label names) against gold lists (data label names).

    ``data_labels`` defaults to every label occurring in ``gold`` (sorted). Works for any model:
    only label lists go in. ``model_rank`` (model label -> training position) puts each gold list
    in the order the model was taught, as ``seq2labels evaluate`` does, so the label position
    deviation compares like with like (a merged label takes its earliest model label's rank);
    without it the gold lists keep the data's order.
    """
    if data_labels is None:
        data_labels = sorted({lab for labels in gold for lab in labels})
    alignment = align_labels(model_labels, data_labels, match=match, mapping=mapping)
    unknown = sorted({lab for labels in pred for lab in labels} - set(model_labels))
    if unknown:
        raise ValueError(f"predictions hold label(s) the model does not list: {', '.join(map(repr, unknown[:10]))}")
    restricted = restrict_to_shared(gold, pred, alignment, keep_unlabelled=keep_unlabelled)
    if model_rank is not None:
        restricted.gold = _in_model_order(restricted.gold, alignment, model_rank)
    if not restricted.gold:
        raise ConfigError(f"no document has a gold label among the {len(alignment.shared)} shared labels; "
                          "nothing to evaluate")
    metrics = evaluate_label_lists(restricted.gold, restricted.pred, alignment.shared)
    return CrossDataReport(
        metrics=metrics, alignment=alignment, n_docs_in=len(gold), docs_dropped=restricted.docs_dropped,
        gold_labels_dropped=restricted.gold_labels_dropped, pred_labels_dropped=restricted.pred_labels_dropped,
        pred_labels_merged=restricted.pred_labels_merged, match=match, keep_unlabelled=keep_unlabelled,
        label_map=mapping.path if isinstance(mapping, LabelMapping) else None,
    )


def _in_model_order(gold: list[list[str]], alignment: LabelAlignment,
                    model_rank: Mapping[str, int]) -> list[list[str]]:
    rank: dict[str, int] = {}
    for m, shared in alignment.model_to_shared.items():
        if m in model_rank:
            rank[shared] = min(rank.get(shared, model_rank[m]), model_rank[m])
    last = len(model_rank)
    return [sorted(labels, key=lambda lab: rank.get(lab, last)) for labels in gold]   # stable: ties keep data order


def evaluate_generator(generator, examples, *, match: str = "name",
                       mapping: LabelMapping | Mapping[str, str] | None = None,
                       keep_unlabelled: bool = False, data_labels: Sequence[str] | None = None,
                       beam_size: int | None = None, max_labels: int | None = None,
                       batch_size: int = 256) -> CrossDataReport:
    """Cross-data evaluation of a :class:`~seq2labels.pipeline.generator.LabelGenerator` on labelled examples
    (``Example`` objects with ``text`` and ``labels``). Predictions keep their generated order."""
    texts = [ex.text for ex in examples]
    predictions = generator.predict(texts, beam_size=beam_size, max_labels=max_labels, batch_size=batch_size)
    label_vocab = generator.label_vocab
    rank = label_vocab.rank if label_vocab.order != "given" else None
    return cross_evaluate([list(ex.labels) for ex in examples], [p.labels for p in predictions],
                          label_vocab.labels, data_labels, match=match, mapping=mapping,
                          keep_unlabelled=keep_unlabelled, model_rank=rank)


def indicator_to_label_lists(Y, label_names: Sequence[str]) -> list[list[str]]:
    """Rows of a 0/1 indicator matrix (numpy or scipy sparse) as label lists in column order."""
    import scipy.sparse as sp

    Y = Y.toarray() if sp.issparse(Y) else np.asarray(Y)
    names = list(label_names)
    if Y.ndim != 2 or Y.shape[1] != len(names):
        raise ValueError(f"expected an (n, {len(names)}) indicator matrix for {len(names)} label names; "
                         f"got shape {Y.shape}")
    return [[names[j] for j in np.flatnonzero(row)] for row in Y]


def evaluate_estimator(estimator, X, gold: Sequence[Sequence[str]], model_labels: Sequence[str], *,
                       match: str = "name", mapping: LabelMapping | Mapping[str, str] | None = None,
                       keep_unlabelled: bool = False, data_labels: Sequence[str] | None = None) -> CrossDataReport:
    """Cross-data evaluation of a fitted baseline (``predict(X)`` -> (n, L) 0/1 matrix).

    ``model_labels`` names the estimator's label columns (the label names it was trained with,
    in column order), since the baselines themselves only know column indices.
    """
    pred = indicator_to_label_lists(estimator.predict(X), model_labels)
    return cross_evaluate(gold, pred, model_labels, data_labels, match=match, mapping=mapping,
                          keep_unlabelled=keep_unlabelled)


def evaluate_file(model_dir: str | Path, data_path: str | Path, *, fmt: str | None = None,
                  encoding_errors: str = "strict", match: str = "name", label_map: str | Path | None = None,
                  keep_unlabelled: bool = False, beam_size: int | None = None, max_labels: int | None = None,
                  batch_size: int = 256, device: str = "cpu", backend: str = "torch",
                  quantize: str | None = None, precision: str | None = None) -> CrossDataReport:
    """What ``seq2labels evaluate MODEL DATA --match-labels/--label-map`` runs (with the inference
    options of seq2labels.pipeline.loading.load_for_inference)."""
    from seq2labels.data.readers import read_examples
    from seq2labels.pipeline.loading import load_for_inference

    mapping = read_label_map(label_map) if label_map is not None else None
    generator = load_for_inference(model_dir, device=device, backend=backend, quantize=quantize, precision=precision)
    examples = read_examples(data_path, fmt, encoding_errors=encoding_errors)
    beam = beam_size or generator.config.decode.beam_size
    report = evaluate_generator(generator, examples, match=match, mapping=mapping,
                                keep_unlabelled=keep_unlabelled, beam_size=beam, max_labels=max_labels,
                                batch_size=batch_size)
    report.metrics["beam_size"] = beam
    return report
