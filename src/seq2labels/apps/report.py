"""An evaluation report as one self-contained HTML file (figures embedded as PNG data URIs).

:func:`build_report` decodes a labelled data set once with the model's beam search (and once
greedily for the per-label scores behind the precision-recall curves) and computes every
number the page shows; :func:`render_report` only formats them. Metrics come from
:mod:`seq2labels.evaluation.metrics`, so they equal ``seq2labels evaluate``'s. Works with any
``LabelGenerator`` (``predict``, ``label_scores``, ``label_vocab``, ``config.decode``).
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from seq2labels._version import __version__
from seq2labels.data.readers import Example
from seq2labels.errors import ConfigError, DataFormatError
from seq2labels.apps.explain import figure_png, new_figure, plain_text, png_data_uri
from seq2labels.evaluation.metrics import (METRIC_NAMES, RARE_LABEL_MAX_TRAIN, binarize, evaluate_label_lists,
                                           per_label_report)

__all__ = ["PRCurve", "ReportData", "build_report", "render_report", "write_report"]

MAX_BAR_LABELS = 40      # per-label F1 bars drawn (by support); all labels are in the table
EXCERPT_CHARS = 300
BAR_COLOR = "#3b75af"


@dataclass
class PRCurve:
    """One label's precision-recall curve from the greedy-path scores, and the beam's operating point."""

    label: str
    support: int
    precision: np.ndarray          # (points,) as sklearn.metrics.precision_recall_curve returns them
    recall: np.ndarray             # (points,)
    average_precision: float
    operating_precision: float     # of the beam predictions, from per_label_report
    operating_recall: float


@dataclass
class ReportData:
    """Everything the report shows, computed once."""

    title: str
    n_docs: int
    beam_size: int
    max_labels: int
    min_labels: int
    columns: list[str]                     # model labels, then gold labels unseen in training
    unseen: list[str]
    texts: list[str]
    gold: list[list[str]]                  # gold labels in the model's training order
    predicted: list[list[str]]             # generated order
    probabilities: list[list[float]]
    metrics: dict[str, float]
    per_label: list[dict]                  # per_label_report rows plus "predicted", by support (desc)
    scores: np.ndarray                     # (docs, model labels) greedy-path label scores
    top_labels: list[str]                  # most frequent gold labels (model labels only)
    pr_curves: list[PRCurve]
    cooccurrence_gold: np.ndarray          # (top, top) documents with both labels, gold
    cooccurrence_predicted: np.ndarray     # (top, top) the same for the predictions
    position_differences: np.ndarray       # (correct labels,) predicted minus gold position
    example_f1: np.ndarray                 # (docs,)
    worst: list[int]                       # document indices, worst first
    notes: list[str] = field(default_factory=list)


# ---- numbers ---------------------------------------------------------------------------

def _gold_order(labels: Sequence[str], label_vocab) -> list[str]:
    """Gold labels as the model was taught to emit them (known ones first, unseen after)."""
    from seq2labels.pipeline.generator import _gold_in_training_order
    return _gold_in_training_order(labels, label_vocab)


def position_differences(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> np.ndarray:
    """Predicted minus gold position (0-based first occurrences) of every correctly predicted label.

    The mean of the absolute values is ``metrics.label_position_deviation``.
    """
    diffs = []
    for g, p in zip(gold, predicted):
        gold_pos: dict[str, int] = {}
        for i, label in enumerate(g):
            gold_pos.setdefault(label, i)
        seen: set[str] = set()
        for i, label in enumerate(p):
            if label in gold_pos and label not in seen:
                diffs.append(i - gold_pos[label])
            seen.add(label)
    return np.asarray(diffs, dtype=np.int64)


def example_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(docs,) per-document F1 as sklearn's "samples" average counts it (both empty -> 0)."""
    tp = (y_true & y_pred).sum(axis=1).astype(np.float64)          # (docs,)
    size = y_true.sum(axis=1).astype(np.float64) + y_pred.sum(axis=1)  # (docs,)
    return np.divide(2 * tp, size, out=np.zeros_like(tp), where=size > 0)


def _worst(f1: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, k: int) -> list[int]:
    """Lowest F1 first; among equal F1 the most wrong labels first, then document order."""
    errors = (y_true != y_pred).sum(axis=1)                         # (docs,)
    order = np.lexsort((np.arange(len(f1)), -errors, f1))
    return [int(i) for i in order[:k]]


