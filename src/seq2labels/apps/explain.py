"""Why did the model emit these labels? The decoder's attention over the input, per label.

SGM attends over the encoded tokens once per decoding step, so each emitted label comes with
one attention distribution over the tokens the model saw (texts are cut to ``text.max_len``).
:func:`explain` returns those numbers as arrays; :func:`plot_attention` draws them as a
heatmap (tokens x labels, labels in generated order with their probabilities) and
:func:`write_explanations` writes one PNG per text plus one self-contained HTML page.

The numbers come from :meth:`LabelGenerator.predict` with ``return_attention=True``; nothing
here decodes on its own. matplotlib (the ``report`` extra) is imported only when drawing.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from seq2labels.errors import Seq2LabelsError

__all__ = ["Explanation", "MissingExtraError", "explain", "plot_attention", "heatmap_png", "render_html",
           "write_explanations"]

TOKENS_PER_ROW = 40          # heatmap columns per panel; longer texts wrap onto more panels
MAX_TOKEN_CHARS = 16         # longer tokens are shortened on the axis (never in the HTML)
HEATMAP_CMAP = "YlOrRd"
HIGHLIGHT_RGB = (227, 74, 51)  # token background in the HTML view, alpha = relative weight


class MissingExtraError(Seq2LabelsError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


def require_matplotlib() -> None:
    """Fail early (before any decoding) with the extra to install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtraError("pictures and reports need matplotlib: pip install 'seq2labels[report]'") from None


def new_figure(**kwargs):
    """A matplotlib Figure drawn by the Agg canvas, or a one-line install hint.

    Figures are built without pyplot, so no display is needed and the caller's pyplot
    backend (e.g. a notebook's) is left alone.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def colormap(name: str):
    from matplotlib import colormaps
    return colormaps[name]


@dataclass
class Explanation:
    """One text's predicted labels and, for each, where the decoder looked."""

    text: str
    tokens: list[str]             # the tokens the model saw (after truncation to text.max_len)
    labels: list[str]             # in generated order
    probabilities: list[float]    # each label's probability at the step it was emitted
    attention: np.ndarray         # (labels, tokens) float32; each row sums to 1
    score: float                  # log-probability of the whole label sequence
    n_text_tokens: int            # tokens in the full text (> len(tokens) when the model cut it)
    model_attends: bool = True    # False: the model has no attention and the weights are uniform

    @property
    def truncated(self) -> bool:
        return self.n_text_tokens > len(self.tokens)

    def top_tokens(self, k: int = 5) -> list[list[tuple[str, float]]]:
        """Per label, the ``k`` most attended tokens with their weights (largest first)."""
        out = []
        for row in self.attention:                                # (tokens,)
            order = np.argsort(-row, kind="stable")[:k]
            out.append([(self.tokens[j], float(row[j])) for j in order])
        return out

    def to_json(self) -> dict:
        return {"text": self.text, "tokens": self.tokens, "labels": self.labels,
                "probabilities": [float(p) for p in self.probabilities], "score": float(self.score),
                "n_text_tokens": self.n_text_tokens, "attention": self.attention.tolist()}


def explain(generator, texts: Sequence[str], *, beam_size: int | None = None, max_labels: int | None = None,
            min_labels: int | None = None, batch_size: int = 256) -> list[Explanation]:
    """Predict ``texts`` and keep the decoder's attention for every emitted label."""
    predictions = generator.predict(texts, beam_size=beam_size, max_labels=max_labels, min_labels=min_labels,
                                    batch_size=batch_size, return_attention=True)
    attends = bool(getattr(getattr(generator.model, "config", None), "attention", True))
    out = []
    for text, pred in zip(texts, predictions):
        if pred.attention is None:
            raise Seq2LabelsError(f"{type(generator.model).__name__} returned no attention weights to explain")
        attention = np.asarray(pred.attention, dtype=np.float32)          # (labels, tokens)
        tokens = list(pred.tokens or [])
        if attention.shape != (len(pred.labels), len(tokens)):
            raise ValueError(f"attention has shape {attention.shape}, expected "
                             f"({len(pred.labels)}, {len(tokens)}) for labels x tokens")
        tokens, attention, n_text_tokens = _as_words(generator.tokenizer, text, tokens, attention)
        out.append(Explanation(text=text, tokens=tokens, labels=list(pred.labels),
                               probabilities=[float(p) for p in pred.probabilities], attention=attention,
                               score=float(pred.score), n_text_tokens=n_text_tokens,
                               model_attends=attends))
    return out


def _as_words(tokenizer, text: str, tokens: list[str], attention: np.ndarray) -> tuple[list[str], np.ndarray, int]:
    """A word-piece model's attention summed back onto the words (as written) its pieces came from;
    tokens of the regex tokenizer pass through. Also the text's length in those units."""
    words = tokenizer.words(text) if hasattr(tokenizer, "words") else None
    if not words:
        return tokens, attention, len(tokenizer(text))
    merged = np.stack([attention[:, positions].sum(1) for _, positions in words], axis=1)  # (labels, words)
    return [word for word, _ in words], merged.astype(np.float32), tokenizer.word_count(text)


