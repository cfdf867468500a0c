"""Attention explanations: the arrays, the heatmap drawn from them, the HTML page and the CLI."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from seq2labels.apps.cli import main
from seq2labels.pipeline.config import replace
from seq2labels.apps.explain import (
    Explanation,
    MissingExtraError,
    explain,
    heatmap_png,
    label_tick,
    plot_attention,
    require_matplotlib,
    write_explanations,
)
from seq2labels.pipeline.generator import LabelGenerator
from seq2labels.pipeline.recipe import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCRIPT = "<script>alert('x')</script> & \"quotes\" $5 mln"
VOID_TAGS = {"meta", "img", "br", "hr", "link", "input"}


def run_main(argv) -> tuple[int, str, str]:
    threads = torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        torch.set_num_threads(threads)
    return code, out.getvalue(), err.getvalue()


class PageParser(HTMLParser):
    """Collects start tags with their attributes and checks that tags nest properly."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse_page(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
    return parser


@pytest.fixture(scope="module")
def texts(tiny) -> list[str]:
    """Real comments, one longer than max_len (32 tokens), an empty one and one with markup."""
    real = [ex.text for ex in tiny.test_examples[:6]]
    long = " ".join(ex.text for ex in tiny.test_examples[6:16])
    return [*real, long, "", SCRIPT]


@pytest.fixture(scope="module")
def explanations(tiny, texts) -> list[Explanation]:
    # min_labels=2: the tiny model alone would often emit nothing, leaving nothing to explain.
    return explain(tiny.generator, texts, beam_size=3, min_labels=2)


def test_explanations_carry_the_predictions_and_their_attention(tiny, texts, explanations):
    g = tiny.generator
    preds = g.predict(texts, beam_size=3, min_labels=2)
    max_len = tiny.cfg.text.max_len
    assert len(explanations) == len(texts)
    for text, exp, pred in zip(texts, explanations, preds):
        assert exp.labels == pred.labels and len(exp.labels) >= 2
        assert exp.probabilities == pred.probabilities
        assert exp.score == pytest.approx(pred.score)
        all_tokens = g.tokenizer(text)
        assert exp.tokens == (all_tokens[:max_len] or ["<empty>"])
        assert exp.n_text_tokens == len(all_tokens)
        assert exp.attention.shape == (len(exp.labels), len(exp.tokens))
        assert (exp.attention >= 0).all()
        np.testing.assert_allclose(exp.attention.sum(axis=1), 1.0, atol=1e-4)
    long = explanations[6]
    assert long.truncated and len(long.tokens) == max_len < long.n_text_tokens
    assert not any(e.truncated for i, e in enumerate(explanations) if i != 6)


def test_top_tokens_are_the_largest_weights(explanations):
    exp = explanations[0]
    for row, top in zip(exp.attention, exp.top_tokens(3)):
        assert [w for _, w in top] == sorted(row.tolist(), reverse=True)[:3]
        for token, w in top:
            assert any(t == token and float(x) == w for t, x in zip(exp.tokens, row))


def test_heatmap_draws_exactly_the_attention_wrapped_in_rows(explanations):
    exp = explanations[6]                                  # 32 tokens
    fig = plot_attention(exp, tokens_per_row=10)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 4                                # 10 + 10 + 10 + 2 tokens
    for k, image in enumerate(images):
        shown = np.ma.filled(image.get_array().astype(np.float64), np.nan)   # (labels, 10)
        block = exp.attention[:, k * 10:(k + 1) * 10]
        np.testing.assert_array_equal(shown[:, : block.shape[1]], block)
        assert np.isnan(shown[:, block.shape[1]:]).all()    # padding of the last row is blank
        ax = image.axes
        assert [t.get_text() for t in ax.get_yticklabels()] == [
            label_tick(lab, p).replace("$", r"\$") for lab, p in zip(exp.labels, exp.probabilities)]
        assert [t.get_text() for t in ax.get_xticklabels()] == exp.tokens[k * 10:(k + 1) * 10]
        assert image.get_clim() == (0.0, pytest.approx(float(exp.attention.max())))


def test_heatmap_png_is_a_real_picture_of_bounded_width(explanations):
    from PIL import Image

    pictures = {}
    for name, exp, per_row in (("wide", explanations[6], 40), ("narrow", explanations[6], 8),
                               ("empty", explanations[7], 40)):
        png = heatmap_png(exp, dpi=60, tokens_per_row=per_row)
        assert png.startswith(PNG_SIGNATURE) and len(png) > 3000
        pictures[name] = image = Image.open(io.BytesIO(png))
        gray = np.asarray(image.convert("L"), dtype=np.float64)
        assert (gray < 250).mean() > 0.03 and gray.std() > 20
        assert image.width <= 13 * 60                     # bounded width however long the text
    narrow, wide = pictures["narrow"], pictures["wide"]
    assert narrow.width < wide.width and narrow.height > wide.height   # wrapping trades width for rows