def _pr_curves(y_true: np.ndarray, scores: np.ndarray, labels: list[str], columns: list[str],
               per_label: dict[str, dict]) -> list[PRCurve]:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    curves = []
    for label in labels:
        j = columns.index(label)
        truth = y_true[:, j]                                        # (docs,)
        precision, recall, _ = precision_recall_curve(truth, scores[:, j])
        row = per_label[label]
        curves.append(PRCurve(label, int(truth.sum()), precision, recall,
                              float(average_precision_score(truth, scores[:, j])),
                              row["precision"], row["recall"]))
    return curves


def _input_name(ex: Example) -> str:
    """A short name for an example without text: its image file, or what it carries."""
    if isinstance(ex.image, str):
        return f"[image {Path(ex.image).name}]"
    return "[image]" if ex.image is not None else ("[features]" if ex.features is not None else "")


def check_options(top_labels: int, worst: int) -> None:
    if top_labels < 1:
        raise ConfigError(f"--top-labels must be >= 1, got {top_labels}")
    if worst < 0:
        raise ConfigError(f"--worst must be >= 0, got {worst}")


def build_report(generator, examples: Sequence[Example], *, beam_size: int | None = None,
                 max_labels: int | None = None, min_labels: int | None = None, top_labels: int = 10,
                 worst: int = 20, batch_size: int = 256, title: str = "seq2labels evaluation report") -> ReportData:
    """Decode ``examples`` and compute every number of the report (decoding options as in ``predict``)."""
    check_options(top_labels, worst)
    if not examples:
        raise DataFormatError("no examples to report on")
    decode = generator.config.decode
    beam = decode.beam_size if beam_size is None else beam_size
    max_labels = decode.max_labels if max_labels is None else max_labels
    min_labels = decode.min_labels if min_labels is None else min_labels
    texts = [ex.text or _input_name(ex) for ex in examples]              # what the worst-examples table shows
    if getattr(generator, "uses_inputs", False):  # images / features / fused: the examples themselves
        predictions = generator.predict_examples(examples, beam_size=beam, max_labels=max_labels,
                                                 min_labels=min_labels, batch_size=batch_size)
        scores = generator.label_scores(list(examples), batch_size=batch_size)  # (docs, model labels)
    else:
        predictions = generator.predict(texts, beam_size=beam, max_labels=max_labels, min_labels=min_labels,
                                        batch_size=batch_size)
        scores = generator.label_scores(texts, batch_size=batch_size)       # (docs, model labels)
    model_labels = list(generator.label_vocab.labels)
    gold = [_gold_order(ex.labels, generator.label_vocab) for ex in examples]
    predicted = [list(p.labels) for p in predictions]
    known = set(model_labels)
    unseen = sorted({label for labels in gold for label in labels if label not in known})
    columns = [*model_labels, *unseen]
    train_counts = getattr(generator, "label_counts", None)
    metrics = evaluate_label_lists(gold, predicted, columns, train_counts=train_counts)
    y_true, y_pred = binarize(gold, columns), binarize(predicted, columns)  # (docs, columns) each
    rows = per_label_report(y_true, y_pred, columns)
    for row, count in zip(rows, y_pred.sum(axis=0).tolist()):
        row["predicted"] = int(count)
    by_support = sorted(rows, key=lambda r: (-r["support"], r["label"]))
    top = [r["label"] for r in by_support if r["label"] in known and r["support"] > 0][:top_labels]
    top_idx = [columns.index(label) for label in top]
    gold_top, pred_top = y_true[:, top_idx].astype(np.int64), y_pred[:, top_idx].astype(np.int64)
    f1 = example_f1(y_true, y_pred)
    notes = [_rare_note(metrics, train_counts)]
    thresholds = generator.active_thresholds() if hasattr(generator, "active_thresholds") else None
    if thresholds is not None:
        notes.append(f"Per-label thresholds (thresholds.json) decide {thresholds.tuned_count} of "
                     f"{len(thresholds.labels)} labels; the others are the decoded set.")
    if unseen:
        shown = ", ".join(unseen[:20]) + (f" and {len(unseen) - 20} more" if len(unseen) > 20 else "")
        notes.append(f"{len(unseen)} gold label(s) never seen in training count as misses: {shown}.")
    return ReportData(
        title=title, n_docs=len(examples), beam_size=beam, max_labels=max_labels, min_labels=min_labels, columns=columns, unseen=unseen, texts=texts,
        gold=gold, predicted=predicted, probabilities=[list(p.probabilities) for p in predictions],
        metrics=metrics, per_label=by_support, scores=scores, top_labels=top,
        pr_curves=_pr_curves(y_true, scores, top, columns, {r["label"]: r for r in rows}),
        cooccurrence_gold=gold_top.T @ gold_top, cooccurrence_predicted=pred_top.T @ pred_top,
        position_differences=position_differences(gold, predicted), example_f1=f1,
        worst=_worst(f1, y_true, y_pred, worst), notes=notes)


