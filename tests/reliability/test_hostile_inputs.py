"""Hostile inputs at every entry point: each gets one clear error (or its documented behaviour).

One parametrized test per case; ``CASES`` is also the source of the table in docs/reliability.md.
A case's ``call`` takes the shared :class:`Ctx` and either raises (``expect`` is an exception type
and a regex the message must match) or returns a value ``check`` accepts (documented behaviour).
CLI cases run ``seq2labels.apps.cli.main`` in-process and return ``(exit status, stderr)``; a CLI error
must be one line with exit status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from seq2labels.baselines import (BinaryRelevance, BRkNN, ClassifierChain, CNNRNNClassifier,
                                  EnsembleClassifierChains, KimCNNClassifier, LabelPowerset, MLkNN,
                                  MLPClassifier, RAkEL, text_pipeline)
from seq2labels.apps.cli import main
from seq2labels.pipeline.config import load_config
from seq2labels.data.readers import Example, read_examples
from seq2labels.data.tabular import read_arff, read_label_csv
from seq2labels.errors import ConfigError, DataFormatError
from seq2labels.apps.estimators import SGMClassifier
from seq2labels.pipeline.recipe import train

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

TINY_TRAIN = ["text.min_count=1", "text.max_len=16", "model.embedding_dim=8", "model.encoder_hidden=8",
              "model.decoder_hidden=8", "model.label_embedding_dim=8", "train.epochs=1", "train.threads=1",
              "train.progress=false"]
CLI_TINY = [arg for item in TINY_TRAIN for arg in ("--set", item)] + ["-q"]
GOOD = [Example("happy day", ("joy",)), Example("sad day", ("sadness",)), Example("ok then", ("neutral",)),
        Example("great fun", ("joy",))] * 3


@dataclass
class Ctx:
    tmp: Path
    generator: Any                   # a trained LabelGenerator (the session's tiny model)
    model_dir: Path                  # the same model saved
    clf: SGMClassifier               # the same model as a scikit-learn estimator
    cfg: Any                         # a tiny training config

    def file(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return str(path)

    def jsonl(self, name: str, examples=GOOD, extra: str = "") -> str:
        lines = "".join(json.dumps({"text": e.text, "labels": list(e.labels)}) + "\n" for e in examples)
        return self.file(name, lines + extra)

    def cli(self, *argv: str) -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
            rc = main(list(argv))
        self.stdout = out.getvalue()
        return rc, err.getvalue()


@pytest.fixture(scope="module")
def ctx(tiny, tmp_path_factory) -> Ctx:
    tmp = tmp_path_factory.mktemp("hostile")
    model_dir = tiny.generator.save(tmp / "model")
    return Ctx(tmp=tmp, generator=tiny.generator, model_dir=model_dir, clf=SGMClassifier.load(model_dir),
               cfg=load_config(None, TINY_TRAIN))


@dataclass
class Case:
    id: str
    entry: str                       # the entry point, as a user calls it
    given: str                       # the hostile input, in words
    call: Callable[[Ctx], Any]
    expect: type[BaseException] | None = None    # the error type; None: documented behaviour
    match: str = ""                  # regex the error message (or the CLI's stderr) must match
    check: Callable[[Any, Ctx], bool] | None = None   # documented behaviour: accepts the result


def cli_error(c: Case) -> Case:
    """A CLI case: exit status 2 and one stderr line matching ``match``."""
    return Case(c.id, c.entry, c.given, c.call, None, c.match,
                check=lambda out, ctx, m=c.match: (out[0] == 2 and "Traceback" not in out[1]
                                                    and len(out[1].strip().splitlines()) == 1
                                                    and re.search(m, out[1]) is not None))


def _runs(out, ctx) -> bool:
    return out[0] == 0


def _n_predictions(n: int):
    return lambda out, ctx: out[0] == 0 and len(ctx.stdout.splitlines()) == n


def _invalid_utf8(ctx: Ctx, name: str) -> str:
    return ctx.file(name, '{"text": "fine", "labels": ["joy"]}\n{"text": "caf\xff", "labels": ["joy"]}\n'
                    .encode("latin-1"))


def _bom_crlf(ctx: Ctx, name: str, *extra: str) -> str:
    lines = [json.dumps({"text": e.text, "labels": list(e.labels)}) for e in GOOD] + list(extra)
    return ctx.file(name, "\ufeff" + "".join(line + "\r\n" for line in lines))


ONE_MB_TEXT = ("Shares of the company rose sharply after the merger was announced. " * 16000)[:1_000_000]


def _long_text_same_as_prefix(out, ctx) -> bool:
    """A 1 MB text gets exactly the prediction of its first few hundred characters (max_len tokens)."""
    prefix = ONE_MB_TEXT[:2000]
    (a,), (b,) = out, ctx.generator.predict([prefix])
    return a.labels == b.labels and a.probabilities == b.probabilities


ARFF_HEAD = "@relation r\n@attribute f1 numeric\n@attribute f2 numeric\n@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n"
X = np.random.default_rng(0).normal(size=(30, 4))
Y = (np.random.default_rng(1).random((30, 3)) > 0.5).astype(int)
X_NAN = X.copy()
X_NAN[3, 1] = np.nan
X_INF = X.copy()
X_INF[3, 1] = np.inf
TEXTS = [f"good day number {i % 5}" for i in range(30)]
NUMERIC = {"BR": lambda: BinaryRelevance(), "CC": lambda: ClassifierChain(),
           "ECC": lambda: EnsembleClassifierChains(n_chains=2), "LP": lambda: LabelPowerset(),
           "RAkEL": lambda: RAkEL(labelset_size=2), "MLkNN": lambda: MLkNN(k=3), "BRkNN": lambda: BRkNN(k=3),
           "MLP": lambda: MLPClassifier(hidden=(4,), epochs=1)}
TEXT_KW = dict(epochs=1, embedding_dim=4, num_filters=2, filter_sizes=(1,), batch_size=8)
TEXTUAL = {"KimCNN": lambda: KimCNNClassifier(**TEXT_KW),
           "CNN-RNN": lambda: CNNRNNClassifier(decoder_hidden=4, label_embedding_dim=4, **TEXT_KW),
           "text_pipeline(BR)": lambda: text_pipeline(BinaryRelevance())}


def _baseline_cases() -> list[Case]:
    cases = []
    for name, make in NUMERIC.items():
        cases += [
            Case(f"{name}-fit-nan", f"{name}.fit", "NaN in X", lambda c, m=make: m().fit(X_NAN, Y),
                 ValueError, "Input X contains NaN"),
            Case(f"{name}-fit-inf", f"{name}.fit", "inf in X", lambda c, m=make: m().fit(X_INF, Y),
                 ValueError, "Input X contains infinity"),
            Case(f"{name}-fit-lengths", f"{name}.fit", "30 rows of X, 20 of Y", lambda c, m=make: m().fit(X, Y[:20]),
                 ValueError, r"inconsistent numbers of samples: \[30, 20\]"),
            Case(f"{name}-predict-nan", f"{name}.predict", "NaN in X",
                 lambda c, m=make: m().fit(X, Y).predict(X_NAN), ValueError, "Input X contains NaN"),
        ]
    for name, make in TEXTUAL.items():
        tfidf = name.startswith("text_pipeline")
        was_attr = " (was: AttributeError from the TF-IDF analyzer)" if tfidf else ""
        was_empty = " (was: 'empty vocabulary')" if tfidf else " (was: an error about the shape of y)"
        cases += [
            Case(f"{name}-fit-nonstr", f"{name}.fit", "None among the texts" + was_attr,
                 lambda c, m=make: m().fit(TEXTS[:29] + [None], Y), TypeError, r"(X\[29\]|text #29) is NoneType"),
            Case(f"{name}-fit-nan-text", f"{name}.fit", "float NaN among the texts" + was_attr,
                 lambda c, m=make: m().fit(TEXTS[:29] + [math.nan], Y), TypeError, r"(X\[29\]|text #29) is float"),
            Case(f"{name}-fit-lengths", f"{name}.fit", "30 texts, 20 rows of Y", lambda c, m=make: m().fit(TEXTS, Y[:20]),
                 ValueError, r"inconsistent numbers of samples: \[30, 20\]"),
            Case(f"{name}-fit-empty", f"{name}.fit", "no texts" + was_empty, lambda c, m=make: m().fit([], Y[:0]),
                 ValueError, "X is empty"),
            Case(f"{name}-predict-nonstr", f"{name}.predict", "None among the texts" + was_attr,
                 lambda c, m=make: m().fit(TEXTS, Y).predict(["fine", None]), TypeError,
                 r"(X\[1\]|text #1) is NoneType"),
        ]
    return cases


CASES: list[Case] = [
    # ---- seq2labels train --------------------------------------------------------------------
    cli_error(Case("train-empty-file", "seq2labels train", "empty training file",
                   lambda c: c.cli("train", "--train", c.file("e.jsonl", ""), "--out", str(c.tmp / "r"), *CLI_TINY),
                   match=r"e\.jsonl: no examples \(the file is empty or blank\)")),
    cli_error(Case("train-blank-file", "seq2labels train", "only blank lines",
                   lambda c: c.cli("train", "--train", c.file("b.jsonl", "\n  \r\n"), "--out", str(c.tmp / "r"),
                                   *CLI_TINY),
                   match=r"b\.jsonl: no examples")),
    cli_error(Case("train-invalid-utf8", "seq2labels train", "byte 0xFF on line 2",
                   lambda c: c.cli("train", "--train", _invalid_utf8(c, "u.jsonl"), "--out", str(c.tmp / "r"), *CLI_TINY),
                   match=r"u\.jsonl:2: invalid UTF-8 at byte 13 of the line")),
    cli_error(Case("train-tsv-no-tab", "seq2labels train", "TSV line without a tab",
                   lambda c: c.cli("train", "--train", c.file("t.tsv", "joy\thappy\nsad day\n"), "--out",
                                   str(c.tmp / "r"), *CLI_TINY),
                   match=r"t\.tsv:2: expected 'labels<TAB>text', found no tab")),
    cli_error(Case("train-label-not-string", "seq2labels train", "a label that is a number",
                   lambda c: c.cli("train", "--train", c.jsonl("n.jsonl", extra='{"text": "x", "labels": [1]}\n'),
                                   "--out", str(c.tmp / "r"), *CLI_TINY),
                   match=r"n\.jsonl:13: field 'labels': each label must be a non-empty string, got 1")),
    cli_error(Case("train-labels-string", "seq2labels train", '"labels": "joy" (a string, not a list)',
                   lambda c: c.cli("train", "--train", c.jsonl("s.jsonl", extra='{"text": "x", "labels": "joy"}\n'),
                                   "--out", str(c.tmp / "r"), *CLI_TINY),
                   match=r"s\.jsonl:13: field 'labels': must be a list of strings, got str")),
    cli_error(Case("train-text-null", "seq2labels train", '"text": null',
                   lambda c: c.cli("train", "--train", c.jsonl("x.jsonl", extra='{"text": null, "labels": ["a"]}\n'),
                                   "--out", str(c.tmp / "r"), *CLI_TINY),
                   match=r"x\.jsonl:13: field 'text': must be a string, got NoneType")),
    cli_error(Case("train-10000-labels", "seq2labels train", "one line with 10,000 labels (was: ~18 GB of RAM, then killed by the OOM killer)",
                   lambda c: c.cli("train", "--train", c.jsonl("m.jsonl", extra=json.dumps(
                       {"text": "x", "labels": [f"l{i}" for i in range(10000)]}) + "\n"), "--out", str(c.tmp / "r"),
                       *CLI_TINY),
                   match=r"m\.jsonl: a training text has 10000 labels .* more than labels\.max_per_text = 100")),
    cli_error(Case("train-empty-valid", "seq2labels train", "empty --valid file",
                   lambda c: c.cli("train", "--train", c.jsonl("g.jsonl"), "--valid", c.file("ev.jsonl", ""),
                                   "--out", str(c.tmp / "r"), *CLI_TINY),
                   match=r"ev\.jsonl: no examples")),
    cli_error(Case("train-one-example", "seq2labels train", "a single training example, no --valid",
                   lambda c: c.cli("train", "--train", c.jsonl("one.jsonl", GOOD[:1]), "--out", str(c.tmp / "r"),
                                   *CLI_TINY),
                   match="need at least 2 training examples to carve a validation split, got 1")),
    Case("train-bom-crlf-duplicates", "seq2labels train", "UTF-8 BOM, CRLF line ends, a label listed twice",
         lambda c: c.cli("train", "--train", _bom_crlf(c, "bc.jsonl", '{"text": "joy joy", "labels": ["joy", "joy"]}'),
                         "--out", str(c.tmp / "rbc"), *CLI_TINY),
         check=_runs),
    Case("train-invalid-utf8-replace", "seq2labels train", "byte 0xFF with --encoding-errors replace",
         lambda c: c.cli("train", "--train", _invalid_utf8(c, "ur.jsonl"), "--encoding-errors", "replace",
                         "--out", str(c.tmp / "rr"), *CLI_TINY),
         check=_runs),
    # ---- seq2labels evaluate -------------------------------------------------------------------
    cli_error(Case("evaluate-empty-file", "seq2labels evaluate", "empty data file",
                   lambda c: c.cli("evaluate", str(c.model_dir), c.file("e.jsonl", "")),
                   match=r"e\.jsonl: no examples")),
    cli_error(Case("evaluate-invalid-utf8", "seq2labels evaluate", "byte 0xFF on line 2",
                   lambda c: c.cli("evaluate", str(c.model_dir), _invalid_utf8(c, "u.jsonl")),
                   match=r"u\.jsonl:2: invalid UTF-8")),
    cli_error(Case("evaluate-text-number", "seq2labels evaluate", '"text": 5',
                   lambda c: c.cli("evaluate", str(c.model_dir), c.file("t5.jsonl", '{"text": 5, "labels": ["a"]}\n')),
                   match=r"t5\.jsonl:1: field 'text': must be a string, got int")),
    cli_error(Case("evaluate-missing-field", "seq2labels evaluate", "a line without 'labels'",
                   lambda c: c.cli("evaluate", str(c.model_dir), c.file("ml.jsonl", '{"text": "x"}\n')),
                   match=r"ml\.jsonl:1: field 'labels': missing field")),
    cli_error(Case("evaluate-batch-size-0", "seq2labels evaluate", "--batch-size 0 (was: a traceback)",
                   lambda c: c.cli("evaluate", str(c.model_dir), c.jsonl("g.jsonl"), "--batch-size", "0"),
                   match="--batch-size must be an integer >= 1, got 0")),
    Case("evaluate-bom-crlf", "seq2labels evaluate", "UTF-8 BOM and CRLF line ends",
         lambda c: c.cli("evaluate", str(c.model_dir), _bom_crlf(c, "bc.jsonl"), "-q"), check=_runs),
    # ---- seq2labels predict --------------------------------------------------------------------
    cli_error(Case("predict-empty-jsonl", "seq2labels predict", "empty JSON Lines file",
                   lambda c: c.cli("predict", str(c.model_dir), c.file("e.jsonl", "")),
                   match=r"e\.jsonl: no examples")),
    cli_error(Case("predict-invalid-utf8", "seq2labels predict", "--format text, byte 0xFF on line 2",
                   lambda c: c.cli("predict", str(c.model_dir), c.file("u.txt", b"fine\ncaf\xff\n"), "--format", "text"),
                   match=r"u\.txt:2: invalid UTF-8 at byte 3 of the line")),
    cli_error(Case("predict-chunk-size-0", "seq2labels predict", "--chunk-size 0 (was: exit 0, no output)",
                   lambda c: c.cli("predict", str(c.model_dir), c.jsonl("g.jsonl"), "--chunk-size", "0"),
                   match="--chunk-size must be an integer >= 1, got 0")),
    cli_error(Case("predict-batch-size-0", "seq2labels predict", "--batch-size 0 (was: a traceback)",
                   lambda c: c.cli("predict", str(c.model_dir), c.jsonl("g.jsonl"), "--batch-size", "0"),
                   match="--batch-size must be an integer >= 1, got 0")),
    Case("predict-empty-text-file", "seq2labels predict", "--format text, empty file",
         lambda c: c.cli("predict", str(c.model_dir), c.file("e.txt", ""), "--format", "text", "-q"),
         check=_n_predictions(0)),
    Case("predict-bom-crlf", "seq2labels predict", "--format text, BOM and CRLF, 2 lines",
         lambda c: c.cli("predict", str(c.model_dir), c.file("bc.txt", "\ufeffhello\r\nworld\r\n"), "--format",
                         "text", "-q"),
         check=_n_predictions(2)),
    Case("predict-invalid-utf8-replace", "seq2labels predict", "byte 0xFF with --encoding-errors replace",
         lambda c: c.cli("predict", str(c.model_dir), c.file("ur.txt", b"fine\ncaf\xff\n"), "--format", "text",
                         "--encoding-errors", "replace", "-q"),
         check=_n_predictions(2)),
    Case("predict-control-chars", "seq2labels predict", "NUL, ESC, RTL override, form feed, an empty line",
         lambda c: c.cli("predict", str(c.model_dir), c.file("cc.txt", "a\x00b\x1b[31m\u202e\n\x0c\x0b\n\n"),
                         "--format", "text", "-q"),
         check=_n_predictions(3)),
    Case("predict-1mb-line", "seq2labels predict", "one 1 MB line (gzip)",
         lambda c: c.cli("predict", str(c.model_dir), c.file("big.txt.gz", gzip.compress(
             (ONE_MB_TEXT + "\n").encode())), "--format", "text", "-q"),
         check=_n_predictions(1)),
    # ---- seq2labels compare --------------------------------------------------------------------
    cli_error(Case("compare-arff-missing-values", "seq2labels compare", "ARFF feature value '?' (missing) (was: a traceback from scikit-learn)",
                   lambda c: c.cli("compare", c.file("c.yaml", "data: {arff: %s, n_labels: 2}\nsplit: cv\n"
                                                     "cv: {n_splits: 2, n_repeats: 1}\nmethods: [{name: br}]\n"
                                                     % c.file("m.arff", ARFF_HEAD + "1,2,0,1\n?,3,1,0\n4,5,1,1\n")),
                                   "--out", str(c.tmp / "cmp")),
                   match=r"m\.arff: 1 feature value\(s\) are missing \('\?'\) or not finite \(first: data row 2, "
                         r"feature 'f1'\)")),
    cli_error(Case("compare-bad-method-param", "seq2labels compare", "mlknn with k: 0 (was: a traceback)",
                   lambda c: c.cli("compare", c.file("c.yaml", "data: {name: toy, train: %s, test: %s}\n"
                                                     "tfidf: {min_df: 1}\nmethods: [{name: mlknn, params: {k: 0}}]\n"
                                                     % (c.jsonl("g.jsonl"), c.jsonl("g.jsonl"))),
                                   "--out", str(c.tmp / "cmp")),
                   match=r"toy: method 'mlknn': k must be an int >= 1; got 0")),
    cli_error(Case("compare-k-larger-than-data", "seq2labels compare", "mlknn k: 100 on 12 documents (was: a traceback)",
                   lambda c: c.cli("compare", c.file("c.yaml", "data: {name: toy, train: %s, test: %s}\n"
                                                     "tfidf: {min_df: 1}\nmethods: [{name: mlknn, params: {k: 100}}]\n"
                                                     % (c.jsonl("g.jsonl"), c.jsonl("g.jsonl"))),
                                   "--out", str(c.tmp / "cmp")),
                   match=r"toy: method 'mlknn': ML-kNN with k=100 needs more than k training samples")),
    cli_error(Case("compare-empty-train", "seq2labels compare", "empty training file",
                   lambda c: c.cli("compare", c.file("c.yaml", "data: {train: %s, test: %s}\nmethods: [{name: br}]\n"
                                                     % (c.file("e.jsonl", ""), c.jsonl("g.jsonl"))),
                                   "--out", str(c.tmp / "cmp")),
                   match=r"e\.jsonl: no examples")),
    # ---- LabelGenerator.predict ------------------------------------------------------------------
    Case("predict-api-single-string", "LabelGenerator.predict", "a str instead of a list",
         lambda c: c.generator.predict("one text"), TypeError, "got a single string; wrap it in a list"),
    Case("predict-api-none", "LabelGenerator.predict", "None among the texts",
         lambda c: c.generator.predict(["fine", None]), TypeError, "text #1 is NoneType, expected str"),
    Case("predict-api-nan", "LabelGenerator.predict", "float NaN among the texts",
         lambda c: c.generator.predict([math.nan]), TypeError, "text #0 is float, expected str"),
    Case("predict-api-bytes", "LabelGenerator.predict", "bytes among the texts",
         lambda c: c.generator.predict([b"x"]), TypeError, "text #0 is bytes, expected str"),
    Case("predict-api-generator", "LabelGenerator.predict", "a generator of 3 texts (was: 0 predictions)",
         lambda c: c.generator.predict(t for t in ["a", "b", "c"]), check=lambda out, c: len(out) == 3),
    Case("predict-api-empty", "LabelGenerator.predict", "an empty list", lambda c: c.generator.predict([]),
         check=lambda out, c: out == []),
    Case("predict-api-surrogates", "LabelGenerator.predict", "lone surrogate, NUL, RTL override, emoji",
         lambda c: c.generator.predict(["\ud800\x00\u202e\U0001F600 x"]), check=lambda out, c: len(out) == 1),
    Case("predict-api-1mb-text", "LabelGenerator.predict", "one 1 MB text",
         lambda c: c.generator.predict([ONE_MB_TEXT]), check=_long_text_same_as_prefix),
    Case("predict-api-batch-size-0", "LabelGenerator.predict", "batch_size=0",
         lambda c: c.generator.predict(["x"], batch_size=0), ValueError, "batch_size must be a positive integer"),
    # ---- LabelGenerator.evaluate -----------------------------------------------------------------
    Case("evaluate-api-empty", "LabelGenerator.evaluate", "no examples (was: an error from the metrics)",
         lambda c: c.generator.evaluate([]), DataFormatError, "no examples: examples is empty"),
    Case("evaluate-api-text-number", "LabelGenerator.evaluate", "Example(text=5) (was: TypeError from unicodedata.normalize)",
         lambda c: c.generator.evaluate([Example(5, ("joy",))]), DataFormatError,
         r"examples\[0\]: field 'text' must be a string, got int"),
    Case("evaluate-api-labels-string", "LabelGenerator.evaluate", "labels='joy' (was: scored as 'j','o','y')",
         lambda c: c.generator.evaluate([Example("x", "joy")]), DataFormatError,
         r"examples\[0\]: field 'labels' must be a list of strings, got str"),
    Case("evaluate-api-label-number", "LabelGenerator.evaluate", "labels=(1,) (was: accepted)",
         lambda c: c.generator.evaluate([Example("x", (1,))]), DataFormatError,
         r"examples\[0\]: field 'labels': each label must be a non-empty string, got 1"),
    Case("evaluate-api-tuple", "LabelGenerator.evaluate", "a (text, labels) tuple instead of an Example (was: AttributeError)",
         lambda c: c.generator.evaluate([("x", ["joy"])]), TypeError, r"examples\[0\] is tuple, expected"),
    Case("evaluate-api-duplicates", "LabelGenerator.evaluate", "a label listed twice",
         lambda c: (c.generator.evaluate([Example("x", ("joy", "joy"))]), c.generator.evaluate([Example("x", ("joy",))])),
         check=lambda out, c: out[0] == out[1]),
    # ---- recipe.train(train_examples=...) --------------------------------------------------------
    Case("train-api-empty", "recipe.train", "train_examples=[] (was: 'need at least 2 training examples')",
         lambda c: train(c.cfg, train_examples=[]), DataFormatError, "no examples: train_examples is empty"),
    Case("train-api-empty-valid", "recipe.train", "valid_examples=[] (was: an error after one epoch)",
         lambda c: train(c.cfg, train_examples=GOOD, valid_examples=[]), DataFormatError,
         "no examples: valid_examples is empty"),
    Case("train-api-text-none", "recipe.train", "Example(text=None) (was: TypeError from the tokenizer)",
         lambda c: train(c.cfg, train_examples=GOOD + [Example(None, ("joy",))]), DataFormatError,
         r"train_examples\[12\]: field 'text' must be a string, got NoneType"),
    Case("train-api-label-number", "recipe.train", "labels=(1,) (was: ValueError naming no example)",
         lambda c: train(c.cfg, train_examples=GOOD + [Example("x", (1,))]), DataFormatError,
         r"train_examples\[12\]: field 'labels': each label must be a non-empty string, got 1"),
    Case("train-api-labels-string", "recipe.train", "labels='joy' (was: trained on 'j','o','y')",
         lambda c: train(c.cfg, train_examples=GOOD + [Example("x", "joy")]), DataFormatError,
         r"train_examples\[12\]: field 'labels' must be a list of strings, got str"),
    Case("train-api-dict", "recipe.train", "dicts instead of Examples (was: 'need at least 2 training examples')",
         lambda c: train(c.cfg, train_examples=[{"text": "x", "labels": ["a"]}]), TypeError,
         r"train_examples\[0\] is dict, expected"),
    Case("train-api-too-many-labels", "recipe.train", "an example with 101 labels (was: accepted)",
         lambda c: train(c.cfg, train_examples=GOOD + [Example("x", tuple(f"l{i}" for i in range(101)))]),
         DataFormatError, "a training text has 101 labels"),
    # ---- SGMClassifier -------------------------------------------------------------------------------
    Case("sgm-fit-empty", "SGMClassifier.fit", "X=[], y=[] (was: 'need at least 2 training examples ... got 0')", lambda c: SGMClassifier().fit([], []),
         DataFormatError, "X is empty"),
    Case("sgm-fit-lengths", "SGMClassifier.fit", "3 texts, 2 label lists",
         lambda c: SGMClassifier().fit(["a", "b", "c"], [["x"], ["y"]]), DataFormatError,
         "X has 3 texts but y has 2 label lists"),
    Case("sgm-fit-lengths-matrix", "SGMClassifier.fit", "3 texts, a 2-row indicator matrix",
         lambda c: SGMClassifier().fit(["a", "b", "c"], np.eye(2, dtype=int)), DataFormatError,
         "X has 3 texts but y has 2 rows"),
    Case("sgm-fit-text-nan", "SGMClassifier.fit", "float NaN among the texts",
         lambda c: SGMClassifier().fit(["a", math.nan], [["x"], ["y"]]), TypeError, r"X\[1\] is float"),
    Case("sgm-fit-y-nan", "SGMClassifier.fit", "NaN in an indicator matrix",
         lambda c: SGMClassifier().fit(["a", "b"], np.array([[1.0, np.nan], [0.0, 1.0]])), DataFormatError,
         "an indicator matrix y must hold only 0 and 1"),
    Case("sgm-fit-y-inf", "SGMClassifier.fit", "inf in an indicator matrix",
         lambda c: SGMClassifier().fit(["a", "b"], np.array([[1.0, np.inf], [0.0, 1.0]])), DataFormatError,
         "an indicator matrix y must hold only 0 and 1"),
    Case("sgm-fit-y-none", "SGMClassifier.fit", "y=None (was: 'NoneType' object is not iterable)",
         lambda c: SGMClassifier().fit(["a", "b"], None), DataFormatError,
         "y must be label lists or a 0/1 indicator matrix, got NoneType"),
    Case("sgm-fit-label-number", "SGMClassifier.fit", "a label that is a number",
         lambda c: SGMClassifier().fit(["a", "b"], [[1], ["y"]]), DataFormatError,
         r"y\[0\] holds 1; labels must be non-empty strings"),
    Case("sgm-fit-duplicate-classes", "SGMClassifier.fit", "classes=['a', 'a'] (was: accepted)",
         lambda c: SGMClassifier(classes=["a", "a"]).fit(["a", "b"], np.eye(2, dtype=int)), DataFormatError,
         "classes lists 'a' more than once"),
    Case("sgm-fit-batch-size-0", "SGMClassifier.fit", "batch_size=0 (was: ZeroDivisionError)",
         lambda c: SGMClassifier(batch_size=0).fit(["a", "b"], [["x"], ["y"]]), ConfigError,
         r"SGMClassifier: invalid parameter: train\.batch_size: must be >= 1, got 0"),
    Case("sgm-fit-min-above-max", "SGMClassifier.fit", "min_labels=20 > max_labels=10 (was: an error after training)",
         lambda c: SGMClassifier(min_labels=20).fit(["a", "b"], [["x"], ["y"]]), ConfigError,
         r"decode\.min_labels \(20\) must be <= decode\.max_labels \(10\)"),
    Case("sgm-fit-beam-0", "SGMClassifier.fit", "beam_size=0 (was: accepted, failing at predict)",
         lambda c: SGMClassifier(beam_size=0).fit(["a", "b"], [["x"], ["y"]]), ConfigError,
         r"decode\.beam_size: must be >= 1, got 0"),
    Case("sgm-predict-none", "SGMClassifier.predict", "None among the texts",
         lambda c: c.clf.predict(["fine", None]), TypeError, r"X\[1\] is NoneType"),
    Case("sgm-score-empty", "SGMClassifier.score", "X=[] (was: an error from sklearn.metrics)",
         lambda c: c.clf.score([], []), DataFormatError, "X is empty"),
    Case("sgm-score-unfitted", "SGMClassifier.score", "an unfitted estimator (was: AttributeError)",
         lambda c: SGMClassifier().score(["a"], [["x"]]), NotFittedError, "is not fitted yet"),
    # ---- readers and tabular ------------------------------------------------------------------------
    Case("reader-10000-labels", "read_examples", "one line with 10,000 labels",
         lambda c: read_examples(c.file("m.jsonl", json.dumps({"text": "x", "labels": [f"l{i}" for i in range(10000)]})
                                        + "\n")),
         check=lambda out, c: len(out[0].labels) == 10000),
    Case("reader-cr-only", "read_examples", "old Mac line ends (CR only): one physical line",
         lambda c: read_examples(c.file("cr.jsonl", '{"text": "a", "labels": ["x"]}\r{"text": "b", "labels": ["y"]}\r')),
         DataFormatError, r"cr\.jsonl:1: invalid JSON: Extra data"),
    Case("arff-no-rows", "read_arff", "@data with no rows (was: an empty data set)",
         lambda c: read_arff(c.file("e.arff", ARFF_HEAD), n_labels=2), DataFormatError,
         r"e\.arff:6: no data rows after @data"),
    Case("arff-missing-value", "read_arff", "feature value '?'",
         lambda c: read_arff(c.file("q.arff", ARFF_HEAD + "1,?,0,1\n"), n_labels=2),
         check=lambda out, c: bool(np.isnan(out.X[0, 1]))),
    Case("csv-duplicate-label-column", "read_label_csv", "label_columns=['y1', 'y1'] (was: accepted)",
         lambda c: read_label_csv(c.file("d.csv", "f1,y1,y2\n1,0,1\n"), ["y1", "y1"]), ValueError,
         "label_columns lists 'y1' more than once"),
    *_baseline_cases(),
]


# What each accepted case does, as docs/reliability.md states it (the check above verifies it).
BEHAVIOUR = {
    "train-bom-crlf-duplicates": "accepted: BOM skipped, CRLF stripped, the repeated label kept once (one warning)",
    "train-invalid-utf8-replace": "accepted: the byte is read as U+FFFD",
    "evaluate-bom-crlf": "accepted",
    "predict-empty-text-file": "no output: zero texts",
    "predict-bom-crlf": "2 predictions",
    "predict-invalid-utf8-replace": "2 predictions, the byte read as U+FFFD",
    "predict-control-chars": "3 predictions: every line is a text, an empty one too",
    "predict-1mb-line": "1 prediction; only the first max_len tokens are tokenized",
    "predict-api-generator": "3 predictions",
    "predict-api-empty": "[]",
    "predict-api-surrogates": "1 prediction: each odd character is a token of its own",
    "predict-api-1mb-text": "exactly the prediction of its first 2,000 characters",
    "evaluate-api-duplicates": "the label counts once: the metrics of the list without the repeat",
    "reader-10000-labels": "read: 10,000 labels (training refuses it, see train-10000-labels)",
    "arff-missing-value": "read as NaN, as documented (compare refuses it, see compare-arff-missing-values)",
}


def test_case_ids_are_unique_and_accepted_cases_documented():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    accepted = {c.id for c in CASES if c.expect is None and not c.match}
    assert accepted == set(BEHAVIOUR)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, ctx: Ctx):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.expect is not None:
            with pytest.raises(case.expect, match=case.match):
                case.call(ctx)
            return
        out = case.call(ctx)
    assert case.check is not None
    assert case.check(out, ctx), repr(out)[:2000]
