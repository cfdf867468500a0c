"""benchmarks/precision_quality.py: the paired differences and the tables it writes must be the
arithmetic they claim (same seed subtracted, sample standard deviation). No training here."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

def _record(micro: float, macro: float, valid: float) -> dict:
    return {"test": {"beam5": {"micro_f1": micro, "macro_f1": macro}}, "valid_micro_f1": valid, "best_epoch": 9,
            "epochs_run": 12, "train_seconds": 400.0, "git_commit": "abcdef0123"}


def test_paired_differences_subtract_the_same_seed(pq):
    fp32 = {0: 0.85, 1: 0.84, 2: 0.86}
    bf16 = {0: 0.84, 1: 0.845, 2: 0.85}
    rows = [pq.run_row(_record(v, v / 2, v), "fp32", s, Path(f"f{s}.json")) for s, v in fp32.items()]
    rows += [pq.run_row(_record(v, v / 2, v), "bf16", s, Path(f"b{s}.json")) for s, v in bf16.items()]
    summary = pq.summarize(rows, ["fp32", "bf16"])
    assert summary["per_precision"]["fp32"]["test_micro_f1"]["mean"] == pytest.approx(0.85)
    assert summary["per_precision"]["bf16"]["test_micro_f1"]["std"] == pytest.approx(statistics.stdev(bf16.values()))
    diff = summary["paired_differences"]["bf16 - fp32"]["test_micro_f1"]
    assert diff["per_seed"] == pytest.approx({s: bf16[s] - fp32[s] for s in fp32})
    assert diff["mean"] == pytest.approx(statistics.fmean(bf16[s] - fp32[s] for s in fp32))
    assert summary["paired_differences"]["bf16 - fp32"]["test_macro_f1"]["mean"] == pytest.approx(diff["mean"] / 2)


def test_a_seed_missing_from_one_precision_is_left_out_of_the_pairs(pq):
    rows = [pq.run_row(_record(0.8, 0.4, 0.8), "fp32", s, Path("x.json")) for s in (0, 1)]
    rows += [pq.run_row(_record(0.7, 0.4, 0.8), "bf16", 1, Path("y.json"))]
    diff = pq.summarize(rows, ["fp32", "bf16"])["paired_differences"]["bf16 - fp32"]["test_micro_f1"]
    assert list(diff["per_seed"]) == [1] and diff["std"] is None


def test_markdown_lists_every_run_and_the_paired_row(pq):
    rows = [pq.run_row(_record(0.85 + s / 100, 0.5, 0.87), p, s, Path(f"sgm_{p}{s}.json"))
            for p in ("fp32", "bf16") for s in (0, 1)]
    record = {"dataset": "reuters21578", "config": "configs/reuters21578/sgm.yaml", "decoding": "beam 5",
              "runs": rows, **pq.summarize(rows, ["fp32", "bf16"]),
              "provenance": {"command": "python x", "git_commit": "abc", "date_utc": "now",
                             "machine": {"cpu": "cpu", "cpu_count": 2, "torch": "2"}}}
    text = pq.to_markdown(record)
    assert text.count("`sgm_") == 4 and "| bf16 - fp32 (paired) | 2 | +0.0000 ± 0.0000 |" in text


def test_train_command_is_the_quality_script_with_seed_precision_and_tag(pq):
    command = pq.train_command("reuters21578", "sgm", "bf16", 2)
    assert command[1].endswith("sgm_quality.py")
    assert command[-6:] == ["--set", "train.seed=2", "--set", "train.precision=bf16", "--tag", "bf16-seed2"]
    assert pq.result_path("reuters21578", "sgm", "bf16", 2).name == "sgm_reuters21578-sgm-bf16-seed2.json"
