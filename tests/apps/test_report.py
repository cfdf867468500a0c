"""The evaluation report: its numbers against seq2labels.evaluation.metrics and sklearn, the HTML, the CLI,
and the page as headless Chromium renders it."""

from __future__ import annotations

import base64
import contextlib
import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_curve

from seq2labels.apps.cli import main
from seq2labels.data.readers import Example
from seq2labels.errors import DataFormatError
from seq2labels.evaluation.metrics import binarize, per_label_report
from seq2labels.apps.report import build_report

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*never seen in training:UserWarning")]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVIL_LABEL = "<img src=x onerror=alert(1)>"
SCRIPT_TEXT = "<script>alert('x')</script> this is so great, thank you"
CHROMIUM = "/usr/bin/chromium"
VOID_TAGS = {"meta", "img", "br", "hr", "link", "input"}
# Decoding for every report here: the tiny model alone often emits nothing (all F1 = 0).
DECODE = {"beam_size": 2, "min_labels": 2}


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
    """Start tags with attributes, text, and a check that tags nest properly."""

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


@pytest.fixture(scope="module")
def examples(tiny) -> list[Example]:
    """120 held-out comments plus one with markup in its text and an unseen, markup-like gold label."""
    known = tiny.generator.label_vocab.labels[0]
    return [*tiny.test_examples, Example(text=SCRIPT_TEXT, labels=(known, EVIL_LABEL))]


@pytest.fixture(scope="module")
def data(tiny, examples):
    return build_report(tiny.generator, examples, top_labels=5, worst=7, **DECODE)


@pytest.fixture(scope="module")
def cli_report(tiny, examples, tmp_path_factory, write_jsonl):
    """The report CLI run once on a saved copy of the tiny model: (exit code, stderr, html path)."""
    root = tmp_path_factory.mktemp("report")
    model = tiny.generator.save(root / "model")
    data_file = write_jsonl(root / "data.jsonl", examples)
    out = root / "report.html"
    code, _, err = run_main(["report", model, data_file, "--out", out, "--beam-size", DECODE["beam_size"],
                             "--min-labels", DECODE["min_labels"], "--top-labels", 5, "--worst", 500,
                             "--dpi", 60, "-q"])
    return code, err, out, model, data_file


# ---- numbers ---------------------------------------------------------------------------------

def test_metrics_are_the_ones_evaluate_reports(tiny, examples, data):
    assert data.metrics == tiny.generator.evaluate(examples, **DECODE)
    assert data.metrics["micro_f1"] > 0          # something is right, so the checks below are not vacuous
    assert data.unseen == [EVIL_LABEL] and data.columns[-1] == EVIL_LABEL
    assert any(EVIL_LABEL in note for note in data.notes)


def test_per_label_rows_are_per_label_report_sorted_by_support(data):
    y_true, y_pred = binarize(data.gold, data.columns), binarize(data.predicted, data.columns)
    expected = {r["label"]: r for r in per_label_report(y_true, y_pred, data.columns)}
    supports = [r["support"] for r in data.per_label]
    assert supports == sorted(supports, reverse=True)
    assert sorted(r["label"] for r in data.per_label) == sorted(data.columns)
    for row in data.per_label:
        assert {k: row[k] for k in expected[row["label"]]} == expected[row["label"]]
        assert row["predicted"] == sum(row["label"] in p for p in data.predicted)
    assert sum(supports) == sum(len(g) for g in data.gold)
    evil = next(r for r in data.per_label if r["label"] == EVIL_LABEL)
    assert evil["support"] == 1 and evil["f1"] == 0.0


def test_positions_and_per_document_f1_add_up_to_the_metrics(data):
    diffs = data.position_differences
    correct = sum(len(set(g) & set(p)) for g, p in zip(data.gold, data.predicted))
    assert diffs.size == correct > 0
    assert np.abs(diffs).mean() == pytest.approx(data.metrics["label_position_deviation"], abs=1e-12)
    assert data.example_f1.mean() == pytest.approx(data.metrics["example_f1"], abs=1e-12)
    g0, p0 = set(data.gold[0]), set(data.predicted[0])
    assert data.example_f1[0] == pytest.approx(2 * len(g0 & p0) / (len(g0) + len(p0)))


def test_pr_curves_are_sklearn_curves_of_the_greedy_label_scores(tiny, examples, data):
    np.testing.assert_array_equal(data.scores, tiny.generator.label_scores([ex.text for ex in examples]))
    known = [r for r in data.per_label if r["label"] != EVIL_LABEL]
    assert data.top_labels == [r["label"] for r in known[:5]]
    assert [c.label for c in data.pr_curves] == data.top_labels
    for curve in data.pr_curves:
        j = data.columns.index(curve.label)
        truth = np.array([curve.label in g for g in data.gold], dtype=int)
        precision, recall, _ = precision_recall_curve(truth, data.scores[:, j])
        np.testing.assert_array_equal(curve.precision, precision)
        np.testing.assert_array_equal(curve.recall, recall)
        assert curve.support == truth.sum() > 0
        assert 0.0 <= curve.average_precision <= 1.0