# ---- heatmap ---------------------------------------------------------------------------

def plain_text(s: str) -> str:
    """Text matplotlib draws literally: "$" would start mathtext; outside it only "\\$" is an escape."""
    return s.replace("$", r"\$")


def _short(token: str) -> str:
    return token if len(token) <= MAX_TOKEN_CHARS else token[: MAX_TOKEN_CHARS - 1] + "\u2026"


def label_tick(label: str, probability: float) -> str:
    """The axis text of one label: "earn (0.97)"."""
    return f"{label} ({probability:.2f})"


def _figure_size(exp: Explanation, per_row: int, panels: int) -> tuple[float, float]:
    """Width bounded by ``per_row`` tokens; height grows with labels and panels."""
    label_chars = max((len(label_tick(lab, p)) for lab, p in zip(exp.labels, exp.probabilities)), default=10)
    token_chars = min(MAX_TOKEN_CHARS, max((len(t) for t in exp.tokens), default=1))
    columns = min(per_row, max(len(exp.tokens), 1))
    width = 1.4 + 0.075 * min(label_chars, 40) + 0.2 * max(columns, 12)
    panel = 0.3 + 0.28 * max(len(exp.labels), 1) + 0.075 * token_chars
    return width, 0.7 + panels * panel


def plot_attention(exp: Explanation, *, tokens_per_row: int = TOKENS_PER_ROW, title: str | None = None):
    """A matplotlib Figure: one heatmap panel per ``tokens_per_row`` tokens, labels as rows.

    All panels share one colour scale (0 to the largest weight) and one colour bar; the
    image data of panel ``k`` is ``exp.attention[:, k*tokens_per_row:(k+1)*tokens_per_row]``.
    """
    if tokens_per_row < 1:
        raise ValueError(f"tokens_per_row must be >= 1, got {tokens_per_row}")
    n_tokens = len(exp.tokens)
    panels = max(1, math.ceil(n_tokens / tokens_per_row))
    per_row = min(tokens_per_row, max(n_tokens, 1))
    fig = new_figure(figsize=_figure_size(exp, per_row, panels), layout="constrained")
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    heading = title if title is not None else "Decoder attention at each step, labels in generated order (probability)"
    if exp.truncated:
        heading += f"\n(the model read the first {n_tokens} of {exp.n_text_tokens} tokens)"
    if not exp.model_attends:
        heading += "\n(this model has no attention layer: the weights are uniform)"
    fig.suptitle(plain_text(heading), fontsize=11)
    if not exp.labels:
        for ax in axes:
            ax.axis("off")
        axes[0].text(0.5, 0.5, "no label predicted", ha="center", va="center", fontsize=12)
        return fig
    cmap = colormap(HEATMAP_CMAP).with_extremes(bad="white")
    vmax = float(exp.attention.max()) or 1.0
    ticks = [plain_text(label_tick(lab, p)) for lab, p in zip(exp.labels, exp.probabilities)]
    image = None
    for k, ax in enumerate(axes):
        start = k * per_row
        block = exp.attention[:, start: start + per_row]                    # (labels, <= per_row)
        padded = np.full((block.shape[0], per_row), np.nan, dtype=np.float32)  # (labels, per_row)
        padded[:, : block.shape[1]] = block
        image = ax.imshow(padded, aspect="auto", cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_yticks(range(len(ticks)), ticks, fontsize=9)
        ax.set_xticks(range(block.shape[1]), [plain_text(_short(t)) for t in exp.tokens[start: start + per_row]],
                      rotation=90, fontsize=8)
        ax.tick_params(length=0)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[-1].set_xlabel("input tokens" + (" (continued across rows)" if panels > 1 else ""), fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=min(1.0, 0.9 / panels + 0.3), pad=0.01, label="attention weight")
    return fig


def heatmap_png(exp: Explanation, *, dpi: int = 100, tokens_per_row: int = TOKENS_PER_ROW,
                title: str | None = None) -> bytes:
    """The heatmap as PNG bytes."""
    return figure_png(plot_attention(exp, tokens_per_row=tokens_per_row, title=title), dpi=dpi)


def figure_png(fig, dpi: int = 100) -> bytes:
    """PNG bytes of a figure; warnings about glyphs the font lacks (emoji) are dropped."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from (current )?font")
        warnings.filterwarnings("ignore", message=r"Matplotlib currently does not support")
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ---- HTML ------------------------------------------------------------------------------

PAGE_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:16px 24px;color:#222;line-height:1.4}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9em}
blockquote{margin:.4em 0;padding:.4em .8em;background:#f6f6f6;border-left:3px solid #ccc;white-space:pre-wrap;
max-height:12em;overflow:auto;font-size:.9em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
.tokens{margin:.3em 0 .8em;font-size:.9em;line-height:1.9}
.tokens .label{font-weight:600;margin-right:.5em}
.tok{padding:1px 2px;border-radius:2px}
.note{color:#8a4b00}
"""


def _rgba(alpha: float) -> str:
    r, g, b = HIGHLIGHT_RGB
    return f"rgba({r},{g},{b},{alpha:.3f})"


def _label_table(exp: Explanation, k: int = 5) -> str:
    rows = []
    for i, (label, p, top) in enumerate(zip(exp.labels, exp.probabilities, exp.top_tokens(k)), start=1):
        tokens = ", ".join(f"{html.escape(t)} ({w:.3f})" for t, w in top)
        rows.append(f'<tr class="label-row" data-label="{html.escape(label)}" data-probability="{p!r}">'
                    f'<td class="num">{i}</td><td>{html.escape(label)}</td><td class="num">{p:.4f}</td>'
                    f"<td>{tokens}</td></tr>")
    head = "<tr><th>#</th><th>label</th><th>probability</th><th>most attended tokens (weight)</th></tr>"
    return f'<table class="labels">{head}{"".join(rows)}</table>'


def _token_view(exp: Explanation) -> str:
    """Per label, every token shaded by its weight relative to the label's largest weight."""
    lines = []
    for label, p, row in zip(exp.labels, exp.probabilities, exp.attention):
        top = float(row.max()) or 1.0
        spans = " ".join(f'<span class="tok" style="background:{_rgba(float(w) / top)}" title="{float(w):.4f}" '
                         f'data-w="{float(w)!r}">{html.escape(t)}</span>' for t, w in zip(exp.tokens, row))
        lines.append(f'<div class="tokens" data-label="{html.escape(label)}">'
                     f'<span class="label">{html.escape(label_tick(label, p))}</span>{spans}</div>')
    return "".join(lines)


def _section(i: int, exp: Explanation, png: bytes) -> str:
    notes = []
    if exp.truncated:
        notes.append(f"The model read the first {len(exp.tokens)} of {exp.n_text_tokens} tokens.")
    if not exp.model_attends:
        notes.append("This model has no attention layer: the weights are uniform.")
    note = f'<p class="note">{html.escape(" ".join(notes))}</p>' if notes else ""
    body = (_label_table(exp) + f'<img alt="attention heatmap of text {i}" src="{png_data_uri(png)}">'
            + "<p class=meta>Tokens shaded by attention weight, relative to each label's largest weight "
              "(hover for the weight):</p>" + _token_view(exp)) if exp.labels else "<p>No label predicted.</p>"
    return (f'<section class="explanation" id="text-{i}" data-score="{exp.score!r}"><h2>Text {i}</h2>'
            f"<blockquote>{html.escape(exp.text)}</blockquote>{note}{body}</section>")


def render_html(explanations: Sequence[Explanation], pngs: Sequence[bytes], *, title: str = "seq2labels explanations",
                meta: str = "") -> str:
    """One self-contained page: per text its labels, the heatmap (embedded PNG) and a token view."""
    if len(pngs) != len(explanations):
        raise ValueError(f"got {len(pngs)} images for {len(explanations)} explanations")
    sections = "".join(_section(i, exp, png) for i, (exp, png) in enumerate(zip(explanations, pngs), start=1))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f'<p class="meta">{html.escape(meta)}</p>'
            "<p>For every predicted label (in generated order, with its probability) the decoder's attention "
            "over the input tokens at the step that emitted it.</p>"
            f"{sections}</body></html>\n")