def _rare_note(metrics: dict, train_counts) -> str:
    if train_counts is None:
        return ("rare_macro_f1: n/a (the model folder records no training label counts, so rare labels "
                "cannot be told apart).")
    return (f"rare_macro_f1: macro-F1 over the {metrics['rare_label_count']} label(s) with fewer than "
            f"{RARE_LABEL_MAX_TRAIN} training documents (labels unseen in training included).")


# ---- figures ---------------------------------------------------------------------------

def f1_bars_figure(data: ReportData, max_labels: int = MAX_BAR_LABELS):
    rows = data.per_label[:max_labels]
    fig = new_figure(figsize=(9.5, 1.2 + 0.24 * len(rows)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))
    f1 = [r["f1"] for r in rows]
    ax.barh(y, f1, color=BAR_COLOR, height=0.7)
    ax.scatter([r["precision"] for r in rows], y, marker="|", s=60, color="#d62728", label="precision", zorder=3)
    ax.scatter([r["recall"] for r in rows], y, marker="x", s=18, color="#222222", label="recall", zorder=3)
    for yi, r in zip(y, rows):
        ax.text(1.01, yi, f"n={r['support']}", va="center", fontsize=8, color="#555555",
                transform=ax.get_yaxis_transform())
    ax.set_yticks(y, [plain_text(r["label"]) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.03)
    ax.set_xlabel("F1 (bar); precision |, recall x")
    more = len(data.per_label) - len(rows)
    ax.set_title("Per-label F1, labels by support (n = gold documents)"
                 + (f"; {more} rarer labels in the table" if more > 0 else ""), fontsize=10, loc="right")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig


def pr_curves_figure(data: ReportData):
    curves = data.pr_curves
    cols = min(5, max(len(curves), 1))
    nrows = max(1, -(-len(curves) // cols))
    fig = new_figure(figsize=(2.3 * cols + 0.4, 2.25 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False, sharex=True, sharey=True).ravel()
    for ax, c in zip(axes, curves):
        ax.step(c.recall, c.precision, where="post", color=BAR_COLOR, linewidth=1.4)
        ax.plot([c.operating_recall], [c.operating_precision], "o", color="#d62728", markersize=5)
        ax.set_title(plain_text(f"{c.label} (n={c.support})\nAP {c.average_precision:.3f}"), fontsize=8.5)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes[len(curves):]:
        ax.axis("off")
    fig.supxlabel("recall", fontsize=9)
    fig.supylabel("precision", fontsize=9)
    return fig


def cooccurrence_figure(data: ReportData):
    k = len(data.top_labels)
    side = 2.2 + 0.38 * k
    fig = new_figure(figsize=(2 * side + 1.0, side), layout="constrained")
    axes = fig.subplots(1, 2)
    vmax = max(int(data.cooccurrence_gold.max(initial=0)), int(data.cooccurrence_predicted.max(initial=0)), 1)
    names = [plain_text(label) for label in data.top_labels]
    image = None
    for ax, matrix, name in zip(axes, (data.cooccurrence_gold, data.cooccurrence_predicted), ("gold", "predicted")):
        image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_xticks(range(k), names, rotation=90, fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        ax.set_title(f"{name}: documents with both labels", fontsize=9.5)
        if k <= 15:
            for i in range(k):
                for j in range(k):
                    value = int(matrix[i, j])
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=6.5,
                            color="white" if value > 0.6 * vmax else "#222222")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="documents")
    return fig


def position_figure(data: ReportData):
    from matplotlib.ticker import NullFormatter

    diffs = data.position_differences
    fig = new_figure(figsize=(6.5, 2.8), layout="constrained")
    ax = fig.subplots()
    if diffs.size:
        values, counts = np.unique(diffs, return_counts=True)
        ax.bar(values, counts, color=BAR_COLOR, width=0.8)
        for x, n in zip(values, counts):
            ax.text(x, n, str(n), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(np.arange(values.min(), values.max() + 1))
        ax.set_yscale("log")                                        # most labels land on their gold slot
        ax.set_ylim(0.8, counts.max() * 3)
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.text(0.5, 0.5, "no correctly predicted label", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("predicted position minus gold position (correct labels)")
    ax.set_ylabel("labels (log scale)")
    ax.set_title(f"Label position deviation {data.metrics['label_position_deviation']:.4f} "
                 f"(mean |difference| over {diffs.size} correct labels)", fontsize=9.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig


# ---- HTML ------------------------------------------------------------------------------

REPORT_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1120px;
padding:16px 24px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin:1.5em 0 .4em;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9em}.note{color:#8a4b00}
table{border-collapse:collapse;margin:.5em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block;margin:.4em 0}
.metrics td.num{min-width:6em}.grid{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}
.miss{color:#b00020;font-weight:600}.wrong{color:#b00020;text-decoration:line-through}
.hit{color:#1b7f3b}td.text{max-width:560px;font-size:.95em}
"""

SUMMARY_KEYS = ("micro_f1", "macro_f1", "example_f1", "subset_accuracy", "hamming_loss",
                "label_position_deviation")


def _fmt(value) -> str:
    return str(value) if isinstance(value, (int, np.integer)) else f"{float(value):.4f}"


def _metrics_table(data: ReportData) -> str:
    keys = [k for k in (*METRIC_NAMES, "rare_macro_f1", "rare_label_count", "label_position_deviation", "n_docs")
            if k in data.metrics]
    rows = "".join(f'<tr data-metric="{k}" data-value="{data.metrics[k]!r}"><td>{k}</td>'
                   f'<td class="num">{_fmt(data.metrics[k])}</td></tr>' for k in keys)
    return f'<table class="metrics"><tr><th>metric</th><th>value</th></tr>{rows}</table>'


def _summary(data: ReportData) -> str:
    label_counts = [len(g) for g in data.gold]
    pred_counts = [len(p) for p in data.predicted]
    rows = [("documents", data.n_docs), ("labels known to the model", len(data.columns) - len(data.unseen)),
            ("labels in the gold data", sum(1 for r in data.per_label if r["support"] > 0)),
            ("gold labels per document", f"{np.mean(label_counts):.2f}"),
            ("predicted labels per document", f"{np.mean(pred_counts):.2f}"),
            ("documents with no prediction", sum(1 for n in pred_counts if n == 0)),
            ("beam size", data.beam_size)]
    body = "".join(f"<tr><td>{html.escape(k)}</td><td class=num>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table class="summary"><tr><th>data</th><th></th></tr>{body}</table>'


def _per_label_table(data: ReportData) -> str:
    rows = "".join(
        f'<tr data-label="{html.escape(r["label"])}"><td>{html.escape(r["label"])}</td><td class=num>{r["support"]}</td>'
        f'<td class=num>{r["predicted"]}</td><td class=num>{r["precision"]:.4f}</td>'
        f'<td class=num>{r["recall"]:.4f}</td><td class=num>{r["f1"]:.4f}</td></tr>' for r in data.per_label)
    head = ("<tr><th>label</th><th>support</th><th>predicted</th><th>precision</th><th>recall</th>"
            "<th>F1</th></tr>")
    return (f"<details><summary>All {len(data.per_label)} labels</summary>"
            f'<table class="per-label">{head}{rows}</table></details>')


def _labels_html(labels: Sequence[str], other: Sequence[str], cls_missing: str,
                 probabilities: Sequence[float] | None = None) -> str:
    others = set(other)
    parts = []
    for i, label in enumerate(labels):
        text = html.escape(label) + (f" ({probabilities[i]:.2f})" if probabilities is not None else "")
        parts.append(f'<span class="{"hit" if label in others else cls_missing}">{text}</span>')
    return ", ".join(parts) or "<em>(none)</em>"


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 1] + "\u2026"


def _worst_table(data: ReportData) -> str:
    rows = []
    for i in data.worst:
        rows.append(f'<tr class="worst" data-index="{i}" data-f1="{float(data.example_f1[i])!r}">'
                    f"<td class=num>{i + 1}</td><td class=num>{data.example_f1[i]:.3f}</td>"
                    f'<td class="text">{html.escape(_excerpt(data.texts[i]))}</td>'
                    f'<td>{_labels_html(data.gold[i], data.predicted[i], "miss")}</td>'
                    f'<td>{_labels_html(data.predicted[i], data.gold[i], "wrong", data.probabilities[i])}</td></tr>')
    head = "<tr><th>#</th><th>F1</th><th>text</th><th>gold (missed in red)</th><th>predicted (wrong struck out)</th></tr>"
    return f'<table class="worst">{head}{"".join(rows)}</table>'


def _label_range(low: int, high: int) -> str:
    return f"at most {high} labels" if low == 0 else f"{low} to {high} labels"


def _img(fig, alt: str, dpi: int) -> str:
    return f'<img alt="{html.escape(alt)}" src="{png_data_uri(figure_png(fig, dpi=dpi))}">'


def render_report(data: ReportData, *, source: str = "", dpi: int = 100) -> str:
    """The whole report as one HTML string; needs matplotlib for the figures."""
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in data.notes)
    when = time.strftime("%Y-%m-%d %H:%M")
    meta = f"{source} \u2014 " if source else ""
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(data.title)}</title>'
        f"<style>{REPORT_STYLE}</style></head><body><h1>{html.escape(data.title)}</h1>",
        f'<p class="meta">{html.escape(meta)}{data.n_docs} documents, beam size {data.beam_size}, '
        f"{_label_range(data.min_labels, data.max_labels)} per document; "
        f"seq2labels {html.escape(__version__)}, {when}</p>{notes}",
        f'<h2>Metrics</h2><div class="grid">{_metrics_table(data)}{_summary(data)}</div>',
        "<h2>Per-label F1</h2>", _img(f1_bars_figure(data), "per-label F1 bars", dpi), _per_label_table(data),
        f"<h2>Precision-recall curves of the {len(data.top_labels)} most frequent labels</h2>"
        "<p class=meta>Score: the highest probability the label got along the greedy (beam 1) path. "
        f"The red dot is the precision and recall of the beam-{data.beam_size} predictions.</p>",
        _img(pr_curves_figure(data), "precision-recall curves", dpi) if data.pr_curves else "<p>No label with support.</p>",
        "<h2>Label co-occurrence, gold vs predicted</h2>",
        _img(cooccurrence_figure(data), "label co-occurrence heatmaps", dpi) if data.top_labels else "",
        "<h2>Label order</h2>", _img(position_figure(data), "label position differences", dpi),
        f"<h2>The {len(data.worst)} worst-predicted documents</h2>"
        "<p class=meta>Lowest per-document F1 first; # is the document's position in the data file.</p>",
        _worst_table(data), "</body></html>\n",
    ]
    return "".join(parts)


def write_report(generator, examples: Sequence[Example], path: str | Path, *, beam_size: int | None = None,
                 max_labels: int | None = None, min_labels: int | None = None, top_labels: int = 10,
                 worst: int = 20, batch_size: int = 256, source: str = "", dpi: int = 100) -> ReportData:
    """Build the report and write it atomically to ``path``; returns the numbers it shows."""
    from seq2labels.utils.atomic import atomic_write_text

    data = build_report(generator, examples, beam_size=beam_size, max_labels=max_labels, min_labels=min_labels,
                        top_labels=top_labels, worst=worst, batch_size=batch_size)
    atomic_write_text(path, render_report(data, source=source, dpi=dpi))
    return data


def report_file(model_dir: str | Path, data: str | Path, out: str | Path, *, fmt: str | None = None,
                encoding_errors: str = "strict", device: str = "cpu", **options):
    """``seq2labels report``: load the model and the labelled file, write the HTML report (``options``
    as :func:`write_report`'s) and return its data."""
    from seq2labels.apps.explain import require_matplotlib
    from seq2labels.data.readers import read_examples
    from seq2labels.pipeline.generator import load_model

    require_matplotlib()
    generator = load_model(model_dir, device=device)
    if generator.uses_inputs:  # JSON Lines with images / features
        from seq2labels.pipeline.multimodal import read_inputs_file
        examples = read_inputs_file(generator.config, str(data), encoding_errors)
    else:
        examples = read_examples(data, fmt, encoding_errors=encoding_errors)
    return write_report(generator, examples, out, source=f"model {model_dir}, data {data}", **options)