def test_html_page_shows_the_api_numbers_escaped_and_embeds_the_pngs(tmp_path, explanations):
    explanations = [explanations[i] for i in (0, 6, 7, 8)]     # a comment, the long, the empty, the markup
    paths = write_explanations(explanations, tmp_path / "out", dpi=40, meta="tiny <model>")
    page = paths["html"].read_text(encoding="utf-8")
    parsed = parse_page(page)
    assert not [t for t, _ in parsed.tags if t == "script"]
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "tiny <model>" in "".join(parsed.text)

    sections = [a for t, a in parsed.tags if t == "section"]
    assert len(sections) == len(explanations)
    rows = [a for t, a in parsed.tags if t == "tr" and a.get("class") == "label-row"]
    assert [(r["data-label"], float(r["data-probability"])) for r in rows] == [
        (lab, p) for e in explanations for lab, p in zip(e.labels, e.probabilities)]
    weights = [float(a["data-w"]) for t, a in parsed.tags if t == "span" and "data-w" in a]
    assert weights == [float(w) for e in explanations for w in e.attention.ravel()]

    pngs = sorted((tmp_path / "out").glob("text_*.png"))
    assert [p.name for p in pngs] == [f"text_{i:04d}.png" for i in range(1, len(explanations) + 1)]
    embedded = [base64.b64decode(a["src"].split(",", 1)[1]) for t, a in parsed.tags if t == "img"]
    assert embedded == [p.read_bytes() for p in pngs]

    lines = paths["jsonl"].read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(json.dumps(e.to_json())) for e in explanations]


def test_a_model_without_attention_is_explained_with_uniform_weights(tiny, texts):
    cfg = replace(tiny.cfg, model=replace(tiny.cfg.model, attention=False))
    g = tiny.generator
    flat = LabelGenerator(build_model(cfg, g.vocab, g.label_vocab), g.tokenizer, g.vocab, g.label_vocab, cfg)
    exp = explain(flat, texts[:1], min_labels=1)[0]
    assert not exp.model_attends
    np.testing.assert_allclose(exp.attention, 1.0 / len(exp.tokens), rtol=1e-5)
    assert "no attention" in plot_attention(exp)._suptitle.get_text()


# ---- CLI -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(tiny, tmp_path_factory) -> Path:
    return tiny.generator.save(tmp_path_factory.mktemp("explain") / "model")


def test_cli_explain_texts_file_and_text_flags(model_dir, tmp_path, texts):
    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(t.replace("\n", " ") for t in texts[:3]) + "\n", encoding="utf-8")
    code, out, err = run_main(["explain", model_dir, lines, "--out", tmp_path / "a", "--dpi", 40, "-q"])
    assert code == 0, err
    assert len(list((tmp_path / "a").glob("text_*.png"))) == 3
    assert "index.html" in out

    code, _, err = run_main(["explain", model_dir, "--text", SCRIPT, "--text", "so happy", "--out", tmp_path / "b",
                             "--beam-size", 2, "--max-labels", 2, "--dpi", 40, "-q"])
    assert code == 0, err
    records = [json.loads(x) for x in (tmp_path / "b" / "explanations.jsonl").read_text().splitlines()]
    assert [r["text"] for r in records] == [SCRIPT, "so happy"]
    assert all(len(r["labels"]) <= 2 for r in records)
    assert "<script>alert" not in (tmp_path / "b" / "index.html").read_text(encoding="utf-8")


def test_cli_explain_limits_the_number_of_texts(model_dir, tmp_path, caplog):
    code, _, err = run_main(["explain", model_dir, "--text", "a", "--text", "b", "--text", "c", "--max-texts", 2,
                             "--out", tmp_path / "o", "--dpi", 40])
    assert code == 0, err
    assert "first 2 texts" in caplog.text
    assert len(list((tmp_path / "o").glob("text_*.png"))) == 2


@pytest.mark.parametrize("args, message", [
    (["--text", "hi"], "model folder not found"),
    ([], "nothing to explain"),
    (["FILE", "--text", "hi"], "not both"),
    (["--text", "hi", "--beam-size", 0], "--beam-size"),
    (["--text", "hi", "--tokens-per-row", 0], "--tokens-per-row"),
])
def test_cli_explain_errors_exit_2_with_one_line(model_dir, tmp_path, args, message):
    texts = tmp_path / "t.txt"
    texts.write_text("hello\n", encoding="utf-8")
    model = tmp_path / "no-such-model" if message == "model folder not found" else model_dir
    argv = ["explain", model, *[texts if a == "FILE" else a for a in args], "--out", tmp_path / "o"]
    code, out, err = run_main(argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_missing_matplotlib_names_the_report_extra(model_dir, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)    # import matplotlib -> ImportError
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'seq2labels[report]'")):
        require_matplotlib()
    code, _, err = run_main(["explain", model_dir, "--text", "hi", "--out", tmp_path / "o"])
    assert code == 2 and "seq2labels[report]" in err