def write_explanations(explanations: Sequence[Explanation], out_dir: str | Path, *, dpi: int = 100,
                       tokens_per_row: int = TOKENS_PER_ROW, meta: str = "") -> dict[str, Path]:
    """Write text_0001.png ... (one heatmap per text), explanations.jsonl and index.html to ``out_dir``."""
    from seq2labels.utils.atomic import atomic_write_bytes, atomic_write_text

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise Seq2LabelsError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(len(explanations))))
    pngs = []
    for i, exp in enumerate(explanations, start=1):
        png = heatmap_png(exp, dpi=dpi, tokens_per_row=tokens_per_row,
                          title=f"Text {i}: decoder attention at each step, labels in generated order (probability)")
        atomic_write_bytes(out / f"text_{i:0{width}d}.png", png)
        pngs.append(png)
    lines = "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in explanations)
    atomic_write_text(out / "explanations.jsonl", lines)
    atomic_write_text(out / "index.html", render_html(explanations, pngs, meta=meta))
    return {"html": out / "index.html", "jsonl": out / "explanations.jsonl", "folder": out}


def explain_to_folder(model_dir: str | Path, texts: Sequence[str], out_dir: str | Path, *, device: str = "cpu",
                      beam_size: int | None = None, max_labels: int | None = None, dpi: int = 100,
                      tokens_per_row: int | None = 40) -> dict[str, Path]:
    """``seq2labels explain``: load the model, explain ``texts`` and write heatmaps, JSON Lines and HTML."""
    from seq2labels.pipeline.generator import load_model

    require_matplotlib()
    generator = load_model(model_dir, device=device)
    explanations = explain(generator, texts, beam_size=beam_size, max_labels=max_labels)
    beam = beam_size or generator.config.decode.beam_size
    return write_explanations(explanations, out_dir, dpi=dpi, tokens_per_row=tokens_per_row,
                              meta=f"model {model_dir}, beam size {beam}, {len(texts)} text(s)")
