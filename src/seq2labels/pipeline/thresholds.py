"""Per-label decision thresholds for SGM: tuned on validation data, kept in ``thresholds.json``.

**The score.** SGM decides a label set by decoding; the per-label score thresholded here is
the one decoding already returns (``label_scores``): the highest probability the label got at
any step along the *chosen* path (beam or greedy). Emitted labels score at least their
emission probability; a label the decoder stopped short of still has the probability it
reached before EOS won. It costs nothing extra and ranks the labels by the model's own
belief at the moments it was choosing.

**The rule.** For a label with a threshold: in the set iff its score >= the threshold (an
emitted label below it is dropped, a missed label above it is added after the decoded ones,
by score). A label without one (``null``: fewer than 3 validation positives, or its best
threshold did not beat the decoded set on validation) keeps the decoded decision. See
:mod:`seq2labels.evaluation.thresholds` for the tuning itself and its two objectives
(``macro_f1``: each label's own F1; ``micro_f1``: the pooled F1), recorded as ``objective``.

``thresholds.json`` sits in the model folder; :meth:`LabelGenerator.load` reads it and
predict/evaluate/serve apply it unless switched off (``--no-thresholds``, ``decode.thresholds: false``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from seq2labels.data.readers import Example
from seq2labels.data.validation import check_examples
from seq2labels.errors import ModelFormatError
from seq2labels.evaluation.thresholds import MIN_POSITIVES, OBJECTIVES, tune_thresholds
from seq2labels.utils.atomic import atomic_write_json

THRESHOLDS_FILE = "thresholds.json"
FORMAT_NAME = "seq2labels-thresholds"
FORMAT_VERSION = 1
FIRST_LABEL_ID = 3  # label ids start after PAD, BOS, EOS
SCORE = "max step probability of the label along the decoded path (label_scores)"

__all__ = ["LabelThresholds", "THRESHOLDS_FILE", "read_thresholds", "threshold_rows", "tune_generator",
           "write_thresholds"]


@dataclass
class LabelThresholds:
    """One threshold per label of the label vocabulary (NaN: keep the decoded decision)."""

    labels: list[str]           # label-vocab order
    values: np.ndarray          # (n_labels,) float64
    beam_size: int              # the beam the scores were tuned with
    min_positives: int = MIN_POSITIVES
    validation_docs: int = 0
    objective: str = "macro_f1"  # what tuning maximised on validation (see evaluation.thresholds)

    @property
    def tuned_count(self) -> int:
        return int((~np.isnan(self.values)).sum())

    def to_dict(self) -> dict:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "score": SCORE,
                "beam_size": self.beam_size, "objective": self.objective, "min_positives": self.min_positives,
                "validation_docs": self.validation_docs, "tuned_labels": self.tuned_count,
                "thresholds": {label: None if math.isnan(v) else round(float(v), 9)
                               for label, v in zip(self.labels, self.values.tolist())}}

    @classmethod
    def from_dict(cls, data: dict, labels: Sequence[str], where: str) -> "LabelThresholds":
        """Check a thresholds.json object against the model's labels; errors name ``where`` and the field."""
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise ModelFormatError(f"{where}: not a seq2labels thresholds file (format must be {FORMAT_NAME!r})")
        if data.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(f"{where}: format_version {data.get('format_version')!r} is not supported "
                                   f"(reads {FORMAT_VERSION})")
        table = data.get("thresholds")
        if not isinstance(table, dict):
            raise ModelFormatError(f"{where}: field 'thresholds' must be an object label -> number or null")
        if set(table) != set(labels):
            missing, extra = sorted(set(labels) - set(table)), sorted(set(table) - set(labels))
            raise ModelFormatError(f"{where}: field 'thresholds' does not match the model's labels "
                                   f"(missing: {missing[:5]}, unknown: {extra[:5]})")
        values = np.full(len(labels), np.nan)
        for j, label in enumerate(labels):
            value = table[label]
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ModelFormatError(f"{where}: field 'thresholds.{label}' must be a finite number or null, "
                                       f"got {value!r}")
            values[j] = float(value)
        beam = data.get("beam_size", 1)
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise ModelFormatError(f"{where}: field 'beam_size' must be an integer >= 1, got {beam!r}")
        objective = data.get("objective", "macro_f1")  # files written before the field: per-label F1
        if objective not in OBJECTIVES:
            raise ModelFormatError(f"{where}: field 'objective' must be one of {', '.join(OBJECTIVES)}, "
                                   f"got {objective!r}")
        return cls(list(labels), values, beam, int(data.get("min_positives", MIN_POSITIVES)),
                   int(data.get("validation_docs", 0)), objective)