def test_cooccurrence_counts_documents_with_both_labels(data):
    for matrix, lists in ((data.cooccurrence_gold, data.gold), (data.cooccurrence_predicted, data.predicted)):
        assert matrix.shape == (5, 5)
        for i, a in enumerate(data.top_labels):
            for j, b in enumerate(data.top_labels):
                assert matrix[i, j] == sum(a in labels and b in labels for labels in lists)
    assert data.cooccurrence_predicted.sum() > np.trace(data.cooccurrence_predicted)   # >= 2 labels each


def test_worst_documents_have_the_lowest_f1(data):
    assert len(data.worst) == 7
    worst_f1 = data.example_f1[data.worst]
    assert list(worst_f1) == sorted(worst_f1)
    others = np.delete(data.example_f1, data.worst)
    assert worst_f1.max() <= others.min()


def test_no_examples_is_a_clear_error(tiny):
    with pytest.raises(DataFormatError, match="no examples"):
        build_report(tiny.generator, [])


# ---- HTML and CLI ------------------------------------------------------------------------------

def test_cli_report_is_self_contained_escaped_and_shows_the_api_numbers(cli_report, data):
    code, err, out, _, _ = cli_report
    assert code == 0, err
    page = out.read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
    tags = parser.tags
    assert not [t for t, _ in tags if t == "script"]
    assert "<script>alert" not in page and "<img src=x" not in page
    assert EVIL_LABEL in "".join(parser.text)              # shown, as text
    assert not [a for t, a in tags if t in ("link", "iframe") or (t == "img" and not a["src"].startswith("data:"))]

    shown = {a["data-metric"]: float(a["data-value"]) for t, a in tags if t == "tr" and "data-metric" in a}
    assert shown == {k: float(v) for k, v in data.metrics.items()}
    images = [base64.b64decode(a["src"].split(",", 1)[1]) for t, a in tags if t == "img"]
    assert len(images) == 4 and all(png.startswith(PNG_SIGNATURE) and len(png) > 5000 for png in images)
    rows = [a for t, a in tags if t == "tr" and a.get("class") == "worst"]
    assert len(rows) == data.n_docs                         # --worst 500: every document, worst first
    assert [float(r["data-f1"]) for r in rows] == sorted(data.example_f1.tolist())
    assert {int(r["data-index"]): float(r["data-f1"]) for r in rows} == dict(enumerate(data.example_f1.tolist()))


@pytest.mark.parametrize("change, message", [
    ({"model": "missing"}, "model folder not found"),
    ({"data": "missing"}, "file not found"),
    ({"--top-labels": 0}, "--top-labels"),
    ({"--worst": -1}, "--worst"),
    ({"--min-labels": 3, "--max-labels": 2}, "--min-labels"),
])
def test_cli_report_errors_exit_2_with_one_line(cli_report, tmp_path, change, message):
    _, _, _, model, data_file = cli_report
    model = tmp_path / "nope" if change.get("model") else model
    data_file = tmp_path / "nope.jsonl" if change.get("data") else data_file
    flags = [str(x) for k, v in change.items() if k.startswith("--") for x in (k, v)]
    code, _, err = run_main(["report", model, data_file, "--out", tmp_path / "r.html", *flags])
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (make test installs it)")
def test_report_renders_in_headless_chromium(cli_report, tmp_path):
    from PIL import Image

    code, err, out, _, _ = cli_report
    assert code == 0, err
    shot = tmp_path / "shot.png"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
               out.resolve().as_uri()]
    subprocess.run(command, timeout=120, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)   # (2000, 1200, 3)
    assert pixels.shape == (2000, 1200, 3)
    non_white = (pixels < 245).any(axis=2)
    assert non_white.mean() > 0.03                                         # text, tables and figures
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 60             # the embedded plots' colours
    assert colourful.mean() > 0.005
    assert non_white[:400].mean() > 0.01 and non_white[1000:].mean() > 0.01   # the page fills the window
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_report_shows_rare_macro_f1(cli_report, data):
    code, err, out, _, _ = cli_report
    assert code == 0, err
    page = out.read_text(encoding="utf-8")
    assert data.metrics["rare_label_count"] > 0
    assert f'data-metric="rare_macro_f1" data-value="{data.metrics["rare_macro_f1"]!r}"' in page
    assert "fewer than 50 training documents" in page


def test_report_says_rare_macro_f1_is_unknown_without_training_counts(tiny, examples):
    import copy

    old = copy.copy(tiny.generator)
    old.data_summary = None
    report = build_report(old, examples[:30], top_labels=3, worst=2, **DECODE)
    assert "rare_macro_f1" not in report.metrics
    assert any(note.startswith("rare_macro_f1: n/a") for note in report.notes)