def read_thresholds(folder: str | Path, labels: Sequence[str]) -> LabelThresholds | None:
    """The folder's thresholds.json, checked against ``labels``; None when the folder has none."""
    path = Path(folder) / THRESHOLDS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: not valid JSON ({exc})") from None
    return LabelThresholds.from_dict(data, labels, str(path))


def write_thresholds(folder: str | Path, thresholds: LabelThresholds) -> Path:
    """Write (atomically replace) FOLDER/thresholds.json."""
    path = Path(folder) / THRESHOLDS_FILE
    atomic_write_json(path, thresholds.to_dict())
    return path


# ---- tuning ----------------------------------------------------------------------------

def tune_generator(generator, examples: Sequence[Example], *, beam_size: int | None = None,
                   min_positives: int = MIN_POSITIVES, batch_size: int = 256,
                   objective: str = "macro_f1") -> LabelThresholds:
    """Tune one threshold per label of ``generator`` (a LabelGenerator or EnsembleGenerator) on
    labelled ``examples`` decoded with ``beam_size`` (default: the model's), maximising
    ``objective`` (macro_f1: each label's F1; micro_f1: the pooled F1); the generator's own
    thresholds play no part. Returns them; set ``generator.thresholds`` to use them."""
    examples = check_examples(examples)
    beam = beam_size or generator.config.decode.beam_size
    rows = generator.decode_encoded(generator.encode_examples(examples), beam_size=beam, batch_size=batch_size)
    labels = list(generator.label_vocab.labels)
    scores = np.stack([row["label_scores"] for row in rows]) if rows else np.zeros((0, len(labels)))
    decided = _indicator([[i - FIRST_LABEL_ID for i in row["ids"]] for row in rows], len(labels))
    index = {label: j for j, label in enumerate(labels)}
    gold = _indicator([[index[lab] for lab in ex.labels if lab in index] for ex in examples], len(labels))
    values = tune_thresholds(scores, decided, gold, min_positives=min_positives, objective=objective)
    return LabelThresholds(labels, values, beam, min_positives, len(examples), objective)


def _indicator(columns: list[list[int]], width: int) -> np.ndarray:
    out = np.zeros((len(columns), width), dtype=bool)                 # (docs, labels)
    for i, cols in enumerate(columns):
        out[i, cols] = True
    return out


# ---- applying --------------------------------------------------------------------------

def threshold_rows(rows: list[dict], thresholds: LabelThresholds, max_labels: int, min_labels: int) -> list[dict]:
    """Decoded rows with the thresholds applied (see the module doc); at most ``max_labels``
    labels (added ones are cut first), and at least ``min_labels`` (topped up by score)."""
    return [_threshold_row(row, thresholds.values, max_labels, min_labels) for row in rows]


def _threshold_row(row: dict, values: np.ndarray, max_labels: int, min_labels: int) -> dict:
    scores = np.asarray(row["label_scores"], dtype=np.float64)       # (labels,)
    tuned = ~np.isnan(values)                                         # (labels,)
    passes = tuned & (scores >= np.where(tuned, values, np.inf))      # (labels,)
    kept = [k for k, i in enumerate(row["ids"]) if not tuned[i - FIRST_LABEL_ID] or passes[i - FIRST_LABEL_ID]]
    ids = [row["ids"][k] for k in kept]
    probs = [row["probs"][k] for k in kept]
    added = [int(j) for j in np.argsort(-scores, kind="stable") if passes[j] and j + FIRST_LABEL_ID not in row["ids"]]
    if len(ids) + len(added) < min_labels:
        chosen = {*ids, *(j + FIRST_LABEL_ID for j in added)}
        rest = [int(j) for j in np.argsort(-scores, kind="stable") if j + FIRST_LABEL_ID not in chosen]
        added += rest[: min_labels - len(ids) - len(added)]
    added = added[: max(0, max_labels - len(ids))]
    out = {**row, "ids": ids + [j + FIRST_LABEL_ID for j in added],
           "probs": probs + [float(scores[j]) for j in added]}
    if "attention" in row:  # added labels were never emitted: no attention of their own (zero rows)
        attention = row["attention"][kept]                            # (kept, tokens)
        out["attention"] = np.concatenate([attention, np.zeros((len(added), attention.shape[1]), attention.dtype)])
    return out

